"""Sales feedback: accepted, rejected, recycled, opportunity, won, lost, disqualified.

Feedback moves a lead where the rules never do (back to recycled, on to opportunity and customer).
Recycling re-arms qualification: engagement starts again from zero, and after the rule set's
cooldown the lead may qualify again.
"""

from __future__ import annotations

from chalicelib.engine.engagement import reset
from chalicelib.engine.stages import record_transition
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.state import STAGE_ORDER, LeadState, Transition

OUTCOMES = ("accepted", "rejected", "recycled", "opportunity", "won", "lost", "disqualified")


def apply_outcome(
    state: LeadState, outcome: str, rs: CompiledRuleset, now: float, reason: str | None = None,
    actor: str | None = None,
) -> list[Transition]:
    """Apply sales feedback at ``now``; returns the transition it caused, if any. The ``actor`` who
    first accepts the lead (or moves it on) becomes its owner, until it is recycled."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if state.last_outcome_at is None or now > state.last_outcome_at:
        state.last_outcome_at = now  # (an event dated before it, arriving after, replays the lead)
    why = f"sales: {outcome}" + (f" ({reason})" if reason else "")
    if outcome == "accepted":
        if state.accepted_at is None:
            state.accepted_at = now
            state.owner = actor
        if STAGE_ORDER[state.stage] < STAGE_ORDER["sql"] and state.stage != "disqualified":
            return [record_transition(state, rs, "sql", now, why, manual=True)]
        return []
    if outcome in ("rejected", "recycled", "lost"):
        if state.stage == "recycled":
            return []
        reset(state, rs)
        rs.caches.leads.drop(state.lead_id)  # (not kept up to date while the lead was settled: see stages)
        state.recycled_at = now
        state.fast_track = False
        state.handed_off_at = state.sla_deadline = None
        state.accepted_at = None
        state.owner = None
        state.disqualified_reason = None
        return [record_transition(state, rs, "recycled", now, why, manual=True)]
    if outcome == "disqualified":
        if state.stage == "disqualified":
            return []
        state.disqualified_reason = reason or "disqualified by sales"
        return [record_transition(state, rs, "disqualified", now, why, manual=True)]
    target = "opportunity" if outcome == "opportunity" else "customer"
    if STAGE_ORDER[state.stage] >= STAGE_ORDER[target]:
        return []
    if state.accepted_at is None:
        state.accepted_at = now
        state.owner = actor
    return [record_transition(state, rs, target, now, why, manual=True)]
