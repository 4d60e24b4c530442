"""What the lead page shows, read from the store: the lead, its score over time, its history.

The score over time is a replay of the lead's events and outcomes through the lead timeline under
the version that scores it now (what the backtest and the re-score do), sampled between events so
the engagement line shows its decay. The transitions marked are the ones the lead really went
through (its stage history), whatever a replay under today's rules would say.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib import timeline
from chalicelib.engine import engagement_at, explain, new_lead
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rulesets import RulesetService
from chalicelib.state import LeadState
from chalicelib.store.base import LeadRepository

SAMPLES = 120  # decay samples across the chart's span, besides a point before and after each item


@dataclass(frozen=True)
class Point:
    at: float
    fit: float
    engagement: float


@dataclass(frozen=True)
class LeadView:
    state: LeadState
    explanation: dict[str, Any]
    events: list[Event]  # oldest first
    outcomes: list[dict[str, Any]]
    series: list[Point]
    thresholds: dict[str, float]  # "MQL" / "SQL" -> the least engagement their rules name
    now: float


def lead_view(leads: LeadRepository, rulesets: RulesetService, lead_id: str, now: float) -> LeadView | None:
    stored = leads.get(lead_id)
    if stored is None:
        return None
    state = stored.state
    version = state.ruleset_version
    rs = rulesets.compiled(version) if version else rulesets.active()
    events, outcomes = leads.events(lead_id), leads.outcomes(lead_id)
    return LeadView(
        state=state, explanation=explain(state, rs, now), events=events, outcomes=outcomes,
        series=score_series(lead_id, state.email, events, outcomes, rs, max(now, state.last_seen)),
        thresholds=engagement_thresholds(rs), now=now,
    )


def score_series(lead_id: str, email: str | None, events: Sequence[Event], outcomes: Sequence[dict[str, Any]],
                 rs: CompiledRuleset, until: float) -> list[Point]:
    """Fit and engagement from the first item to ``until``: a point just before and just after each
    item (so a jump is drawn as one; before the first, a new lead's zero), and decay samples in
    between."""
    items = timeline.merge(events, [timeline.Outcome.from_record(lead_id, o) for o in outcomes if o.get("outcome")])
    if not items:
        return []
    state = new_lead(lead_id, email)
    start = items[0].ts
    grid = iter(_grid(start, until))
    pending = next(grid, None)
    points: list[Point] = []

    def sample(up_to: float) -> None:
        nonlocal pending
        while pending is not None and pending < up_to:
            if not points or pending > points[-1].at:
                points.append(Point(pending, state.fit, engagement_at(state, rs, max(pending, state.last_seen))))
            pending = next(grid, None)

    for item in items:
        sample(item.ts)
        points.append(Point(item.ts, state.fit, engagement_at(state, rs, max(item.ts, state.last_seen))))
        timeline.step(state, item, rs)
        points.append(Point(item.ts, state.fit, engagement_at(state, rs, max(item.ts, state.last_seen))))
    sample(until)
    if until > points[-1].at:
        points.append(Point(until, state.fit, engagement_at(state, rs, until)))
    return points


def _grid(start: float, end: float) -> Iterator[float]:
    step = (end - start) / SAMPLES
    if step <= 0:
        return
    for n in range(1, SAMPLES):
        yield start + n * step


def engagement_thresholds(rs: CompiledRuleset) -> dict[str, float]:
    """The least engagement each stage's rule names (``engagement >= 30`` somewhere in the MQL rule:
    30), for the lines drawn across the chart; a stage reached without one has no line."""
    found: dict[str, float] = {}
    for name, stage in (("MQL", "mql"), ("SQL", "sql")):
        bounds = rs.floors.get(stage)  # (compiled once, lowest first)
        if bounds:
            found[name] = bounds[0][0]
    return found
