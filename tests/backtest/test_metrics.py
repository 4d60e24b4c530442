"""Metrics on small hand-made results whose answers are known, and ``compare`` on real replays."""

from __future__ import annotations

import itertools
import math
import sys
from typing import Any

import pytest

from baton.backtest import BacktestResult, LeadReport, backtest
from baton.metrics import (
    by_channel,
    by_offer,
    compare,
    funnel,
    lift_by_decile,
    quantile,
    recommend_threshold,
    sql_quality,
    stage_counts,
    stage_matrix,
    summary,
    threshold_sweep,
    time_to_stage,
    to_frame,
    weekly_sqls,
)
from chalicelib.events import Event
from chalicelib.rules import compile_ruleset, default_ruleset, parse_ruleset

DAY = 86400.0
T0 = 1_767_571_200.0  # Monday 2026-01-05 00:00 UTC
RS = compile_ruleset(default_ruleset(), 1)


def lead(i: int, **kw: Any) -> LeadReport:
    values: dict[str, Any] = {
        "lead_id": f"L{i:03d}", "email": f"u{i}@acme.io", "stage": "lead", "max_stage": "lead", "fit": 0.0,
        "grade": "D", "engagement": 0.0, "max_engagement": 0.0, "max_score": 0.0, "first_seen": T0,
        "last_seen": T0, "mql_at": None, "sql_at": None, "fast_track": False, "disqualified_reason": None,
        "channel_source": "google", "channel_medium": "cpc", "offers": (), "outcome": None, "outcome_at": None,
        "won": False, "events": 1,
    }
    values.update(kw)
    if "score_before_outcome" not in kw:  # the ranking score: disqualified leads below every other
        values["score_before_outcome"] = -math.inf if values["disqualified_reason"] else values["max_score"]
    return LeadReport(**values)


def result(leads: list[LeadReport], weeks: float = 4) -> BacktestResult:
    return BacktestResult(
        leads=leads, ruleset=RS, events=len(leads), scored=len(leads), duplicates=0, pending_anonymous=0, dropped=0,
        outcomes_applied=0, unmatched_outcomes=0, start=T0, end=T0 + weeks * 7 * DAY, seconds=0.0, workers=1,
    )


@pytest.fixture
def ten() -> BacktestResult:
    """10 leads: 5 MQLs (one fast-tracked straight to SQL), 3 SQLs, 2 opportunities, 1 won."""
    return result([
        lead(0, stage="customer", max_stage="customer", mql_at=T0 + DAY, sql_at=T0 + 2 * DAY, won=True,
             outcome="won", channel_source="linkedin", channel_medium="paid", offers=("demo", "ebook")),
        lead(1, stage="opportunity", max_stage="opportunity", sql_at=T0 + 3 * DAY, fast_track=True,
             offers=("demo",)),
        lead(2, stage="recycled", max_stage="sql", mql_at=T0 + 4 * DAY, sql_at=T0 + 10 * DAY, outcome="rejected",
             channel_source="linkedin", channel_medium="paid"),
        lead(3, stage="mql", max_stage="mql", mql_at=T0 + 2 * DAY, offers=("ebook",)),
        lead(4, stage="mql", max_stage="mql", mql_at=T0 + 3 * DAY),
        lead(5, stage="disqualified", disqualified_reason="Works for a competitor"),
        *(lead(i) for i in range(6, 10)),
    ])


def test_stage_counts(ten: BacktestResult) -> None:
    counts = stage_counts(ten)
    assert counts["final"] == {"lead": 4, "mql": 2, "sql": 0, "opportunity": 1, "customer": 1, "recycled": 1,
                               "disqualified": 1}
    assert counts["max"] == {"lead": 5, "mql": 2, "sql": 1, "opportunity": 1, "customer": 1}


