"""``baton backtest``: a history directory replayed under a rule set, measured, and reported.

``run_report`` replays and measures (every metric of ``baton.metrics.summary``, on all leads and on
a time-based holdout when asked); ``format_report`` is the human summary; ``headline`` the one JSON
line the command prints last; ``write_scores`` one row per lead (the score the AUC ranks by).
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.backtest.io import parse_time, read_history, read_lead_keys
from baton.backtest.replay import BacktestResult, backtest
from baton.metrics import split_holdout, summary
from chalicelib.events import Event
from chalicelib.rules.model import RuleSet
from chalicelib.timeline import Outcome, Routed


@dataclass
class Report:
    history: str
    ruleset: str
    result: BacktestResult
    metrics: dict[str, Any]
    holdout: dict[str, Any] | None = None
    holdout_label: str | None = None
    lead_keys: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def run_report(
    history: str | Path, ruleset: RuleSet, *, ruleset_label: str = "default", capacity: float | None = None,
    holdout_after: str | None = None, holdout_fraction: float | None = None, handoff_share: float = 0.1,
    workers: int = 2,
) -> Report:
    """Read ``history`` (docs/backtest-data.md), replay it under ``ruleset``, measure it."""
    started = time.perf_counter()
    events, outcomes = read_history(history)
    report = measure(events, outcomes, ruleset, history=str(history), ruleset_label=ruleset_label,
                     capacity=capacity, holdout_after=holdout_after, holdout_fraction=holdout_fraction,
                     handoff_share=handoff_share, workers=workers, lead_keys=read_lead_keys(history))
    report.seconds = time.perf_counter() - started
    return report


def measure(
    events: list[Event], outcomes: list[Outcome], ruleset: RuleSet, *, history: str = "", ruleset_label: str = "default",
    capacity: float | None = None, holdout_after: str | None = None, holdout_fraction: float | None = None,
    handoff_share: float = 0.1, workers: int = 2, lead_keys: dict[str, str] | None = None,
    routed: Routed | None = None,
) -> Report:
    """``run_report`` on a history already read (and maybe routed: ``backtest``'s ``routed``): what
    ``baton rules suggest`` measures its file with."""
    started = time.perf_counter()
    result = backtest(events, ruleset, outcomes, workers=workers, routed=routed)
    metrics = summary(result, weekly_capacity=capacity, handoff_share=handoff_share)
    report = Report(history, ruleset_label, result, metrics, lead_keys=lead_keys or {})
    if holdout_after is not None or holdout_fraction is not None:
        after = parse_time(holdout_after) if holdout_after is not None else None
        _, held = split_holdout(result, after=after, fraction=holdout_fraction)
        report.holdout = summary(held, weekly_capacity=capacity, handoff_share=handoff_share)
        report.holdout_label = (f"leads created after {holdout_after}" if holdout_after is not None
                                else f"the newest {holdout_fraction:.0%} of leads")
    report.seconds = time.perf_counter() - started
    return report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _quality_lines(metrics: dict[str, Any], capacity: float | None) -> list[str]:
    quality = metrics["quality"]
    sql = metrics["sql_quality"]
    out = [
        f"SQLs: {sql['sqls']:,} ({_pct(metrics['sql_share'])} of leads), {_num(metrics['sqls_per_week'], 1)} per week "
        f"of intake; precision {_pct(sql['precision'])} (won among SQLs), recall {_pct(sql['recall'])} (won deals "
        "that were SQLs)",
        f"ranking (fit + engagement before the first outcome): {quality['labeled']:,} leads with an outcome "
        f"({quality['won']:,} won, {_pct(quality['base_rate'])}), {quality['unlabeled']:,} without (left out)",
        f"  ROC AUC {_num(quality['auc'])}, PR AUC {_num(quality['pr_auc'])}",
    ]
    cut = quality.get("at_capacity")
    if capacity is not None and cut:
        out.append(f"  at capacity ({capacity:g} a week: the top {_pct(quality['capacity_share'])} of leads): "
                   f"precision {_pct(cut['precision'])}, recall {_pct(cut['recall'])}")
    share = quality.get("at_share")
    if share:
        out.append(f"  at a {share['share']:.0%} hand-off: precision {_pct(share['precision'])}, "
                   f"recall {_pct(share['recall'])}")
    return out


def format_report(report: Report, capacity: float | None = None) -> str:
    """The human summary ``baton backtest`` prints."""
    info = report.metrics["info"]
    lines = [
        f"history {report.history}: {info['leads']:,} leads, {info['events']:,} events, "
        f"{info['outcomes_applied']:,} outcomes applied ({info['unmatched_outcomes']:,} for unknown leads); "
        f"lead intake {info['intake_weeks']:.1f} weeks",
        f"rule set: {report.ruleset}",
    ]
    funnel = {row["step"]: row["leads"] for row in report.metrics["funnel"]}
    lines.append(f"rules: MQL {funnel['mql']:,}, SQL {funnel['sql']:,}; sales recorded: "
                 f"opportunity {funnel['opportunity']:,}, won {funnel['won']:,}")
    lines += _quality_lines(report.metrics, capacity)
    lines.append("calibration (score band: leads, won rate):")
    for band in report.metrics["quality"]["calibration"]:
        if band["leads"]:
            lines.append(f"  {band['band']:>16}: {band['leads']:>7,}  {_pct(band['rate'])}")
    lines.append("deciles (equal scores share one): " + ", ".join(
        f"{row['decile']}: {row['leads']:,} lift {_num(row['lift'], 2)}" for row in report.metrics["lift"]
        if row["leads"]))
    recommended = (report.metrics.get("recommended") or {}).get("sql")
    if capacity is not None:
        lines.append("recommended SQL engagement threshold for the capacity: " + (
            f"{recommended['threshold']:.1f} ({recommended['per_week']:.1f} a week, recall "
            f"{_pct(recommended['recall'])})" if recommended else "none fits"))
    if report.holdout is not None:
        held = report.holdout
        lines.append(f"holdout, {report.holdout_label}: {held['info']['leads']:,} leads")
        lines += ["  " + line for line in _quality_lines(held, capacity)]
    warnings = report.metrics["warnings"] + [w for w in (report.holdout or {}).get("warnings", [])
                                             if w not in report.metrics["warnings"]]
    if warnings:
        lines.append("warnings:")
        lines += [f"  - {w['message']}" for w in warnings]
    lines.append(f"{report.seconds:.2f} s")
    return "\n".join(lines)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 4)


def headline(report: Report) -> dict[str, Any]:
    """The JSON line: the figures a script or a CI check reads."""
    metrics, quality = report.metrics, report.metrics["quality"]
    cut, share = quality.get("at_capacity") or {}, quality.get("at_share") or {}
    recommended = (metrics.get("recommended") or {}).get("sql")
    out: dict[str, Any] = {
        "leads": len(report.result), "labeled": quality["labeled"], "unlabeled": quality["unlabeled"],
        "events": report.result.events, "intake_weeks": round(metrics["info"]["intake_weeks"], 3),
        "sql_share": _finite(metrics["sql_share"]), "sqls_per_week": _finite(metrics["sqls_per_week"]),
        "precision": _finite(metrics["sql_quality"]["precision"]), "recall": _finite(metrics["sql_quality"]["recall"]),
        "auc": _finite(quality["auc"]), "pr_auc": _finite(quality["pr_auc"]),
        "precision_at_capacity": _finite(cut.get("precision")), "recall_at_capacity": _finite(cut.get("recall")),
        "capacity_share": _finite(quality.get("capacity_share")),
        "handoff_share": share.get("share"), "precision_at_share": _finite(share.get("precision")),
        "recall_at_share": _finite(share.get("recall")),
        "recommended_sql_threshold": _finite(recommended["threshold"]) if recommended else None,
    }
    if report.holdout is not None:
        held, held_quality = report.holdout, report.holdout["quality"]
        held_cut = held_quality.get("at_capacity") or {}
        out.update({
            "holdout_leads": held["info"]["leads"], "holdout_auc": _finite(held_quality["auc"]),
            "holdout_pr_auc": _finite(held_quality["pr_auc"]),
            "holdout_precision": _finite(held["sql_quality"]["precision"]),
            "holdout_recall": _finite(held["sql_quality"]["recall"]),
            "holdout_precision_at_capacity": _finite(held_cut.get("precision")),
            "holdout_recall_at_capacity": _finite(held_cut.get("recall")),
        })
    out["seconds"] = round(report.seconds, 3)
    out["warnings"] = [w["message"] for w in metrics["warnings"]]
    return out


SCORE_COLUMNS = ("lead_id", "lead_key", "score", "fit", "engagement", "stage", "outcome", "won")


def write_scores(report: Report, path: str | Path) -> int:
    """One row per lead: ``score`` is the one the AUC ranks by (-inf: disqualified), ``engagement``
    the highest reached, ``stage`` the highest reached, ``outcome`` the last recorded."""
    target = Path(path)
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCORE_COLUMNS)
        for r in report.result.leads:
            writer.writerow([r.lead_id, report.lead_keys.get(r.lead_id, ""), r.score_before_outcome, r.fit,
                             round(r.max_engagement, 3), r.max_stage, r.outcome or "", r.won])
    return len(report.result.leads)
