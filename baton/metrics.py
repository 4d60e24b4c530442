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
- *ranking score*: what AUC, PR AUC, deciles and calibration rank by: the highest ``fit +
  engagement`` reached before the lead's first sales outcome (``score_before_outcome``); a lead the
  rules disqualified ranks below every other. The positive class is ``won``; leads with no outcome
  are left out of those metrics and counted (``unlabeled``).
- *weeks*: rates per week are over the lead-intake span (first to last lead created, plus one
  average gap between leads), not up to the last outcome.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from itertools import accumulate, groupby
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from baton.backtest.authoring import stage_grades
from baton.backtest.authoring import thresholds as stage_thresholds
from baton.backtest.replay import WEEK, BacktestResult, LeadReport, paused_gc
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


# -- weeks and holdouts ---------------------------------------------------------------------------------


def intake_weeks(result: BacktestResult) -> float:
    """Weeks of lead intake: first to last lead seen, plus one average gap between leads (n leads
    arriving evenly over a period span (n - 1) / n of it); at least one day, so rates stay finite."""
    seen = [r.first_seen for r in result.leads if r.first_seen is not None]
    if len(seen) < 2:
        return DAY / WEEK
    span = (max(seen) - min(seen)) * len(seen) / (len(seen) - 1)
    return max(span, DAY) / WEEK


def split_holdout(
    result: BacktestResult, after: float | None = None, fraction: float | None = None
) -> tuple[BacktestResult, BacktestResult]:
    """(earlier leads, holdout leads): leads first seen after ``after``, or the newest ``fraction``.

    Both are results of the same replay (no lead is scored twice), so every metric can be computed
    on either; the newest leads are the ones a rule set built from the others has never seen.
    """
    if (after is None) == (fraction is None):
        raise ValueError("give one of after (a time) or fraction (0 < f < 1)")
    leads = result.leads
    if after is not None:
        chosen = {r.lead_id for r in leads if r.first_seen is not None and r.first_seen > after}
    else:
        assert fraction is not None
        if not 0 < fraction < 1:
            raise ValueError("fraction must be between 0 and 1")
        newest = sorted(leads, key=lambda r: -math.inf if r.first_seen is None else r.first_seen)
        chosen = {r.lead_id for r in newest[len(newest) - round(len(newest) * fraction):]}
    train = [r for r in leads if r.lead_id not in chosen]
    holdout = [r for r in leads if r.lead_id in chosen]
    return (dataclasses.replace(result, leads=train, _index=None),
            dataclasses.replace(result, leads=holdout, _index=None))


# -- ranking quality: the score against outcomes ---------------------------------------------------------


def labeled(leads: Iterable[LeadReport]) -> list[LeadReport]:
    """Leads with a sales outcome: the ones ranking metrics can judge."""
    return [r for r in leads if r.outcome is not None]


