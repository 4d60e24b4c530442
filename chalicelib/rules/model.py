"""The rule-set format: pydantic models whose validation errors name the exact path.

A rule set is plain data (YAML or JSON). Conditions are structured (``{field, op, value}`` combined
with ``all`` / ``any`` / ``not``), never code: nothing here is ever evaluated as Python.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from chalicelib.attributes import LEAD_FIELDS
from chalicelib.events import KNOWN_TYPES
from chalicelib.rules.patterns import compile_pattern

STAGES = ("lead", "mql", "sql", "opportunity", "customer")

# Scores and facts the engine computes; usable in stage rules and routing. (Lead attributes are
# ``attributes.LEAD_FIELDS``; events are read as ``event.<field>`` or ``event.properties.<path>``.)
SCORE_FIELDS = frozenset({"fit", "grade", "engagement", "hand_raiser", "stage", "fast_track"})

Op = Literal[
    "eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with", "matches",
    "gt", "gte", "lt", "lte", "exists", "in_list",
]
_LIST_OPS = {"in", "not_in"}
_NUMBER_OPS = {"gt", "gte", "lt", "lte"}
_TEXT_OPS = {"contains", "starts_with", "ends_with"}

_Strict = ConfigDict(extra="forbid", frozen=True)


def check_field_name(name: str) -> str:
    """Accept only fields the engine can resolve, so a typo fails at publish time, not silently."""
    if name in LEAD_FIELDS or name in SCORE_FIELDS:
        return name
    head, _, rest = name.partition(".")
    if head == "custom" and rest:
        return name
    if head == "event" and rest:
        sub, _, deeper = rest.partition(".")
        if sub == "properties" and not deeper:
            raise ValueError("event.properties needs a key, e.g. event.properties.plan")
        return name
    raise ValueError(
        f"unknown field {name!r}: use a lead attribute ({', '.join(sorted(LEAD_FIELDS))}), "
        f"a score ({', '.join(sorted(SCORE_FIELDS))}), custom.<path> or event.<field>"
    )


class Leaf(BaseModel):
    model_config = _Strict

    field: str
    op: Op
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, v: str) -> str:
        return check_field_name(v)

    @model_validator(mode="after")
    def _value_fits_op(self) -> "Leaf":
        op, value = self.op, self.value
        if op in _LIST_OPS and not isinstance(value, list):
            raise ValueError(f"op {op!r} needs a list value")
        if op in _NUMBER_OPS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"op {op!r} needs a number value")
        if op in _TEXT_OPS and not isinstance(value, str):
            raise ValueError(f"op {op!r} needs a text value")
        if op == "matches":
            if not isinstance(value, str):
                raise ValueError("op 'matches' needs a regular expression string")
            compile_pattern(value)  # ValueError naming what RE2 refuses
        if op == "exists" and not isinstance(value, (bool, type(None))):
            raise ValueError("op 'exists' takes true or false (or no value, meaning true)")
        if op == "in_list" and not isinstance(value, str):
            raise ValueError("op 'in_list' takes the name of a list under 'lists'")
        if op in {"eq", "ne"} and isinstance(value, (list, dict)):
            raise ValueError(f"op {op!r} compares with one value; use 'in' for several")
        return self


class AllOf(BaseModel):
    model_config = _Strict
    all: list[Condition] = Field(min_length=1)


class AnyOf(BaseModel):
    model_config = _Strict
    any: list[Condition] = Field(min_length=1)


class NotOf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    not_: Condition = Field(alias="not")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {Leaf: "<leaf>", AllOf: "<all>", AnyOf: "<any>", NotOf: "<not>"}.get(type(value))
    if isinstance(value, dict):
        for key, tag in (("all", "<all>"), ("any", "<any>"), ("not", "<not>"), ("field", "<leaf>")):
            if key in value:
                return tag
    return None


# Tags are written "<...>" so error paths can drop them: users see ``fit[0].when.all[1].op``.
Condition = Annotated[
    Annotated[Leaf, Tag("<leaf>")]
    | Annotated[AllOf, Tag("<all>")]
    | Annotated[AnyOf, Tag("<any>")]
    | Annotated[NotOf, Tag("<not>")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition",
        custom_error_message="a condition is {field, op, value} or {all: [...]}, {any: [...]}, {not: ...}",
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


_ID = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class FitRule(BaseModel):
    """Who they are: points when a condition on the lead's current attributes holds."""

    model_config = _Strict
    id: _ID
    label: str = Field(min_length=1, max_length=120)
    when: Condition
    points: int = Field(ge=-1000, le=1000)


