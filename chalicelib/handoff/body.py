"""Build the handoff message body for committed transitions (pure: called inside the lead write).

The body is a plain dict in the ``baton.handoff.v1`` shape (``message.HandoffMessage``); it is
stored with the lead state as an outbox item, and the relay publishes it as JSON.
"""

from __future__ import annotations

from typing import Any

from chalicelib.display import shown_points, shown_score
from chalicelib.engine import explain
from chalicelib.engine.fit import unverified_fields
from chalicelib.events import iso
from chalicelib.handoff.message import SCHEMA_V1
from chalicelib.outbox.items import OutboxItem
from chalicelib.rules.compile import CompiledRoute, CompiledRuleset
from chalicelib.state import LeadState, Transition

TOP_REASONS = 8
_LEAD_FIELDS = ("first_name", "last_name", "job_title", "company", "country", "industry")


def route_for(rs: CompiledRuleset, state: LeadState, stage: str) -> CompiledRoute:
    """Where an alert for ``stage`` goes: marketing for MQLs, the lead's sales route for SQLs."""
    if stage == "mql":
        return rs.mql_route
    for route in rs.routes:
        if route.name == state.route:
            return route
    return rs.default_route


def _size(value: Any) -> int | None:
    try:
        return max(0, int(float(value)))
    except (TypeError, ValueError):
        return None


def handoff_body(
    state: LeadState, transition: Transition, rs: CompiledRuleset, source: str, explained: dict[str, Any],
    rescore: dict[str, int | None] | None = None,
) -> dict[str, Any]:
    """The ``baton.handoff.v1`` body (see docs/handoff-message.md); ``explained`` is ``explain``'s answer,
    ``rescore`` the re-score that made the transition (``from_version``, ``to_version``)."""
    attrs = state.attributes
    reasons = [{**r, "kind": "fit"} for r in explained["fit"]["rules"]]
    reasons += [
        {"rule": r["rule"], "label": f"{r['label']} ({r['rate']})" if "rate" in r else r["label"],
         "points": shown_points(r["points"]),
         "kind": "frequency" if rs.engagement_by_id[r["rule"]].freq_count else "engagement"}
        for r in explained["engagement"]["rules"]
    ]
    reasons.sort(key=lambda r: -abs(r["points"]))
    route = route_for(rs, state, transition.to_stage)
    deadline = transition.at + route.sla_hours * 3600 if transition.to_stage == "sql" else None
    return {
        "schema": SCHEMA_V1,
        "transition_id": transition.id,
        "lead_id": state.lead_id,
        "stage": transition.to_stage,
        "from_stage": transition.from_stage,
        "fast_track": transition.fast_track,
        "occurred_at": iso(transition.at),
        "ruleset_version": rs.version or 0,
        "route": {
            "name": route.name, "channel": route.channel, "sla_hours": route.sla_hours,
            "escalation_channel": route.escalation_channel,
        },
        "sla_deadline": iso(deadline),
        "lead": {
            "email": state.email,
            **{k: (str(attrs[k])[:200] if attrs.get(k) is not None else None) for k in _LEAD_FIELDS},
            "company_size": _size(attrs.get("company_size")),
            "unverified": unverified_fields(state, (*_LEAD_FIELDS, "company_size")),
        },
        "scores": {
            "fit": explained["fit"]["score"], "grade": explained["fit"]["grade"],
            "engagement": shown_score(explained["engagement"]["score"]),
        },
        "reasons": reasons[:TOP_REASONS],
        "key_events": [
            {"type": k["type"], "at": iso(k["at"]), "label": k["label"] + (f": {k['detail']}" if k.get("detail") else "")}
            for k in state.key_events[-5:]
        ],
        "source": source or "api",
        "reason": transition.reason,
        **({"rescore": rescore} if rescore else {}),
    }


def message_attributes(body: dict[str, Any]) -> dict[str, str]:
    """SNS message attributes, so subscribers can filter (e.g. a CRM sync taking only SQLs)."""
    return {
        "stage": body["stage"], "grade": body["scores"]["grade"], "route": body["route"]["name"],
        "source": body["source"], "schema": body["schema"], "kind": body.get("kind", "handoff"),
    }


def outbox_items(
    state: LeadState, transitions: list[Transition], rs: CompiledRuleset, source: str, now: float,
    explained: dict[str, Any] | None = None, rescore: dict[str, int | None] | None = None,
) -> list[OutboxItem]:
    """Messages for the transitions the rule set asks to announce (rule-driven ones only).

    ``explained`` is the write's own ``explain(state, rs, now)`` when the caller has it: the
    explanation is computed once per write, however many messages it makes.
    """
    items = []
    for transition in transitions:
        if transition.manual or transition.to_stage not in rs.notify:
            continue
        if explained is None:
            explained = explain(state, rs, now)
        body = handoff_body(state, transition, rs, source, explained, rescore)
        items.append(OutboxItem(transition.id, "handoff", body, message_attributes(body), now))
    return items