def test_funnel(ten: BacktestResult) -> None:
    rows = {r["step"]: r for r in funnel(ten)}
    assert [rows[s]["leads"] for s in ("lead", "mql", "sql", "opportunity", "won")] == [10, 5, 3, 2, 1]
    assert rows["mql"]["from_previous"] == 0.5
    assert rows["sql"]["from_previous"] == pytest.approx(0.6)
    assert rows["won"]["from_previous"] == 0.5 and rows["won"]["from_leads"] == 0.1


def test_sql_quality() -> None:
    res = result([
        lead(0, sql_at=T0, won=True), lead(1, sql_at=T0, won=True), lead(2, sql_at=T0), lead(3, sql_at=T0),
        lead(4, won=True), lead(5),
    ])
    q = sql_quality(res)
    assert (q["sqls"], q["won"], q["won_sqls"]) == (4, 3, 2)
    assert q["precision"] == 0.5 and q["recall"] == pytest.approx(2 / 3)
    assert q["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


@pytest.fixture
def twenty() -> BacktestResult:
    """Scores 1..20; won at 20, 19, 18 and 5; score 15 is a disqualified lead. 4 weeks."""
    won = {20, 19, 18, 5}
    return result([  # created evenly over the 4 weeks: the intake span is 4 weeks
        lead(s, max_score=float(s), max_engagement=float(s) / 2, won=s in won, first_seen=T0 + (s - 1) * 4 * 7 * DAY / 20,
             disqualified_reason="competitor" if s == 15 else None)
        for s in range(1, 21)
    ])


def test_lift_by_decile(twenty: BacktestResult) -> None:
    rows = lift_by_decile(twenty)
    assert [r["leads"] for r in rows] == [2] * 10
    assert [r["won"] for r in rows] == [2, 1, 0, 0, 0, 0, 0, 1, 0, 0]
    assert rows[0]["lift"] == pytest.approx(5.0) and rows[1]["lift"] == pytest.approx(2.5)
    # the disqualified lead (15) ranks below every other: the last decile holds 1 and it
    assert rows[0]["max_score"] == 20 and rows[0]["min_score"] == 19 and rows[9]["max_score"] == 1
    assert rows[9]["min_score"] == -math.inf


def test_threshold_sweep_counts_leads_over_each_threshold(twenty: BacktestResult) -> None:
    rows = threshold_sweep(twenty, thresholds=[0, 10, 18.5, 25])
    # 19 eligible leads (15 is disqualified: disqualifiers override scores)
    assert [r["leads"] for r in rows] == [19, 10, 2, 0]
    assert [r["won"] for r in rows] == [4, 3, 2, 0]
    assert rows[0]["precision"] == pytest.approx(4 / 19) and rows[1]["precision"] == pytest.approx(0.3)
    assert [r["recall"] for r in rows] == [1.0, 0.75, 0.5, 0.0]
    assert [r["per_week"] for r in rows] == [19 / 4, 2.5, 0.5, 0.0]
    assert rows[3]["precision"] is None and rows[3]["f1"] is None


def test_threshold_sweep_defaults_to_evenly_spaced_points(twenty: BacktestResult) -> None:
    rows = threshold_sweep(twenty, points=50)
    assert len(rows) == 50
    assert rows[0]["threshold"] == 1 and rows[-1]["threshold"] == 20
    assert all(a["leads"] >= b["leads"] for a, b in itertools.pairwise(rows))
    engagement = threshold_sweep(twenty, score="engagement", points=50)
    assert engagement[-1]["threshold"] == 10
    with pytest.raises(ValueError, match="score must be one of"):
        threshold_sweep(twenty, score="nope")


def test_sweep_limited_to_grades(twenty: BacktestResult) -> None:
    for report in twenty.leads:
        report.grade = "A" if int(report.max_score) % 2 == 0 else "C"  # even scores are A-grade leads
    rows = threshold_sweep(twenty, thresholds=[0, 10], grades={"A"})
    assert [r["leads"] for r in rows] == [10, 6]  # 2..20 even; 10..20 even
    assert [r["won"] for r in rows] == [2, 2]  # 20 and 18 (19 and 5 are odd)
    assert rows[0]["recall"] == 0.5


def test_stage_grades_are_read_from_the_stage_rules() -> None:
    from baton.backtest.authoring import stage_grades

    ruleset = default_ruleset()
    assert stage_grades(ruleset, "mql") == {"A", "B"}
    assert stage_grades(ruleset, "sql") == {"A"}
    assert stage_grades(ruleset, "fast_track") is None  # no engagement bound there


def test_recommend_threshold_is_the_lowest_within_capacity(twenty: BacktestResult) -> None:
    sweep = threshold_sweep(twenty, thresholds=[0, 10, 18.5, 25])
    assert recommend_threshold(sweep, weekly_capacity=3)["threshold"] == 10  # type: ignore[index]
    assert recommend_threshold(sweep, weekly_capacity=5)["threshold"] == 0  # type: ignore[index]
    assert recommend_threshold(sweep, weekly_capacity=0.1)["threshold"] == 25  # type: ignore[index]
    assert recommend_threshold(sweep, weekly_capacity=-1) is None


def test_by_channel_and_offer(ten: BacktestResult) -> None:
    channels = {r["channel"]: r for r in by_channel(ten)}
    assert set(channels) == {"google/cpc", "linkedin/paid"}
    li = channels["linkedin/paid"]
    assert (li["leads"], li["mqls"], li["sqls"], li["won"], li["source"], li["medium"]) == (2, 2, 2, 1, "linkedin",
                                                                                            "paid")
    assert channels["google/cpc"]["mql_rate"] == pytest.approx(3 / 8)
    offers = {r["offer"]: r for r in by_offer(ten)}
    assert (offers["demo"]["leads"], offers["demo"]["sqls"], offers["demo"]["won"]) == (2, 2, 1)
    assert (offers["ebook"]["leads"], offers["ebook"]["mqls"], offers["ebook"]["mql_to_won"]) == (2, 2, 0.5)


def test_time_to_stage() -> None:
    res = result([lead(i, mql_at=T0 + d * DAY) for i, d in enumerate((1, 2, 3, 4, 10))] + [lead(9)])
    t = time_to_stage(res)
    assert t["mql"]["leads"] == 5 and t["mql"]["median_days"] == 3
    assert t["mql"]["p90_days"] == pytest.approx(7.6)
    assert t["sql"] == {"leads": 0, "median_days": None, "p90_days": None}
    assert quantile([5.0], 0.9) == 5.0


def test_weekly_sqls_includes_empty_weeks_and_capacity() -> None:
    res = result([
        lead(0, sql_at=T0 + 1 * DAY), lead(1, sql_at=T0 + 6.9 * DAY), lead(2, sql_at=T0 + 7 * DAY),
        lead(3, sql_at=T0 + 22 * DAY), lead(4),
    ], weeks=4)
    rows = weekly_sqls(res, capacity=1)
    assert [(r["week"], r["sqls"]) for r in rows] == [
        ("2026-01-05", 2), ("2026-01-12", 1), ("2026-01-19", 0), ("2026-01-26", 1), ("2026-02-02", 0),
    ]
    assert [r["over_capacity"] for r in rows] == [True, False, False, False, False]


def test_summary_holds_every_metric(ten: BacktestResult) -> None:
    out = summary(ten, weekly_capacity=2)
    assert {"info", "stages", "funnel", "sql_quality", "lift", "channels", "offers", "time_to_stage",
            "weekly_sqls", "sweep", "recommended", "sqls_per_week"} <= set(out)
    assert set(out["sweep"]) == {"mql", "sql", "engagement", "score"}
    assert all(len(rows) == 50 for rows in out["sweep"].values())
    assert set(out["recommended"]) == set(out["sweep"])
    # every lead was created the same day: intake is one day long, however late the outcomes came
    assert out["sqls_per_week"] == pytest.approx(3 * 7)


def test_to_frame_helpers(ten: BacktestResult) -> None:
    frame = to_frame(funnel(ten))
    assert list(frame["step"]) == ["lead", "mql", "sql", "opportunity", "won"]
    assert to_frame(stage_counts(ten)).loc["final", "customer"] == 1
    assert len(ten.to_frame()) == 10


def test_metrics_do_not_import_pandas_until_asked() -> None:
    import subprocess

    code = ("import sys, baton.backtest, baton.backtest.io, baton.synth, "
            "baton.backtest.export, baton.backtest.online;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'pyarrow', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- compare, on real replays ----------------------------------------------------------------------------


def _manager_history() -> list[Event]:
    """A B-grade manager (45 fit) who signs up (5) and views pricing three times: 10 + 10 + 10 + 15 (burst)."""
    traits = {"job_title": "Marketing Manager", "company_size": 200}
    events = [Event("f", "form_submitted", T0, "m@acme.io", traits=traits, properties={"form_id": "newsletter"})]
    events += [Event(f"p{i}", "page_view", T0 + 3600 * (i + 1), "m@acme.io", properties={"path": "/pricing"})
               for i in range(3)]
    events.append(Event("s", "page_view", T0, "s@uni.edu", properties={"path": "/pricing"}))
    return events


def _variant(change: Any) -> Any:
    body = default_ruleset().model_dump(mode="json", by_alias=True)
    change(body)
    return parse_ruleset(body)


def test_compare_names_changed_stage_rules() -> None:
    def stricter(body: dict[str, Any]) -> None:
        body["stages"]["mql"]["when"]["any"][0]["all"][1]["value"] = 60

    events = _manager_history()
    a = backtest(events, default_ruleset())
    b = backtest(events, _variant(stricter))
    rows = compare(a, b)
    assert len(rows) == 1
    (row,) = rows
    assert (row["email"], row["stage_a"], row["stage_b"]) == ("m@acme.io", "mql", "lead")
    assert row["reason_a"] == "engagement 49.9 of 30 needed, fit B (45)" and row["reason_b"] is None
    assert [w["kind"] for w in row["why"]] == ["stage rule"]
    assert row["why"][0]["rule"] == "mql"
    assert stage_matrix(a, b) == {"mql": {"lead": 1}, "disqualified": {"disqualified": 1}}


def test_compare_names_changed_contributions() -> None:
    def title_worth_nothing(body: dict[str, Any]) -> None:
        for rule in body["fit"]:
            if rule["id"] == "title-manager":
                rule["points"] = 0

    events = _manager_history()
    a = backtest(events, default_ruleset())
    b = backtest(events, _variant(title_worth_nothing))
    (row,) = compare(a, b)
    kinds = [(w["kind"], w["rule"]) for w in row["why"]]
    assert ("grade", "grade") in kinds and ("fit", "title-manager") in kinds
    fit_row = next(w for w in row["why"] if w["rule"] == "title-manager")
    assert (fit_row["a"], fit_row["b"], fit_row["delta"]) == (15.0, 0.0, -15.0)


def test_compare_without_kept_states_replays_the_differing_leads() -> None:
    events = _manager_history()
    a = backtest(events, default_ruleset(), workers=2)
    same = backtest(events, _variant(lambda body: body["stages"].update(sql_requires_mql=False)))
    assert compare(a, same) == []  # nothing differs for these leads
    stricter = backtest(events, _variant(lambda body: body["grades"].__setitem__(1, {"grade": "B", "min_fit": 50})))
    (row,) = compare(a, stricter)
    assert row["why"][0] == {"kind": "grade", "rule": "grade", "a": "B", "b": "C", "delta": None}
    assert [w["kind"] for w in row["why"]] == ["grade", "grade bands"]
    hand_made = result([lead(0, lead_id=a.leads[0].lead_id, stage="sql", max_stage="sql")])
    with pytest.raises(ValueError, match="no final state"):
        compare(hand_made, a)