class Caps(BaseModel):
    """At most ``max_count`` hits (or ``max_points`` points) per rolling ``window_days`` (or ever)."""

    model_config = _Strict
    max_count: int | None = Field(default=None, gt=0, le=1000)
    max_points: int | None = Field(default=None, gt=0, le=100000)
    window_days: float | None = Field(default=None, gt=0, le=3650)

    @model_validator(mode="after")
    def _has_a_limit(self) -> "Caps":
        if self.max_count is None and self.max_points is None:
            raise ValueError("caps needs max_count or max_points")
        return self


class Frequency(BaseModel):
    """Points once ``count`` matching events happen within ``within_days`` ("3 pricing views in 7 days")."""

    model_config = _Strict
    count: int = Field(ge=2, le=100)
    within_days: float = Field(gt=0, le=365)


_PROPERTY_PATH = r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,3}$"


class Amount(BaseModel):
    """Points by amount: the rule's ``points`` for every ``per`` units of the event property
    ``property`` ("1 point per 30 seconds on site": ``points: 1``, ``amount: {property: seconds, per: 30}``).
    Awards are in proportion (45 seconds: 1.5 points); an event without a positive number there
    scores nothing and counts toward no cap."""

    model_config = _Strict
    property: str = Field(pattern=_PROPERTY_PATH)  # a key of event.properties (dots for nested ones)
    per: float = Field(gt=0, le=1e9)


class EngagementRule(BaseModel):
    """What they do: points per matching event (or per amount of one of its properties), with
    optional caps, frequency and its own half-life."""

    model_config = _Strict
    id: _ID
    label: str = Field(min_length=1, max_length=120)
    events: list[str] = Field(min_length=1)
    when: Condition | None = None
    points: int = Field(ge=-1000, le=1000)
    amount: Amount | None = None
    caps: Caps | None = None
    frequency: Frequency | None = None
    half_life_days: float | None = Field(default=None, gt=0, le=3650)

    @field_validator("events")
    @classmethod
    def _known_events(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in KNOWN_TYPES]
        if unknown:
            raise ValueError(f"unknown event type(s) {unknown}; known: {', '.join(sorted(KNOWN_TYPES))}")
        return v

    @model_validator(mode="after")
    def _points_not_zero(self) -> "EngagementRule":
        if self.points == 0:
            raise ValueError("points must not be 0 (delete the rule instead)")
        if self.amount is not None:
            if self.frequency is not None:
                raise ValueError("amount and frequency cannot be combined: a frequency bonus is one award per "
                                 "count of events, not per amount")
            return self  # awards in proportion to the amount: max_points caps their sum, not whole awards
        # Awards are whole: a cap below one award would be exceeded by the first hit.
        if self.caps is not None and self.caps.max_points is not None and self.caps.max_points < abs(self.points):
            raise ValueError(f"caps.max_points ({self.caps.max_points}) is less than one award ({abs(self.points)} points)")
        return self


class Disqualifier(BaseModel):
    """A condition that means "never a buyer": it stops the lead from reaching sales."""

    model_config = _Strict
    id: _ID
    reason: str = Field(min_length=1, max_length=200)
    when: Condition


class GradeBand(BaseModel):
    model_config = _Strict
    grade: Literal["A", "B", "C", "D"]
    min_fit: int | None = None  # None: the catch-all lowest band


class StageRule(BaseModel):
    model_config = _Strict
    when: Condition


class Stages(BaseModel):
    model_config = _Strict
    hand_raisers: list[str] = Field(default_factory=lambda: ["demo_request", "contact_sales", "meeting_booked"])
    mql: StageRule
    sql: StageRule
    # Ideal-fit hand-raisers skip marketing nurture and go straight to sales.
    fast_track: StageRule | None = None
    # SQL criteria apply only to MQLs (fast track excepted); a lead meeting both in one event
    # becomes MQL then SQL, so the funnel still counts it as an MQL.
    sql_requires_mql: bool = True
    # After sales recycles a lead, it may qualify again once this many days have passed.
    recycle_cooldown_days: float = Field(default=0, ge=0, le=3650)

    @field_validator("hand_raisers")
    @classmethod
    def _known_events(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in KNOWN_TYPES]
        if unknown:
            raise ValueError(f"unknown event type(s) {unknown}")
        return v


class Route(BaseModel):
    model_config = _Strict
    name: _ID
    when: Condition | None = None
    channel: str = Field(min_length=1, max_length=80)
    sla_hours: float | None = Field(default=None, gt=0, le=24 * 90)
    escalation_channel: str | None = Field(default=None, max_length=80)


def _notify_sql() -> list[Literal["mql", "sql"]]:
    return ["sql"]


