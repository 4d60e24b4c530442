"""Re-scoring a lead under another rule-set version from its stored history (pure).

Used when a version is published (every lead moves to the new rules) and when a shadow version
starts (its view of each lead starts from the same history). The history is read through the lead
timeline, as the live service and the backtest read it. Stages stay forward-only: the new rules may
take a lead further, never back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib import timeline
from chalicelib.engine import new_lead, record_transition
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.state import STAGE_ORDER, LeadState, Transition

# What a lead's journey owns, as opposed to what scoring recomputes.
_JOURNEY = (
    "stage", "stage_history", "transitions_count", "handed_off_at", "route", "sla_deadline", "sla_reminders",
    "accepted_at", "owner", "recycled_at", "disqualified_reason", "fast_track", "shadow",
)
_PRE_SALES = frozenset({"lead", "recycled", "mql"})


def replay(
    lead_id: str, email: str | None, events: Sequence[Event], outcomes: Sequence[dict[str, Any]],
    rs: CompiledRuleset,
) -> LeadState:
    """The state the rules would have built from this history (events as the store returns them,
    outcomes as ``LeadService.record_outcome`` stored them)."""
    state = new_lead(lead_id, email)
    feedback = [timeline.Outcome.from_record(lead_id, o) for o in outcomes if o.get("outcome")]
    timeline.replay(state, timeline.merge(events, feedback), rs)
    return state


def rescore_state(
    old: LeadState, events: Sequence[Event], outcomes: Sequence[dict[str, Any]], rs: CompiledRuleset, now: float
) -> tuple[LeadState, list[Transition]]:
    """The lead under ``rs``: scores from a full replay, the stage moved forward only."""
    fresh = replay(old.lead_id, old.email, events, outcomes, rs)
    state = fresh.copy()
    for name in _JOURNEY:
        setattr(state, name, getattr(old, name))
    state.attributes = {**old.attributes, **fresh.attributes}
    state.rescored_version = rs.version
    state.ruleset_version = rs.version
    transitions: list[Transition] = []
    reason = fresh.stage_history[-1]["reason"] if fresh.stage_history else ""
    if old.stage in _PRE_SALES:
        if fresh.stage == "disqualified":
            state.disqualified_reason = fresh.disqualified_reason
            transitions.append(record_transition(state, rs, "disqualified", now, f"re-score v{rs.version}: {reason}"))
        elif fresh.stage != "recycled" and STAGE_ORDER[fresh.stage] > STAGE_ORDER[old.stage]:
            state.fast_track = fresh.fast_track
            transitions.append(record_transition(state, rs, fresh.stage, now, f"re-score v{rs.version}: {reason}"))
    return state, transitions
