"""Request bodies of the JSON API, validated at the edge and turned into canonical events."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chalicelib.attributes import Declared, coerce_all
from chalicelib.emails import normalize_email
from chalicelib.engine import OUTCOMES
from chalicelib.errors import ValidationFailed
from chalicelib.events import (
    IDENTIFY,
    KNOWN_TYPES,
    MAX_DATA_BYTES,
    Event,
    content_event_id,
    data_size,
    to_epoch,
    unknown_type,
)
from chalicelib.rules.loader import format_path

MAX_BATCH = 500
_Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


def _bounded(value: dict[str, Any], name: str) -> dict[str, Any]:
    if data_size(value) > MAX_DATA_BYTES:
        raise ValueError(f"{name} is larger than {MAX_DATA_BYTES} bytes")
    return value


EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST_AHEAD = timedelta(days=1)


def _plausible(v: datetime | None) -> datetime | None:
    """Refuse times no sender means: before 2000, or more than a day ahead of our clock."""
    if v is None:
        return v
    aware = v if v.tzinfo is not None else v.replace(tzinfo=timezone.utc)
    if aware < EARLIEST:
        raise ValueError("occurred_at is before 2000-01-01")
    if aware > datetime.now(timezone.utc) + LATEST_AHEAD:
        raise ValueError("occurred_at is more than a day in the future")
    return v


Traits = Annotated[dict[str, Any], AfterValidator(lambda v: _bounded(v, "traits"))]
Properties = Annotated[dict[str, Any], AfterValidator(lambda v: _bounded(v, "properties"))]
OccurredAt = Annotated[datetime | None, AfterValidator(_plausible)]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: _Id | None = None
    type: str
    email: str | None = None
    anonymous_id: _Id | None = None
    occurred_at: OccurredAt = None
    properties: Properties = Field(default_factory=dict)
    traits: Traits = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("event_types", KNOWN_TYPES)
        if v not in known:
            raise ValueError(unknown_type(v, known))
        return v

    @model_validator(mode="after")
    def _has_subject(self) -> "EventIn":
        if not self.email and not self.anonymous_id:
            raise ValueError("an event needs an email or an anonymous_id")
        if self.type == IDENTIFY and not (self.email and self.anonymous_id):
            raise ValueError("an identify event needs both email and anonymous_id (or use POST /v1/identify)")
        return self


class IdentifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anonymous_id: _Id
    email: str
    traits: Traits = Field(default_factory=dict)
    occurred_at: OccurredAt = None
    event_id: _Id | None = None


class Answers(BaseModel):
    """BANT and GPCT qualification answers; free text or yes/no per item."""

    model_config = ConfigDict(extra="forbid")
    budget: str | bool | None = Field(default=None)
    authority: str | bool | None = None
    need: str | bool | None = None
    timeline: str | bool | None = None
    goals: str | bool | None = None
    plans: str | bool | None = None
    challenges: str | bool | None = None

    @field_validator("*")
    @classmethod
    def _short(cls, v: Any) -> Any:
        if isinstance(v, str) and len(v) > 1000:
            raise ValueError("at most 1000 characters")
        return v


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["accepted", "rejected", "recycled", "opportunity", "won", "lost", "disqualified"]
    reason: str | None = Field(default=None, max_length=500, validate_default=True)
    bant: Answers | None = None
    gpct: Answers | None = None
    actor: str | None = Field(default=None, max_length=120)

    @field_validator("reason")
    @classmethod
    def _reason_needed(cls, v: str | None, info: ValidationInfo) -> str | None:
        outcome = info.data.get("outcome")
        if outcome in ("rejected", "disqualified") and not (v and v.strip()):
            raise ValueError(f"outcome {outcome!r} needs a reason")
        return v

    def answers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.bant:
            out["bant"] = self.bant.model_dump(exclude_none=True)
        if self.gpct:
            out["gpct"] = self.gpct.model_dump(exclude_none=True)
        return out


assert set(OUTCOMES) == set(OutcomeIn.model_fields["outcome"].annotation.__args__)  # type: ignore[union-attr]


def validate(model: type[BaseModel], data: Any, prefix: str = "", context: dict[str, Any] | None = None) -> Any:
    """Validate with pydantic; the first error becomes a 422 naming the field path."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        errors = [
            {"field": (prefix + format_path(tuple(e["loc"]))).replace("$", "").rstrip(".") or "body",
             "message": e["msg"].removeprefix("Value error, ")}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        first = errors[0]
        raise ValidationFailed(f"{first['field']}: {first['message']}", field=first["field"],
                               details={"errors": errors[:20]}) from None


def to_event(item: EventIn, source: str = "api", now: float | None = None,
             declared: dict[str, Declared] | None = None) -> Event:
    ts = to_epoch(item.occurred_at) if item.occurred_at else (now if now is not None else time.time())
    email = normalize_email(item.email) if item.email else None
    subject = email or item.anonymous_id or ""
    event_id = item.event_id or content_event_id(source, item.type, ts, subject, item.properties)
    traits = coerce_all(item.traits, "traits", declared)
    return Event(event_id, item.type, ts, email, item.anonymous_id, item.properties, traits, source)


def parse_events(data: Any, now: float, event_types: frozenset[str] = KNOWN_TYPES,
                 declared: dict[str, Declared] | None = None) -> list[Event]:
    """One event object, ``{"events": [...]}``, or a bare list; at most 500. ``event_types`` and
    ``declared`` are the active rule set's vocabulary (``CompiledRuleset.event_types``, ``.declared``):
    a type outside it is refused naming the closest, a declared attribute coerced to its type."""
    if isinstance(data, dict) and "events" in data:
        items, prefix = data["events"], "events"
    elif isinstance(data, list):
        items, prefix = data, ""
    else:
        items, prefix = [data], None
    if not isinstance(items, list):
        raise ValidationFailed("events must be a list", field="events")
    if not items:
        raise ValidationFailed("no events given", field=prefix or "events")
    if len(items) > MAX_BATCH:
        raise ValidationFailed(f"at most {MAX_BATCH} events per request, got {len(items)}", field=prefix or "events")
    events = []
    for i, raw in enumerate(items):
        where = "" if prefix is None else f"{prefix}[{i}]." if prefix else f"[{i}]."
        item = validate(EventIn, raw, where, {"event_types": event_types})
        try:
            events.append(to_event(item, now=now, declared=declared))
        except ValidationFailed as exc:
            raise ValidationFailed(f"{where}{exc.message}", field=f"{where}{exc.field}") from None
    return events


def parse_identify(data: Any, now: float, declared: dict[str, Declared] | None = None) -> Event:
    item = validate(IdentifyIn, data)
    email = normalize_email(item.email)
    ts = to_epoch(item.occurred_at) if item.occurred_at else now
    # (the id hashes the traits as sent: a redelivery from before coercion existed hashes the same)
    event_id = item.event_id or content_event_id("api", IDENTIFY, ts, f"{item.anonymous_id}>{email}", item.traits)
    traits = coerce_all(item.traits, "traits", declared)
    return Event(event_id, IDENTIFY, ts, email, item.anonymous_id, {}, traits, "api")
