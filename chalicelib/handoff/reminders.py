"""Sales SLAs: an SQL nobody acted on gets one reminder, then (if the route has one) an escalation.

The clock runs from when sales was told: when Slack acknowledged the SQL's alert (its delivery
record, ``outbox.items.Delivery``), not when the lead became an SQL. While the alert is still
pending (Slack down, the channel's queue) or parked, nobody is reminded; the lead's deadline moves
on. A lead whose alert record is gone (delivered more than 30 days ago, or never announced) keeps
the deadline the transition set.

A reminder carries the handoff body of the transition that made the lead an SQL, plus ``kind``
and ``overdue_hours``; it goes through the outbox like the handoff itself.
"""

from __future__ import annotations

from typing import Any

from chalicelib.engine import explain
from chalicelib.errors import ConcurrencyConflict
from chalicelib.handoff.body import handoff_body, message_attributes, route_for
from chalicelib.outbox.items import OutboxItem
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rulesets import RulesetService
from chalicelib.state import LeadState, Transition
from chalicelib.store.base import Commit, LeadRepository, OutboxRepository


def sql_transition(state: LeadState) -> Transition | None:
    """The transition that made the lead an SQL, rebuilt from its stage history.

    It came from the stage recorded before it: ``mql`` usually, ``lead`` or ``recycled`` for a
    fast track. Every lead starts as ``lead``, so an SQL first in the history came from there.
    """
    history = state.stage_history
    for n in range(len(history) - 1, -1, -1):
        entry = history[n]
        if entry["stage"] == "sql" and "transition_id" in entry:  # (not a late event's note)
            return Transition(
                id=entry["transition_id"], lead_id=state.lead_id,
                from_stage=history[n - 1]["stage"] if n else "lead", to_stage="sql",
                at=entry["at"], reason=entry["reason"], ruleset_version=entry.get("ruleset_version"),
                fast_track=state.fast_track,
            )
    return None


def reminder_item(state: LeadState, rs: CompiledRuleset, kind: str, now: float, told_at: float | None = None
                  ) -> OutboxItem | None:
    """An SLA reminder or escalation for an SQL nobody has acted on (same body, plus ``kind``);
    overdue since the first deadline: ``told_at`` (when sales got the alert) plus the SLA."""
    transition = sql_transition(state)
    if transition is None:
        return None
    body = handoff_body(state, transition, rs, "sla", explain(state, rs, transition.at))
    body["kind"] = kind
    deadline = (told_at if told_at is not None else transition.at) + body["route"]["sla_hours"] * 3600
    body["overdue_hours"] = round(max(0.0, now - deadline) / 3600, 1)
    attributes = {**message_attributes(body), "kind": kind}
    return OutboxItem(f"{transition.id}.{kind}", kind, body, attributes, now)


def told_at(state: LeadState, deliveries: OutboxRepository | None) -> float | None:
    """When sales got the SQL's alert: None while it is not delivered; the transition's time when
    there is no record of it (long delivered, or never announced)."""
    transition = sql_transition(state)
    if transition is None:
        return None
    record = deliveries.delivery(transition.id) if deliveries is not None else None
    if record is None:
        return transition.at
    return record.delivered_at if record.status == "delivered" else None


def sla_overdue(state: LeadState, rs: CompiledRuleset, deliveries: OutboxRepository | None, now: float) -> bool:
    """Whether an SQL nobody accepted is past its SLA: reminded already, or told longer than one SLA ago
    (what ``check_sla`` reminds on at its next run)."""
    if state.stage != "sql" or state.accepted_at is not None:
        return False
    if state.sla_reminders > 0:
        return True
    told = told_at(state, deliveries)
    return told is not None and told + route_for(rs, state, "sql").sla_hours * 3600 <= now


def check_sla(leads: LeadRepository, rulesets: RulesetService, now: float,
              deliveries: OutboxRepository | None = None) -> dict[str, Any]:
    reminded = escalated = moved = 0
    for lead_id in leads.sla_due(now):
        stored = leads.get(lead_id)
        if stored is None:
            continue
        state = stored.state
        if state.stage != "sql" or state.accepted_at is not None or state.sla_deadline is None:
            continue
        rs = rulesets.compiled(state.ruleset_version) if state.ruleset_version else rulesets.active()
        route = route_for(rs, state, "sql")
        sla = route.sla_hours * 3600
        told = told_at(state, deliveries)
        if state.sla_reminders == 0 and (told is None or told + sla > now):
            # Not told yet (check again one SLA from now), or told later than the transition.
            state.sla_deadline = now + sla if told is None else told + sla
            item = None
        else:
            kind = "reminder" if state.sla_reminders == 0 else "escalation"
            item = reminder_item(state, rs, kind, now, told)
            state.sla_reminders += 1
            # After the reminder, a second SLA period before escalating, if the route escalates at all.
            escalates = kind == "reminder" and route.escalation_channel is not None
            state.sla_deadline = now + sla if escalates else None
        try:
            leads.commit(Commit(state, stored.version, outbox=[item] if item else []))
        except ConcurrencyConflict:
            continue  # sales acted meanwhile, or another sweep got there: the next run decides
        if item is None:
            moved += 1
        elif item.kind == "reminder":
            reminded += 1
        else:
            escalated += 1
    return {"reminded": reminded, "escalated": escalated, "deadlines_moved": moved}
