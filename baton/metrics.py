"""Closed-loop metrics over a backtest: funnel, quality, lift, channels, offers, speed, workload.

Every function takes a ``BacktestResult`` (or its output) and returns plain lists and dicts;
``to_frame`` turns any of them into a pandas DataFrame for notebooks (pandas imported on call).

Definitions used throughout:

- *reached MQL / SQL*: the rules moved the lead there at some point (``mql_at`` / ``sql_at``; a
  fast-tracked lead reached MQL by passing it). Sales feedback does not count as qualification.
- *opportunity*: the lead reached the opportunity stage (or customer) through sales feedback.
- *won*: a ``won`` outcome was recorded for the lead.
- *score*: the lead's highest ``fit + engagement`` over the history (``LeadReport.max_score``);
  ``engagement`` sweeps use the highest engagement alone. Leads a disqualifier rule stopped never
  count as over a threshold in the sweep: disqualifiers override scores.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from baton.backtest.authoring import stage_grades
from baton.backtest.replay import BacktestResult, LeadReport, paused_gc
from chalicelib.engine import explain
from chalicelib.rules.compile import CompiledRuleset

if TYPE_CHECKING:
    import pandas as pd

DAY = 86400.0
FUNNEL_STEPS = ("lead", "mql", "sql", "opportunity", "won")
STAGES = ("lead", "mql", "sql", "opportunity", "customer", "recycled", "disqualified")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), on unsorted input."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# -- stages and funnel -------------------------------------------------------------------------------


def stage_counts(result: BacktestResult) -> dict[str, dict[str, int]]:
    """How many leads end in each stage, and how many reached each stage at their highest."""
    final = Counter(r.stage for r in result.leads)
    highest = Counter(r.max_stage for r in result.leads)
    return {
        "final": {s: final.get(s, 0) for s in STAGES},
        "max": {s: highest.get(s, 0) for s in ("lead", "mql", "sql", "opportunity", "customer")},
    }


_OPPORTUNITY_OR_LATER = frozenset({"opportunity", "customer"})


def _funnel_counts(leads: Iterable[LeadReport]) -> dict[str, int]:
    # Plain attribute tests rather than the LeadReport properties: this runs once per channel and offer.
    n = mql = sql = opportunity = won = 0
    for r in leads:
        n += 1
        if r.sql_at is not None:
            sql += 1
            mql += 1
        elif r.mql_at is not None:
            mql += 1
        if r.max_stage in _OPPORTUNITY_OR_LATER:
            opportunity += 1
        if r.won:
            won += 1
    return {"lead": n, "mql": mql, "sql": sql, "opportunity": opportunity, "won": won}


def funnel(result: BacktestResult) -> list[dict[str, Any]]:
    """lead -> MQL -> SQL -> opportunity -> won: counts, step conversion and share of all leads."""
    counts = _funnel_counts(result.leads)
    rows = []
    previous: int | None = None
    for step in FUNNEL_STEPS:
        n = counts[step]
        rows.append({
            "step": step, "leads": n,
            "from_previous": _ratio(n, previous) if previous is not None else None,
            "from_leads": _ratio(n, counts["lead"]),
        })
        previous = n
    return rows


def sql_quality(result: BacktestResult) -> dict[str, Any]:
    """Precision, recall and F1 of "the rules made it an SQL" as a predictor of a won deal."""
    tp = fp = fn = 0
    for r in result.leads:
        if r.reached_sql:
            if r.won:
                tp += 1
            else:
                fp += 1
        elif r.won:
            fn += 1
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"sqls": tp + fp, "won": tp + fn, "won_sqls": tp, "precision": precision, "recall": recall, "f1": f1}


# -- scores --------------------------------------------------------------------------------------------

_SCORES: dict[str, Callable[[LeadReport], float]] = {
    "score": attrgetter("max_score"),
    "engagement": attrgetter("max_engagement"),
    "fit": attrgetter("fit"),
}


_WON = attrgetter("won")


def _score_of(score: str) -> Callable[[LeadReport], float]:
    try:
        return _SCORES[score]
    except KeyError:
        raise ValueError(f"score must be one of {sorted(_SCORES)}, got {score!r}") from None


def lift_by_decile(result: BacktestResult, score: str = "score", bins: int = 10) -> list[dict[str, Any]]:
    """Leads ranked by score, cut into ``bins`` equal groups (1 = highest): win rate and lift.

    Lift is the group's win rate over the overall win rate: a useful score puts lift well above 1 in
    the first deciles and below 1 in the last. Ties are broken by lead id, so groups are stable.
    """
    get = _score_of(score)
    ranked = sorted(result.leads, key=attrgetter("lead_id"))
    ranked.sort(key=get, reverse=True)  # (stable: equal scores stay in lead id order)
    total = len(ranked)
    overall = _ratio(sum(r.won for r in ranked), total)
    rows = []
    for i in range(bins):
        group = ranked[i * total // bins : (i + 1) * total // bins]
        won = sum(r.won for r in group)
        rate = _ratio(won, len(group))
        rows.append({
            "decile": i + 1, "leads": len(group), "won": won, "win_rate": rate,
            "lift": rate / overall if rate is not None and overall else None,
            "min_score": get(group[-1]) if group else None, "max_score": get(group[0]) if group else None,
            "sqls": sum(r.reached_sql for r in group),
        })
    return rows


def threshold_sweep(
    result: BacktestResult,
    score: str = "score",
    points: int = 50,
    thresholds: Sequence[float] | None = None,
    grades: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """What a single threshold on a lead's best score would have done, for ``points`` thresholds.

    For each threshold: leads whose score ever reached it, won deals among them, precision, recall
    (share of all won deals caught), F1 and leads per week of history (the sales workload it would
    create). ``grades`` limits who can pass to leads of those (final) grades, as a stage rule does
    ("fit B or better and engagement >= t"). Thresholds default to ``points`` evenly spaced values
    from the lowest to the highest positive score. Sorting once and bisecting keeps a sweep at
    O(n log n) whatever ``points``.
    """
    get = _score_of(score)
    eligible = [r for r in result.leads if r.disqualified_reason is None and (grades is None or r.grade in grades)]
    # Sorted on the score alone (float keys sort fastest): the order among equal scores does not
    # matter, as every count below starts at the first of a run of equal scores.
    eligible.sort(key=get)
    values = list(map(get, eligible))
    # won_from[i]: won deals among eligible[i:]
    won_from = list(accumulate(reversed(list(map(_WON, eligible))), initial=0))[::-1]
    total_won = sum(map(_WON, result.leads))
    if thresholds is None:
        top = values[-1] if values else 0.0
        low = max(0.0, values[0]) if values else 0.0
        if top <= low:
            top = low + 1.0
        thresholds = [low + (top - low) * i / (points - 1) for i in range(points)] if points > 1 else [low]
    weeks = result.weeks
    rows = []
    for threshold in thresholds:
        first = bisect.bisect_left(values, threshold)
        over = len(values) - first
        won = won_from[first]
        precision = _ratio(won, over)
        recall = _ratio(won, total_won)
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
        rows.append({
            "threshold": threshold, "leads": over, "won": won, "precision": precision, "recall": recall,
            "f1": f1, "per_week": over / weeks,
        })
    return rows


def recommend_threshold(sweep: Sequence[Mapping[str, Any]], weekly_capacity: float) -> dict[str, Any] | None:
    """The lowest threshold whose leads per week fit the sales team's capacity.

    More leads over a threshold can only mean more won deals caught, so the lowest threshold that
    fits is the one with the highest recall the team can handle. None when no threshold fits.
    """
    fitting = [row for row in sweep if row["per_week"] <= weekly_capacity]
    if not fitting:
        return None
    return dict(min(fitting, key=lambda row: row["threshold"]))


# -- channels, offers, speed, workload ------------------------------------------------------------------


def _group_rates(groups: Mapping[str, list[LeadReport]], key_name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for key, leads in groups.items():
        counts = _funnel_counts(leads)
        rows.append({
            key_name: key, "leads": counts["lead"], "mqls": counts["mql"], "sqls": counts["sql"],
            "opportunities": counts["opportunity"], "won": counts["won"],
            "mql_rate": _ratio(counts["mql"], counts["lead"]), "sql_rate": _ratio(counts["sql"], counts["lead"]),
            "mql_to_sql": _ratio(counts["sql"], counts["mql"]), "mql_to_won": _ratio(counts["won"], counts["mql"]),
            "win_rate": _ratio(counts["won"], counts["lead"]),
        })
    rows.sort(key=lambda row: (-row["leads"], row[key_name]))
    return rows


def by_channel(result: BacktestResult) -> list[dict[str, Any]]:
    """MQLs, SQLs and conversion per first-touch channel (``utm_source/utm_medium``)."""
    groups: dict[str, list[LeadReport]] = {}
    for r in result.leads:
        groups.setdefault(r.channel, []).append(r)
    rows = _group_rates(groups, "channel")
    for row in rows:
        row["source"], _, row["medium"] = row["channel"].partition("/")
    return rows


def by_offer(result: BacktestResult) -> list[dict[str, Any]]:
    """Per offer (form id or asset): leads who took it, and how those leads converted.

    A lead who took several offers counts for each (multi-touch), so rows do not add up to the total.
    """
    groups: dict[str, list[LeadReport]] = {}
    for r in result.leads:
        for offer in r.offers:
            groups.setdefault(offer, []).append(r)
    return _group_rates(groups, "offer")


def time_to_stage(result: BacktestResult) -> dict[str, dict[str, Any]]:
    """Days from first seen to MQL and to SQL: median and 90th percentile."""
    out = {}
    for stage, attr in (("mql", "mql_at"), ("sql", "sql_at")):
        days = [
            (getattr(r, attr) - r.first_seen) / DAY
            for r in result.leads
            if getattr(r, attr) is not None and r.first_seen is not None
        ]
        out[stage] = {"leads": len(days), "median_days": quantile(days, 0.5), "p90_days": quantile(days, 0.9)}
    return out


def _week_start(ts: float) -> datetime:
    day = datetime.fromtimestamp(ts, tz=timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def weekly_sqls(result: BacktestResult, capacity: float | None = None) -> list[dict[str, Any]]:
    """New SQLs per ISO week (Monday, UTC) over the whole history, against a weekly sales capacity."""
    counts = Counter(_week_start(r.sql_at) for r in result.leads if r.sql_at is not None)
    if result.leads and result.end > 0:
        week = _week_start(result.start)
        last = _week_start(result.end)
        while week <= last:  # weeks without SQLs are rows too
            counts.setdefault(week, 0)
            week += timedelta(days=7)
    rows = []
    for week in sorted(counts):
        row: dict[str, Any] = {"week": week.date().isoformat(), "sqls": counts[week]}
        if capacity is not None:
            row["capacity"] = capacity
            row["over_capacity"] = counts[week] > capacity
        rows.append(row)
    return rows


def summary(
    result: BacktestResult, weekly_capacity: float | None = None, points: int = 50
) -> dict[str, Any]:
    """Every metric at once (what the notebook charts and the bench computes)."""
    with paused_gc():
        return _summary(result, weekly_capacity, points)


def sweeps(result: BacktestResult, points: int = 50) -> dict[str, list[dict[str, Any]]]:
    """The sweeps an SLA review looks at, each ``points`` thresholds:

    - ``mql`` / ``sql``: engagement, among leads of the grades the rule set's MQL / SQL rule asks
      for alongside its engagement bound (the default: A-B for MQL, A for SQL);
    - ``engagement``: engagement, any grade; ``score``: fit + engagement, any grade.
    """
    source = result.ruleset.source
    return {
        "mql": threshold_sweep(result, "engagement", points, grades=stage_grades(source, "mql")),
        "sql": threshold_sweep(result, "engagement", points, grades=stage_grades(source, "sql")),
        "engagement": threshold_sweep(result, "engagement", points),
        "score": threshold_sweep(result, "score", points),
    }


def _summary(result: BacktestResult, weekly_capacity: float | None, points: int) -> dict[str, Any]:
    all_sweeps = sweeps(result, points)
    out: dict[str, Any] = {
        "info": result.info(),
        "stages": stage_counts(result),
        "funnel": funnel(result),
        "sql_quality": sql_quality(result),
        "lift": lift_by_decile(result),
        "channels": by_channel(result),
        "offers": by_offer(result),
        "time_to_stage": time_to_stage(result),
        "weekly_sqls": weekly_sqls(result, weekly_capacity),
        "sweep": all_sweeps,
    }
    out["sqls_per_week"] = _ratio(sum(w["sqls"] for w in out["weekly_sqls"]), result.weeks)
    if weekly_capacity is not None:
        out["recommended"] = {name: recommend_threshold(rows, weekly_capacity) for name, rows in all_sweeps.items()}
    return out


# -- comparing two rule sets ----------------------------------------------------------------------------


def _last_rule_reason(report: LeadReport) -> str | None:
    for t in reversed(report.transitions):
        if not t.manual:
            return t.reason
    return None


def _contributions(explained: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    parts = {("fit", r["rule"]): float(r["points"]) for r in explained["fit"]["rules"]}
    parts.update({("engagement", r["rule"]): float(r["points"]) for r in explained["engagement"]["rules"]})
    return parts


def ruleset_changes(a: CompiledRuleset, b: CompiledRuleset) -> list[dict[str, Any]]:
    """Stage rules and grade bands that differ between two rule sets (the same for every lead)."""
    out: list[dict[str, Any]] = []
    stages_a = a.source.stages.model_dump(mode="json", by_alias=True)
    stages_b = b.source.stages.model_dump(mode="json", by_alias=True)
    for key in sorted(set(stages_a) | set(stages_b)):
        if stages_a.get(key) != stages_b.get(key):
            out.append({"kind": "stage rule", "rule": key, "a": stages_a.get(key), "b": stages_b.get(key),
                        "delta": None})
    if a.grades != b.grades:
        out.append({"kind": "grade bands", "rule": "grades", "a": [list(g) for g in a.grades],
                    "b": [list(g) for g in b.grades], "delta": None})
    return out


def explain_difference(a: LeadReport, b: LeadReport, result_a: BacktestResult,
                       result_b: BacktestResult) -> list[dict[str, Any]]:
    """Why one lead ends differently: disqualifiers, grade, changed stage rules, then the rule
    contributions (``explain`` on both final states) that differ, largest first."""
    state_a, state_b = result_a.state(a.lead_id), result_b.state(b.lead_id)
    if state_a is None or state_b is None:
        raise ValueError(f"no final state for lead {a.lead_id}: was the result built by backtest()?")
    t = max(state_a.clock, state_b.clock)
    ea = explain(state_a, result_a.ruleset, t)
    eb = explain(state_b, result_b.ruleset, t)
    why: list[dict[str, Any]] = []
    if ea["disqualified"] != eb["disqualified"]:
        why.append({"kind": "disqualifier", "rule": "disqualified", "a": ea["disqualified"], "b": eb["disqualified"],
                    "delta": None})
    if a.grade != b.grade:
        why.append({"kind": "grade", "rule": "grade", "a": a.grade, "b": b.grade, "delta": None})
    why += ruleset_changes(result_a.ruleset, result_b.ruleset)
    pa, pb = _contributions(ea), _contributions(eb)
    contributions: list[dict[str, Any]] = []
    for kind, rule in sorted(set(pa) | set(pb)):
        va, vb = pa.get((kind, rule), 0.0), pb.get((kind, rule), 0.0)
        if abs(va - vb) > 1e-9:
            contributions.append({"kind": kind, "rule": rule, "a": round(va, 3), "b": round(vb, 3),
                                  "delta": round(vb - va, 3)})
    contributions.sort(key=lambda d: -abs(d["delta"]))
    return why + contributions


def compare(result_a: BacktestResult, result_b: BacktestResult, limit: int | None = None) -> list[dict[str, Any]]:
    """Leads whose final or highest stage differs between two backtests of the same history, and why.

    ``why`` lists what differs: disqualification, grade, changed stage rules and grade bands, and the
    rule contributions (fit, engagement) from ``explain`` on each final state; ``reason_a`` /
    ``reason_b`` are the last rule transitions' own reasons.
    Leads only one result knows are listed with the other side as None.
    """
    rows: list[dict[str, Any]] = []
    for a in result_a.leads:
        b = result_b.get(a.lead_id)
        if b is None:
            rows.append({"lead_id": a.lead_id, "email": a.email, "stage_a": a.stage, "stage_b": None,
                         "max_stage_a": a.max_stage, "max_stage_b": None, "why": []})
            continue
        if a.stage == b.stage and a.max_stage == b.max_stage:
            continue
        rows.append({
            "lead_id": a.lead_id, "email": a.email,
            "stage_a": a.stage, "stage_b": b.stage, "max_stage_a": a.max_stage, "max_stage_b": b.max_stage,
            "fit_a": a.fit, "fit_b": b.fit, "grade_a": a.grade, "grade_b": b.grade,
            "engagement_a": round(a.engagement, 2), "engagement_b": round(b.engagement, 2),
            "reason_a": _last_rule_reason(a), "reason_b": _last_rule_reason(b), "won": a.won or b.won,
            "why": explain_difference(a, b, result_a, result_b),
        })
        if limit is not None and len(rows) >= limit:
            return rows
    for b in result_b.leads:
        if result_a.get(b.lead_id) is None and (limit is None or len(rows) < limit):
            rows.append({"lead_id": b.lead_id, "email": b.email, "stage_a": None, "stage_b": b.stage,
                         "max_stage_a": None, "max_stage_b": b.max_stage, "why": []})
    return rows


def stage_matrix(result_a: BacktestResult, result_b: BacktestResult) -> dict[str, dict[str, int]]:
    """Counts of leads by (stage under A) -> (stage under B): the shape of a rule change."""
    matrix: dict[str, dict[str, int]] = {}
    for a in result_a.leads:
        b = result_b.get(a.lead_id)
        if b is not None:
            row = matrix.setdefault(a.stage, {})
            row[b.stage] = row.get(b.stage, 0) + 1
    return matrix


def to_frame(rows: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> "pd.DataFrame":
    """Any metric's rows as a DataFrame (a mapping of mappings becomes one row per key)."""
    import pandas as pd

    if isinstance(rows, Mapping):
        return pd.DataFrame.from_dict(dict(rows), orient="index")
    return pd.DataFrame(list(rows))