class Handoff(BaseModel):
    model_config = _Strict
    notify: list[Literal["mql", "sql"]] = Field(default_factory=_notify_sql)
    sla_hours: float = Field(default=24, gt=0, le=24 * 90)
    routes: list[Route] = Field(default_factory=list)
    default_channel: str = Field(default="#sales", min_length=1, max_length=80)
    # MQLs go to marketing for nurture, never to a sales channel.
    mql_channel: str = Field(default="#marketing-mql", min_length=1, max_length=80)
    # Transitions caused by re-scoring on publish, other than new SQLs (which always get their own
    # alert): one digest message, one alert each (where ``notify`` names the stage), or none.
    rescore_alerts: Literal["digest", "individual", "none"] = "digest"


FORM_EVENT_TYPES = (
    "form_submitted", "content_download", "demo_request", "contact_sales", "trial_signup", "webinar_registered",
)


class Form(BaseModel):
    """A web form Baton accepts at ``POST /v1/forms/{form_id}``: what a submission means."""

    model_config = _Strict
    event: Literal[
        "form_submitted", "content_download", "demo_request", "contact_sales", "trial_signup", "webinar_registered"
    ] = "form_submitted"
    offer: str | None = Field(default=None, max_length=120)  # defaults to the form id
    label: str | None = Field(default=None, max_length=120)


class Decay(BaseModel):
    model_config = _Strict
    half_life_days: float | None = Field(default=30, gt=0, le=3650)  # None: no decay


class RuleSet(BaseModel):
    model_config = _Strict

    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    lists: dict[str, list[str]] = Field(default_factory=dict)
    decay: Decay = Field(default_factory=Decay)
    grades: list[GradeBand]
    fit: list[FitRule] = Field(default_factory=list)
    engagement: list[EngagementRule] = Field(default_factory=list)
    disqualifiers: list[Disqualifier] = Field(default_factory=list)
    stages: Stages
    handoff: Handoff = Field(default_factory=Handoff)
    forms: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")], Form] = Field(
        default_factory=dict
    )
    # Accept submissions to form ids not listed above (as plain form_submitted events).
    accept_unknown_forms: bool = False

    @field_validator("lists")
    @classmethod
    def _list_names(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in v:
            if name == "disposable":
                raise ValueError("'disposable' is built in (the disposable-email-domains package); pick another name")
            if not re.fullmatch(r"[a-z0-9_]{1,64}", name):
                raise ValueError(f"list name {name!r} must be lower-case letters, digits or _")
        return v

    @field_validator("grades")
    @classmethod
    def _grades_ordered(cls, v: list[GradeBand]) -> list[GradeBand]:
        if not v:
            raise ValueError("at least one grade band is needed")
        thresholds = [b.min_fit for b in v if b.min_fit is not None]
        if thresholds != sorted(thresholds, reverse=True) or len(set(thresholds)) != len(thresholds):
            raise ValueError("grade bands must be ordered by min_fit, highest first, without repeats")
        if v[-1].min_fit is not None:
            raise ValueError("the last grade band must have no min_fit (it catches everyone else)")
        if any(b.min_fit is None for b in v[:-1]):
            raise ValueError("only the last grade band may omit min_fit")
        return v

    @model_validator(mode="after")
    def _references(self) -> "RuleSet":
        # Raised as a ValidationError with the offending location, so authors see
        # ``engagement[4].id`` and its line rather than an error about the whole document.
        problems: list[InitErrorDetails] = []
        for section in ("fit", "engagement", "disqualifiers"):
            seen: dict[str, int] = {}
            for index, rule in enumerate(getattr(self, section)):
                if rule.id in seen:
                    problems.append(_problem(
                        (section, index, "id"), rule.id, "duplicate_id",
                        f"duplicate rule id {rule.id!r} (already used by {section}[{seen[rule.id]}])",
                    ))
                else:
                    seen[rule.id] = index
        known_lists = set(self.lists) | {"disposable"}
        for loc, name in _list_ref_locations(self.model_dump(by_alias=True), ()):
            if name not in known_lists:
                problems.append(_problem(
                    loc, name, "unknown_list",
                    f"in_list refers to unknown list {name!r}; defined: {sorted(known_lists)}",
                ))
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self


def _problem(loc: tuple[str | int, ...], value: Any, kind: str, message: str) -> InitErrorDetails:
    # The message goes in as a context value: braces in it are never read as a template.
    return InitErrorDetails(type=PydanticCustomError(kind, "{message}", {"message": message}), loc=loc, input=value)


def _list_ref_locations(node: Any, loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    found: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(node, dict):
        if node.get("op") == "in_list" and isinstance(node.get("value"), str):
            found.append(((*loc, "value"), node["value"]))
        for key, child in node.items():
            found += _list_ref_locations(child, (*loc, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _list_ref_locations(child, (*loc, index))
    return found


def _list_refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("op") == "in_list" and isinstance(node.get("value"), str):
            found.add(node["value"])
        for child in node.values():
            found |= _list_refs(child)
    elif isinstance(node, list):
        for child in node:
            found |= _list_refs(child)
    return found
