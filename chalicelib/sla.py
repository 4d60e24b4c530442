"""Sales SLAs: an SQL nobody acted on gets one reminder, then (if the route has one) an escalation."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import ConcurrencyConflict
from chalicelib.handoff import reminder_item
from chalicelib.rulesets import RulesetService
from chalicelib.store.base import Commit, LeadRepository


def check_sla(leads: LeadRepository, rulesets: RulesetService, now: float) -> dict[str, Any]:
    reminded = escalated = 0
    for lead_id in leads.sla_due(now):
        stored = leads.get(lead_id)
        if stored is None:
            continue
        state = stored.state
        if state.stage != "sql" or state.accepted_at is not None or state.sla_deadline is None:
            continue
        rs = rulesets.compiled(state.ruleset_version) if state.ruleset_version else rulesets.active()
        route = next((r for r in rs.routes if r.name == state.route), rs.default_route)
        kind = "reminder" if state.sla_reminders == 0 else "escalation"
        item = reminder_item(state, rs, kind, now)
        state.sla_reminders += 1
        # After the reminder, a second SLA period before escalating, if the route escalates at all.
        escalates = kind == "reminder" and route.escalation_channel is not None
        state.sla_deadline = now + route.sla_hours * 3600 if escalates else None
        try:
            leads.commit(Commit(state, stored.version, outbox=[item] if item else []))
        except ConcurrencyConflict:
            continue  # sales acted meanwhile, or another sweep got there: the next run decides
        if kind == "reminder":
            reminded += 1
        else:
            escalated += 1
    return {"reminded": reminded, "escalated": escalated}
