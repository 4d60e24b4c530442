"""Lists of leads for sales ops: by stage, route, owner, since when, and what they await.

The leads table's ``stage`` index (``infra/data-plane.yaml``) holds each lead's state item under its
stage (hash key) and the time it entered that stage (``stage_at``, range key), with the few
attributes a list filters on and shows (``listing_attributes``). Those change only with the lead's
journey (a transition, an acceptance, an SLA sweep): an event that only moves the score rewrites
nothing in the index, and the write path's calls stay what they were (one conditional write).

Newest first. A cursor is the opaque position of the last lead of a page.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.errors import ValidationFailed
from chalicelib.events import iso, to_epoch
from chalicelib.state import STAGE_ORDER, LeadState

AWAITING = ("sales", "overdue")
PARAMETERS = ("stage", "route", "since", "owner", "awaiting", "limit", "cursor")
LOOKUP_PARAMETERS = ("email", "limit", "cursor")  # one lead by address: its events paged
MAX_LIMIT = 200
MAX_TEXT = 200  # a route name or an owner: longer ones exist nowhere
# What the ``stage`` index projects besides its keys (infra/data-plane.yaml says the same; a test checks).
PROJECTED = ("email", "route", "owner", "accepted_at", "handed_off_at", "sla_deadline", "sla_reminders")
_LEAD_ID = re.compile(r"^L[0-9a-f]{24}$")


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last lead's ``stage_at`` and id (the index's order)."""

    stage_at: float
    lead_id: str


@dataclass(frozen=True)
class LeadQuery:
    stage: str
    route: str | None = None
    owner: str | None = None
    since: float | None = None  # entered its stage at or after this time
    awaiting: str | None = None  # "sales": handed over, no answer yet; "overdue": that, past its SLA
    limit: int = 50
    after: Position | None = None


def check_lookup(params: Mapping[str, str]) -> None:
    """The query string of ``GET /v1/leads?email=`` (one lead, its events paged by ``limit`` and
    ``cursor``): a list's parameters beside ``email`` are a 422 naming them, not silently dropped."""
    conflicting = [name for name in PARAMETERS if name in params and name not in LOOKUP_PARAMETERS]
    if conflicting:
        raise ValidationFailed(
            f"email looks one lead up (its events paged by limit and cursor); {', '.join(conflicting)} "
            f"{'filters' if len(conflicting) == 1 else 'filter'} a list of leads and cannot be combined with it",
            field=conflicting[0],
            details={"errors": [{"field": name, "message": f"{name} does not combine with email"}
                                for name in conflicting]})
    unknown = sorted(set(params) - set(PARAMETERS) - set(LOOKUP_PARAMETERS))
    if unknown:
        raise ValidationFailed(f"unknown parameter {unknown[0]}; email takes limit and cursor", field=unknown[0])


def parse_query(params: Mapping[str, str]) -> LeadQuery:
    """The query string of ``GET /v1/leads`` (without ``email``); a 422 names the parameter."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ValidationFailed(f"unknown parameter {unknown[0]}; lists take {', '.join(PARAMETERS)} "
                               "(or email alone, to look one lead up)", field=unknown[0])
    awaiting = params.get("awaiting")
    if awaiting is not None and awaiting not in AWAITING:
        raise ValidationFailed("awaiting must be sales or overdue", field="awaiting")
    stage = params.get("stage") or ("sql" if awaiting else None)
    if stage is None:
        raise ValidationFailed("stage is required to list leads (or email, to look one lead up)", field="stage")
    if stage not in STAGE_ORDER:
        raise ValidationFailed(f"stage must be one of {', '.join(STAGE_ORDER)}", field="stage")
    if awaiting and stage != "sql":
        raise ValidationFailed("awaiting applies to SQLs only (stage=sql)", field="awaiting")
    return LeadQuery(
        stage=stage, route=_text(params, "route"), owner=_text(params, "owner"), since=_since(params.get("since")),
        awaiting=awaiting, limit=_limit(params.get("limit")), after=decode_cursor(params.get("cursor")),
    )


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not value.strip() or len(value) > MAX_TEXT:
        raise ValidationFailed(f"{name} must be 1 to {MAX_TEXT} characters", field=name)
    return value


def _since(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return to_epoch(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except ValueError:
        raise ValidationFailed("since must be an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T09:00:00Z",
                               field="since") from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return LeadQuery.limit
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


def encode_cursor(position: Position) -> str:
    raw = json.dumps([position.stage_at, position.lead_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None) -> Position | None:
    if raw is None:
        return None
    try:
        stage_at, lead_id = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError, binascii.Error):
        stage_at = lead_id = None
    if (not isinstance(stage_at, (int, float)) or isinstance(stage_at, bool) or not math.isfinite(stage_at)
            or not isinstance(lead_id, str) or not _LEAD_ID.match(lead_id)):
        raise ValidationFailed("cursor is not one this API gave out; start again without it", field="cursor")
    return Position(float(stage_at), lead_id)


def stage_at(state: LeadState) -> float:
    """When the lead entered its stage (its first event for a lead that never moved)."""
    if state.stage_history:
        return float(state.stage_history[-1]["at"])
    return float(state.first_seen or state.last_seen or 0.0)


def listing_attributes(state: LeadState) -> dict[str, Any]:
    """What the ``stage`` index keeps of a state item (keys, then its projection); unset ones left out."""
    values: dict[str, Any] = {
        "stage": state.stage, "stage_at": stage_at(state), "email": state.email, "route": state.route,
        "owner": state.owner, "accepted_at": state.accepted_at, "handed_off_at": state.handed_off_at,
        "sla_deadline": state.sla_deadline, "sla_reminders": state.sla_reminders or None,
    }
    return {k: v for k, v in values.items() if v is not None}


def matches(attrs: Mapping[str, Any], query: LeadQuery, now: float) -> bool:
    """Whether an index entry belongs to the list (the DynamoDB store says the same in expressions).
    For ``overdue`` this admits candidates: past the stored deadline, or already reminded; the
    service checks the first kind against when sales was told (``handoff.reminders.sla_overdue``)."""
    if attrs.get("stage") != query.stage:
        return False
    if query.since is not None and attrs["stage_at"] < query.since:
        return False
    if query.after is not None and (attrs["stage_at"], attrs["lead_id"]) >= (query.after.stage_at, query.after.lead_id):
        return False
    if query.route is not None and attrs.get("route") != query.route:
        return False
    if query.owner is not None and attrs.get("owner") != query.owner:
        return False
    if query.awaiting and "accepted_at" in attrs:
        return False
    if query.awaiting == "overdue":
        return "sla_reminders" in attrs or attrs.get("sla_deadline", math.inf) <= now
    return True


def row(lead_id: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """One lead of a list, as the API answers it."""
    return {
        "lead_id": lead_id, "email": attrs.get("email"), "stage": attrs["stage"], "stage_at": iso(attrs["stage_at"]),
        "route": attrs.get("route"), "owner": attrs.get("owner"), "handed_off_at": iso(attrs.get("handed_off_at")),
        "accepted_at": iso(attrs.get("accepted_at")), "sla_deadline": iso(attrs.get("sla_deadline")),
    }
