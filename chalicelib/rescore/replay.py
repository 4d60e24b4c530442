"""Re-scoring a lead under another rule-set version from its stored history (pure).

Used when a version is published (every lead moves to the new rules) and when a shadow version
starts (its view of each lead starts from the same history). The history is read through the lead
timeline, as the live service and the backtest read it. Stages stay forward-only: the new rules may
take a lead further, never back (``timeline.forward_only``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib import timeline
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.state import LeadState, Transition


def replay(
    lead_id: str, email: str | None, events: Sequence[Event], outcomes: Sequence[dict[str, Any]],
    rs: CompiledRuleset,
) -> LeadState:
    """The state the rules would have built from this history (events as the store returns them,
    outcomes as ``LeadService.record_outcome`` stored them)."""
    feedback = [timeline.Outcome.from_record(lead_id, o) for o in outcomes if o.get("outcome")]
    return timeline.rebuild(lead_id, email, events, feedback, rs)[0]


def rescore_state(
    old: LeadState, events: Sequence[Event], outcomes: Sequence[dict[str, Any]], rs: CompiledRuleset, now: float
) -> tuple[LeadState, list[Transition]]:
    """The lead under ``rs``: scores from a full replay, the stage moved forward only."""
    fresh = replay(old.lead_id, old.email, events, outcomes, rs)
    state, transitions = timeline.forward_only(old, fresh, rs, now, f"re-score v{rs.version}")
    state.rescored_version = rs.version
    return state, transitions
