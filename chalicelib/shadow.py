"""Shadow (pilot) scoring: a candidate rule set scores live traffic beside the active one, never alerting.

A lead's shadow view lives inside its own item (``LeadState.shadow``), so scoring it costs no extra
round trip. When a shadow starts, its re-score job replays each lead's history under it
(``replayed``), so comparisons are fair; a lead it has not replayed yet starts from its attributes.
``compare`` reads both views side by side and judges where they disagree by what sales made of the lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.engine import explain, new_lead
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.state import STAGE_ORDER, LeadState
from chalicelib.store.base import LeadRepository
from chalicelib.timeline import apply

_DECISIVE = ("won", "opportunity", "lost", "rejected", "disqualified")


def view(state: LeadState, version: int | None) -> LeadState | None:
    """The shadow rule set's state for this lead, if it has one for ``version``."""
    shadow = state.shadow
    if not shadow or shadow.get("version") != version:
        return None
    return LeadState.from_dict(shadow["state"])


def replayed(state: LeadState, version: int | None) -> bool:
    """Whether the shadow's re-score has replayed this lead's whole history under ``version``."""
    shadow = state.shadow
    return bool(shadow and shadow.get("version") == version and shadow.get("replayed"))


def score(state: LeadState, events: Sequence[Event], rs: CompiledRuleset, now: float) -> None:
    """Score live events under the pilot rule set too, inside the same item: no extra round trip."""
    version = rs.version
    current = view(state, version)
    if current is None:
        current = new_lead(state.lead_id, state.email)
        current.attributes = dict(state.attributes)
    apply(current, events, rs, now)  # transitions are recorded in the view, never announced
    state.shadow = {"version": version, "state": _stored(current), "replayed": replayed(state, version)}


def start(state: LeadState, history: LeadState, version: int | None) -> None:
    """Make ``history`` (the lead's history replayed under ``version``) its shadow view."""
    state.shadow = {"version": version, "state": _stored(history), "replayed": True}


def _stored(view_state: LeadState) -> dict[str, Any]:
    # The view is only given events the active state found fresh: its own dedupe memory would only
    # double the part of the item that senders' ids fill.
    return {**view_state.to_dict(), "recent_ids": []}


def compare(
    leads: LeadRepository, active: CompiledRuleset, shadow: CompiledRuleset, now: float, limit: int = 2000
) -> dict[str, Any]:
    """Active and shadow side by side over up to ``limit`` leads: funnel counts and disagreements."""
    version = shadow.version
    counts = {"active": {"mql": 0, "sql": 0}, "shadow": {"mql": 0, "sql": 0}}
    verdict = {"active_right": 0, "shadow_right": 0, "undecided": 0}
    disagreements: list[dict[str, Any]] = []
    compared = 0
    for lead_id in leads.lead_ids()[:limit]:
        stored = leads.get(lead_id)
        other = view(stored.state, version) if stored else None
        if stored is None or other is None:
            continue
        compared += 1
        mine = stored.state
        for name, state in (("active", mine), ("shadow", other)):
            reached = max((STAGE_ORDER.get(h["stage"], 0) for h in state.stage_history), default=0)
            counts[name]["mql"] += reached >= STAGE_ORDER["mql"]
            counts[name]["sql"] += reached >= STAGE_ORDER["sql"]
        active_sql, shadow_sql = _reached_sql(mine), _reached_sql(other)
        if active_sql == shadow_sql and _top(mine) == _top(other):
            continue
        outcome = _final_outcome(leads.outcomes(lead_id))
        right = _who_was_right(active_sql, shadow_sql, outcome)
        verdict[right] += 1
        disagreements.append({
            "lead_id": lead_id, "active_stage": _top(mine), "shadow_stage": _top(other), "outcome": outcome,
            "right": right, "why": _why(mine, active, other, shadow, now),
        })
    return {"active_version": active.version, "shadow_version": version, "compared": compared,
            "counts": counts, "disagreements": disagreements[:200], "verdict": verdict}


def _top(state: LeadState) -> str:
    return max(({h["stage"] for h in state.stage_history} | {state.stage}), key=lambda s: STAGE_ORDER.get(s, 0))


def _reached_sql(state: LeadState) -> bool:
    return any(h["stage"] == "sql" for h in state.stage_history) or STAGE_ORDER.get(state.stage, 0) >= 2


def _final_outcome(outcomes: list[dict[str, Any]]) -> str | None:
    decisive = [o["outcome"] for o in outcomes if o.get("outcome") in _DECISIVE]
    return decisive[-1] if decisive else None


def _who_was_right(active_sql: bool, shadow_sql: bool, outcome: str | None) -> str:
    if outcome is None or active_sql == shadow_sql:
        return "undecided"
    good = outcome in ("won", "opportunity")
    return "active_right" if active_sql == good else "shadow_right"


def _why(a: LeadState, ars: CompiledRuleset, s: LeadState, srs: CompiledRuleset, now: float) -> list[str]:
    """The rule contributions that differ between the two versions."""
    ea, es = explain(a, ars, now), explain(s, srs, now)
    lines = []
    for kind in ("fit", "engagement"):
        left = {r["rule"]: r["points"] for r in ea[kind]["rules"]}
        right = {r["rule"]: r["points"] for r in es[kind]["rules"]}
        for rule in sorted(set(left) | set(right)):
            if round(left.get(rule, 0), 1) != round(right.get(rule, 0), 1):
                lines.append(f"{kind} {rule}: active {left.get(rule, 0):.1f}, shadow {right.get(rule, 0):.1f}")
    for name, state in (("active", a), ("shadow", s)):
        last = state.stage_history[-1] if state.stage_history else None
        lines.append(f"{name}: {last['stage']} ({last['reason']})" if last else f"{name}: still a lead")
    return lines[:12]
