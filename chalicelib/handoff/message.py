"""The handoff message: the versioned JSON body published to SNS for each stage transition.

:class:`HandoffMessage` is the contract, and what consumers get: the Slack consumer calls
:func:`parse_handoff` on the SNS ``Message`` of handoffs, reminders and escalations. Producers
do not build this model: ``handoff.body.handoff_body`` builds a plain dict in its shape inside
the lead write, the dict is stored as an outbox item, and the relay publishes it as JSON.
The contract is documented in ``docs/handoff-message.md``.

Compatibility rules for ``baton.handoff.v1``: unknown fields are ignored (producers may add
optional fields), removing or retyping a field needs ``baton.handoff.v2``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from chalicelib.errors import BadRequest

SCHEMA_V1: Literal["baton.handoff.v1"] = "baton.handoff.v1"

# Ids travel inside Slack button and select-option values; an option value is capped at 150
# characters by Slack, and {"l":…,"t":…,"r":"wrong_contact"} must fit: 22 + 13 + 2 * 56 = 147.
ID_MAX_LENGTH = 56
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"

_SHORT = 200  # configuration-like texts (route names, channels, rule ids) longer than this are refused
_LONG = 1000
# Display texts (names, titles, labels) are cut rather than refused: one odd page title must not
# keep an SQL from being announced. The Slack renderer shortens them further.
_DISPLAY = 300


def _as_utc(value: datetime) -> datetime:
    # Naive timestamps are taken as UTC, as everywhere else in Baton (see events.to_epoch).
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
ShortText = Annotated[str, Field(max_length=_SHORT)]


def _cut(limit: int) -> BeforeValidator:
    def cut(value: Any) -> Any:
        return value[:limit] if isinstance(value, str) else value

    return BeforeValidator(cut)


DisplayText = Annotated[str, _cut(_DISPLAY)]
LongText = Annotated[str, _cut(_LONG)]
Number = Annotated[float, Field(allow_inf_nan=False)] | int
Stage = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,31}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class Route(_Model):
    """Where the alert goes and how fast sales must follow up (from the rule set's routing)."""

    name: ShortText = Field(min_length=1)
    channel: ShortText = Field(min_length=1)
    sla_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)] | Annotated[int, Field(gt=0)]
    escalation_channel: ShortText | None = None


class Lead(_Model):
    """The lead as sales should see it. Every text is untrusted (it came from a web form)."""

    email: Annotated[str, Field(max_length=320)] | None = None
    first_name: DisplayText | None = None
    last_name: DisplayText | None = None
    job_title: DisplayText | None = None
    company: DisplayText | None = None
    country: DisplayText | None = None
    company_size: Annotated[int, Field(ge=0)] | None = None
    industry: DisplayText | None = None
    # Fields only a public web form gave (optional, added within v1): shown as unverified.
    unverified: Annotated[list[ShortText], Field(max_length=20)] = Field(default_factory=list)


class Scores(_Model):
    fit: Number
    grade: Annotated[str, Field(min_length=1, max_length=16)]
    engagement: Number


class Reason(_Model):
    """One rule that contributed points: the *why* shown to sales."""

    rule: ShortText = Field(min_length=1)
    label: DisplayText = Field(min_length=1)
    points: Number
    kind: Literal["fit", "engagement", "frequency"]


class KeyEvent(_Model):
    type: ShortText = Field(min_length=1)
    at: UtcDatetime
    label: DisplayText = Field(min_length=1)


class RescoreCause(_Model):
    """The transition came from a re-score: publishing ``to_version`` over ``from_version``."""

    from_version: Annotated[int, Field(ge=0)] | None = None  # None: the lead was never scored by a version
    to_version: Annotated[int, Field(ge=0)]


class HandoffMessage(_Model):
    """One committed stage transition of one lead, as announced to sales or marketing."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True, populate_by_name=True)

    # ``schema`` would shadow a BaseModel attribute, hence the alias.
    schema_: Literal["baton.handoff.v1"] = Field(default="baton.handoff.v1", alias="schema")
    transition_id: Id
    lead_id: Id
    stage: Literal["sql", "mql"]
    from_stage: Stage
    fast_track: bool = False
    occurred_at: UtcDatetime
    ruleset_version: Annotated[int, Field(ge=0)]  # 0: the built-in default, before any publish
    route: Route
    sla_deadline: UtcDatetime | None = None
    lead: Lead
    scores: Scores
    reasons: Annotated[list[Reason], Field(max_length=200)] = Field(default_factory=list)
    key_events: Annotated[list[KeyEvent], Field(max_length=200)] = Field(default_factory=list)
    source: ShortText = Field(min_length=1)
    reason: LongText = Field(min_length=1)
    rescore: RescoreCause | None = None  # set when a re-score made the transition

    @property
    def display_name(self) -> str:
        """First and last name, else the email, else a placeholder (raw, not escaped)."""
        name = " ".join(p for p in (self.lead.first_name, self.lead.last_name) if p)
        return name or self.lead.email or "Unknown lead"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def parse_handoff(json_str: str | bytes) -> HandoffMessage:
    """Parse and validate an SNS handoff body; :class:`BadRequest` names the first bad field.

    Details never echo the input values: they are personal data.
    """
    try:
        return HandoffMessage.model_validate_json(json_str)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        fields: list[dict[str, str]] = []
        for err in errors:
            loc = tuple(err["loc"])
            # A union reports one error per member type; the member name is noise in a path.
            loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS)))
            entry = {"field": _field_path(loc), "message": err["msg"]}
            if entry not in fields:
                fields.append(entry)
        first = fields[0]
        if first["field"] == "schema" and errors[0]["type"] == "literal_error":
            message = f"unsupported handoff schema; expected {SCHEMA_V1!r}"
        elif errors[0]["type"] == "json_invalid":
            message = "handoff message is not valid JSON"
        else:
            message = f"invalid handoff message: {first['field']}: {first['message']}"
        raise BadRequest(message, details={"field": first["field"], "errors": fields[:20]}) from None


_UNION_TAGS = frozenset({"int", "float", "str", "none", "constrained-int", "constrained-float"})