def _groups(scores: Sequence[float], labels: Sequence[bool]) -> list[tuple[float, int, int]]:
    """(score, positives, negatives) per distinct score, highest first."""
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: p[0], reverse=True)
    out = []
    for value, tied in groupby(pairs, key=lambda p: p[0]):
        members = [label for _, label in tied]
        positives = sum(members)
        out.append((value, positives, len(members) - positives))
    return out


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve, ties counted half (as scikit-learn's ``roc_auc_score``); None
    without both classes. The chance that a random positive outranks a random negative."""
    groups = _groups(scores, labels)
    positives = sum(g[1] for g in groups)
    negatives = sum(g[2] for g in groups)
    if not positives or not negatives:
        return None
    area = 0.0
    negatives_above = 0
    for _, pos, neg in groups:
        # each positive here beats the negatives below it and ties with the negatives at its score
        area += pos * (negatives - negatives_above - neg + neg / 2)
        negatives_above += neg
    return area / (positives * negatives)


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """PR AUC as average precision (scikit-learn's ``average_precision_score``): the precision at
    each distinct score, weighted by the recall it adds. None without positives."""
    groups = _groups(scores, labels)
    positives = sum(g[1] for g in groups)
    if not positives:
        return None
    caught = seen = 0
    area = 0.0
    for _, pos, neg in groups:
        caught += pos
        seen += pos + neg
        area += (pos / positives) * (caught / seen)
    return area


def roc_points(scores: Sequence[float], labels: Sequence[bool]) -> list[dict[str, float]]:
    """The ROC curve, one point per distinct score (highest first), from (0, 0) to (1, 1)."""
    groups = _groups(scores, labels)
    positives = sum(g[1] for g in groups) or 1
    negatives = sum(g[2] for g in groups) or 1
    points = [{"threshold": math.inf, "fpr": 0.0, "tpr": 0.0}]
    tp = fp = 0
    for value, pos, neg in groups:
        tp += pos
        fp += neg
        points.append({"threshold": value, "fpr": fp / negatives, "tpr": tp / positives})
    return points


def at_share(scores: Sequence[float], labels: Sequence[bool], share: float) -> dict[str, Any]:
    """Precision and recall when the top ``share`` of leads by score go to sales.

    Tie-aware: when the cut falls inside a group of equal scores, that group counts pro rata (the
    expected result of picking among equals at random), so the figure does not depend on lead ids.
    """
    n = len(scores)
    groups = _groups(scores, labels)
    positives = sum(g[1] for g in groups)
    take = max(0.0, min(1.0, share)) * n
    taken = caught = 0.0
    threshold: float | None = None
    for value, pos, neg in groups:
        if take - taken <= 1e-9 * n:  # float dust of share * n is no lead
            break
        size = pos + neg
        threshold = value
        if take - taken < size:  # the cut falls inside this group: the rest of the share, pro rata
            caught += pos * (take - taken) / size
            taken = take  # exactly: a float remainder must not reach into the next group
            break
        taken += size
        caught += pos
    return {"share": share, "leads": taken, "won": caught, "precision": _ratio(caught, taken),
            "recall": _ratio(caught, positives), "threshold": threshold}


def calibration(scores: Sequence[float], labels: Sequence[bool], bins: int = 10) -> list[dict[str, Any]]:
    """Score band -> leads, won, conversion rate: equal-width bands over the scores, plus a band for
    disqualified leads (minus infinity). A calibrated score converts more in every higher band."""
    finite = [(s, y) for s, y in zip(scores, labels, strict=True) if s > -math.inf]
    rows: list[dict[str, Any]] = []
    disqualified = [y for s, y in zip(scores, labels, strict=True) if s == -math.inf]
    if disqualified:
        rows.append({"band": "disqualified", "low": None, "high": None, "leads": len(disqualified),
                     "won": sum(disqualified), "rate": _ratio(sum(disqualified), len(disqualified))})
    if not finite:
        return rows
    low, high = min(s for s, _ in finite), max(s for s, _ in finite)
    width = (high - low) / bins if high > low else 1.0
    counts = [[0, 0] for _ in range(bins)]
    for value, label in finite:
        band = min(bins - 1, int((value - low) / width))
        counts[band][0] += 1
        counts[band][1] += label
    for i, (n, won) in enumerate(counts):
        edge_low, edge_high = low + i * width, low + (i + 1) * width
        rows.append({"band": f"{edge_low:.0f} to {edge_high:.0f}", "low": edge_low, "high": edge_high,
                     "leads": n, "won": won, "rate": _ratio(won, n)})
    return rows


def ranking_quality(
    result: BacktestResult, weekly_capacity: float | None = None, handoff_share: float = 0.1, bins: int = 10
) -> dict[str, Any]:
    """How well the ranking score orders leads that have an outcome: ROC AUC, PR AUC, precision and
    recall at the capacity cut and at ``handoff_share``, the calibration table, the ROC curve.

    The capacity cut hands over ``weekly_capacity`` leads per week of intake: that share of all
    leads, applied to the leads with an outcome.
    """
    judged = labeled(result.leads)
    scores = [r.score_before_outcome for r in judged]
    labels = [r.won for r in judged]
    out: dict[str, Any] = {
        "labeled": len(judged), "unlabeled": len(result.leads) - len(judged), "won": sum(labels),
        "base_rate": _ratio(sum(labels), len(judged)),
        "auc": roc_auc(scores, labels), "pr_auc": average_precision(scores, labels),
        "at_share": at_share(scores, labels, handoff_share) if judged else None,
        "calibration": calibration(scores, labels, bins),
        "roc": roc_points(scores, labels) if judged else [],
    }
    if weekly_capacity is not None and result.leads:
        share = min(1.0, weekly_capacity * intake_weeks(result) / len(result.leads))
        out["capacity_share"] = share
        out["at_capacity"] = at_share(scores, labels, share) if judged else None
    return out


# -- warnings: what makes the figures above untrustworthy -------------------------------------------------

LEAK_AUC = 0.95  # a field that alone ranks outcomes this well was probably filled in after them
_MAX_CATEGORIES = 50
# A sales disposition ("Closed by ...", "Ringing", "Already a student") sorts many leads into values
# whose outcome is all but certain, while its other values (and its blanks) are mixed, so its AUC
# alone stays under LEAK_AUC. Facts known before contact rarely settle that many leads: the X Education
# export's Tags puts 35 % of its leads in such values, its lead source 1.5 %, the others none.
PURE_RATE = 0.97  # a value whose leads were won (or not) at least this often decides the outcome
PURE_SHARE = 0.25  # flagged when values that decide it hold this share of the leads with an outcome
_PURE_MIN_LEADS = 30  # a value counts with at least this many leads (and 1 % of them)


def _field_scan(result: BacktestResult) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """From the history the result replayed, for the leads that have an outcome (the only ones the
    checks judge): each one's last value of each attribute, and per attribute [leads that had it
    before their first outcome, leads that first had it after]. One pass over the events with
    traits, in time order (the replayed history is sorted)."""
    if result._history is None:
        return {}, {}
    events, outcomes = result._history
    known = {r.lead_id for r in result.leads if r.outcome is not None}
    first_outcome: dict[str, float] = {}
    for o in outcomes:  # (sorted by time)
        if o.lead_id in known or (o.email and o.lead_key in known):
            first_outcome.setdefault(o.lead_key, o.ts)
    by_email = {r.email: r.lead_id for r in result.leads if r.email and r.lead_id in first_outcome}
    values: dict[str, dict[str, Any]] = {}
    timing: dict[str, list[int]] = {}
    for event in events:
        traits = event.traits
        if not traits:
            continue
        lead = by_email.get(event.email) if event.email else event.lead_id
        if lead is None:
            continue
        outcome_ts = first_outcome.get(lead)
        if outcome_ts is None:
            continue
        late = 1 if event.ts > outcome_ts else 0
        for name, value in traits.items():
            if value is None or value == "" or name in _NOT_FIELDS:
                continue
            seen = values.get(name)
            if seen is None:
                seen = values[name] = {}
                timing[name] = [0, 0]
            if lead not in seen:  # first sight of the field for this lead
                timing[name][late] += 1
            seen[lead] = value
    return values, timing


_NOT_FIELDS = frozenset({"email", "lead_key"})


def _field_auc(values: Mapping[str, Any], judged: Sequence[LeadReport]) -> float | None:
    """How well one field alone separates won from not won, in either direction: numbers by value,
    categories by their conversion rate (missing is a category of its own)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values())
    if numeric:
        pairs = [(float(values[r.lead_id]), r.won) for r in judged if r.lead_id in values]
        if len(pairs) < 20:
            return None
        auc = roc_auc([p[0] for p in pairs], [p[1] for p in pairs])
        return None if auc is None else max(auc, 1 - auc)
    categories = [str(values.get(r.lead_id, "(missing)")).strip().lower() for r in judged]
    distinct = set(categories)
    if len(distinct) < 2 or len(distinct) > min(_MAX_CATEGORIES, max(2, len(judged) // 10)):
        return None  # one value, or so many that each would predict its few leads perfectly
    won: Counter[str] = Counter()
    seen: Counter[str] = Counter(categories)
    for category, r in zip(categories, judged, strict=True):
        won[category] += r.won
    rates = [won[c] / seen[c] for c in categories]
    return roc_auc(rates, [r.won for r in judged])


def _decided_share(values: Mapping[str, Any], judged: Sequence[LeadReport]) -> float | None:
    """The share of leads with an outcome whose value of this (categorical) field decides it: held by
    at least 1 % of them (and 30) and won at least PURE_RATE of the time, or at most 1 - PURE_RATE.
    Blanks are no value. None for numbers."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
        return None
    seen: Counter[str] = Counter()
    won: Counter[str] = Counter()
    for r in judged:
        if r.lead_id in values:
            category = str(values[r.lead_id]).strip().lower()
            seen[category] += 1
            won[category] += r.won
    least = max(_PURE_MIN_LEADS, len(judged) / 100)
    decided = sum(n for c, n in seen.items()
                  if n >= least and (won[c] >= PURE_RATE * n or won[c] <= (1 - PURE_RATE) * n))
    return decided / len(judged)


def leak_checks(result: BacktestResult) -> list[dict[str, Any]]:
    """Attributes that look filled in after the outcome: first seen after it for most leads that
    have them, predicting it almost perfectly alone (AUC >= 0.95), or with values that decide it for
    a quarter of the leads (``_decided_share``). Cheap checks; a field they flag should not be in the
    rules."""
    judged = labeled(result.leads)
    if not judged:
        return []
    values, timing = _field_scan(result)
    found = []
    for name in sorted(values):
        before, after = timing.get(name, [0, 0])
        if after >= 5 and after > before:
            found.append({"field": name, "check": "first seen after the outcome", "leads": after,
                          "message": f"{name}: first known after the outcome for {after:,} of {before + after:,} "
                                     "leads with an outcome"})
            continue
        auc = _field_auc(values[name], judged)
        if auc is not None and auc >= LEAK_AUC:
            found.append({"field": name, "check": "predicts the outcome alone", "auc": auc,
                          "message": f"{name}: predicts the outcome almost perfectly by itself (AUC {auc:.3f}): "
                                     "probably filled in by sales after contact"})
            continue
        decided = _decided_share(values[name], judged)
        if decided is not None and decided >= PURE_SHARE:
            found.append({"field": name, "check": "values decide the outcome", "share": decided,
                          "message": f"{name}: {decided:.0%} of leads with an outcome have a value of it that "
                                     f"decides the outcome ({PURE_RATE:.0%} one way or the other): probably a "
                                     "sales disposition, filled in after contact"})
    return found


def warnings(result: BacktestResult, metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """What should stop an analyst from trusting a backtest: no SQLs or nobody eligible, a
    recommended threshold no lead reaches, one grade holding over 90 % of leads, leaked fields."""
    out: list[dict[str, str]] = []
    n = len(result.leads)
    if not n:
        return [{"code": "no_leads", "message": "the history has no leads"}]
    if metrics["sql_quality"]["sqls"] == 0:
        out.append({"code": "no_sqls", "message": "the rule set made no SQLs on this history"})
    grades = stage_grades(result.ruleset.source, "sql")
    eligible = sum(1 for r in result.leads if r.disqualified_reason is None and (grades is None or r.grade in grades))
    if not eligible:
        which = f" (grade {', '.join(sorted(grades))})" if grades else ""
        out.append({"code": "no_eligible_leads",
                    "message": f"no lead is eligible for the SQL engagement threshold{which}: its sweep means nothing"})
    for name, row in (metrics.get("recommended") or {}).items():
        if row is not None and row["leads"] == 0:
            out.append({"code": "threshold_unreached",
                        "message": f"the recommended {name} threshold ({row['threshold']:.1f}) is reached by no lead"})
    grade, count = Counter(r.grade for r in result.leads).most_common(1)[0]
    if count / n > 0.9:
        out.append({"code": "one_grade", "message": f"{count / n:.0%} of leads are grade {grade}: the fit rules "
                                                    "barely tell leads apart on this history"})
    leaks = metrics.get("leaks")
    for leak in leaks if leaks is not None else leak_checks(result):
        out.append({"code": "leaked_field", "message": leak["message"]})
    return out


# -- scores --------------------------------------------------------------------------------------------

_SCORES: dict[str, Callable[[LeadReport], float]] = {
    "ranking": attrgetter("score_before_outcome"),
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


def lift_by_decile(result: BacktestResult, score: str = "ranking", bins: int = 10) -> list[dict[str, Any]]:
    """Leads ranked by score, cut into ``bins`` groups (1 = highest): win rate and lift.

    Tie-aware: equal scores share a group (the group of the first of them), so groups can be uneven
    or empty, and the same score never shows two lifts. Lift is the group's win rate over the
    overall win rate: a useful score puts lift well above 1 in the first groups and below 1 in the
    last. Over the leads with an outcome when there are any (as AUC), else over all leads.
    """
    get = _score_of(score)
    population = labeled(result.leads) or list(result.leads)
    ranked = sorted(population, key=get, reverse=True)
    total = len(ranked)
    overall = _ratio(sum(r.won for r in ranked), total)
    groups: list[list[LeadReport]] = [[] for _ in range(bins)]
    position = 0
    for _, tied in groupby(ranked, key=get):
        members = list(tied)
        groups[position * bins // total].extend(members)
        position += len(members)
    rows = []
    for i, group in enumerate(groups):
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
    others: Collection[LeadReport] = (),
) -> list[dict[str, Any]]:
    """What a single threshold on a lead's best score would have done, for ``points`` thresholds.

    For each threshold: leads whose score ever reached it, won deals among them, precision, recall
    (share of all won deals caught), F1 and leads per week of lead intake (the sales workload it
    would create). ``grades`` limits who can pass to leads of those (final) grades, as a stage rule does
    ("fit B or better and engagement >= t"). Thresholds default to ``points`` evenly spaced values
    from the lowest to the highest positive score. ``others`` are leads the stage rule takes by
    another path (a hand-raise, a fast track): they count at every threshold, so at the rule set's
    own threshold the sweep shows what the rules did. Sorting once and bisecting keeps a sweep at
    O(n log n) whatever ``points``.
    """
    get = _score_of(score)
    taken = {r.lead_id for r in others}
    base_over, base_won = len(taken), sum(r.won for r in others)
    eligible = [r for r in result.leads if r.disqualified_reason is None and (grades is None or r.grade in grades)
                and r.lead_id not in taken]
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
    weeks = intake_weeks(result)
    rows = []
    for threshold in thresholds:
        first = bisect.bisect_left(values, threshold)
        over = len(values) - first + base_over
        won = won_from[first] + base_won
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
    result: BacktestResult, weekly_capacity: float | None = None, points: int = 50, handoff_share: float = 0.1
) -> dict[str, Any]:
    """Every metric at once (what the notebook charts, ``baton backtest`` prints and the bench computes)."""
    with paused_gc():
        return _summary(result, weekly_capacity, points, handoff_share)


def sweeps(result: BacktestResult, points: int = 50) -> dict[str, list[dict[str, Any]]]:
    """The sweeps an SLA review looks at, each ``points`` thresholds:

    - ``mql`` / ``sql``: engagement, among leads of the grades the rule set's MQL / SQL rule asks
      for alongside its engagement bound (the default: A-B for MQL, A for SQL);
    - ``engagement``: engagement, any grade; ``score``: fit + engagement, any grade.
    """
    source = result.ruleset.source
    return {
        "mql": threshold_sweep(result, "engagement", points, grades=stage_grades(source, "mql"),
                               others=_other_paths(result, "mql")),
        "sql": threshold_sweep(result, "engagement", points, grades=stage_grades(source, "sql"),
                               others=_other_paths(result, "sql")),
        "engagement": threshold_sweep(result, "engagement", points),
        "score": threshold_sweep(result, "score", points),
    }


def current_threshold(result: BacktestResult, stage: str) -> float | None:
    """The rule set's own engagement threshold for ``stage`` (``mql`` / ``sql``), if it has one."""
    found = [t["value"] for t in stage_thresholds(result.ruleset.source) if t["stage"] == stage
             and t["field"] == "engagement"]
    return float(min(found)) if found else None


def _other_paths(result: BacktestResult, stage: str) -> list[LeadReport]:
    """Leads the rules moved to ``stage`` without the engagement threshold explaining it."""
    bound = current_threshold(result, stage)
    grades = stage_grades(result.ruleset.source, stage)
    reached = attrgetter("reached_sql" if stage == "sql" else "reached_mql")
    return [r for r in result.leads if reached(r) and (bound is None or r.max_engagement < bound
                                                        or (grades is not None and r.grade not in grades))]


def at_current_thresholds(result: BacktestResult) -> dict[str, dict[str, Any] | None]:
    """The sweep rows at the rule set's own MQL and SQL thresholds: what the rules did (its recall
    is the summary's, up to leads the rules stopped for other reasons)."""
    source = result.ruleset.source
    out: dict[str, dict[str, Any] | None] = {}
    for stage in ("mql", "sql"):
        bound = current_threshold(result, stage)
        out[stage] = None if bound is None else threshold_sweep(
            result, "engagement", thresholds=[bound], grades=stage_grades(source, stage),
            others=_other_paths(result, stage))[0]
    return out


def useful_range(rows: Sequence[Mapping[str, Any]], share: float = 0.01) -> float | None:
    """The threshold past which fewer than ``share`` of the leads the threshold decides remain
    over it (leads counted at every threshold aside): where a sweep chart's x-axis can stop, as a
    few outliers otherwise stretch it far past the action."""
    if not rows:
        return None
    base = rows[-1]["leads"]
    decided = rows[0]["leads"] - base
    if decided <= 0:
        return None
    last = next((row["threshold"] for row in rows if row["leads"] - base < decided * share), rows[-1]["threshold"])
    return float(last)


def top_groups(rows: Sequence[Mapping[str, Any]], key: str, n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` groups with the most leads (channels, offers) and one ``other`` row adding up the
    rest, rates recomputed from the sums; for charts that stay readable with many channels."""
    ranked = sorted(rows, key=lambda row: -row["leads"])
    head = [dict(row) for row in ranked[:n]]
    rest = ranked[n:]
    if rest:
        other: dict[str, Any] = {key: f"other ({len(rest)})"}
        for column in ("leads", "mqls", "sqls", "opportunities", "won"):
            other[column] = sum(row[column] for row in rest)
        other.update({
            "mql_rate": _ratio(other["mqls"], other["leads"]), "sql_rate": _ratio(other["sqls"], other["leads"]),
            "mql_to_sql": _ratio(other["sqls"], other["mqls"]), "mql_to_won": _ratio(other["won"], other["mqls"]),
            "win_rate": _ratio(other["won"], other["leads"]),
        })
        head.append(other)
    return head


def _summary(result: BacktestResult, weekly_capacity: float | None, points: int,
             handoff_share: float) -> dict[str, Any]:
    all_sweeps = sweeps(result, points)
    out: dict[str, Any] = {
        "info": {**result.info(), "intake_weeks": round(intake_weeks(result), 3)},
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
    out["sqls_per_week"] = _ratio(sum(w["sqls"] for w in out["weekly_sqls"]), intake_weeks(result))
    out["sql_share"] = _ratio(out["sql_quality"]["sqls"], len(result.leads))
    out["quality"] = ranking_quality(result, weekly_capacity, handoff_share)
    out["outcomes"] = dict(Counter(r.outcome for r in result.leads if r.outcome).most_common())
    out["current"] = at_current_thresholds(result)
    if weekly_capacity is not None:
        out["recommended"] = {name: recommend_threshold(rows, weekly_capacity) for name, rows in all_sweeps.items()}
    out["leaks"] = leak_checks(result)
    out["warnings"] = warnings(result, out)
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
    t = max(state_a.last_seen, state_b.last_seen)
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
