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

from chalicelib.attributes import ATTRIBUTES, LEAD_FIELDS
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


def engagement_floors(cond: Condition) -> list[tuple[float, bool]]:
    """The engagement levels a condition asks the lead to reach: (value, strictly above) of each
    ``engagement >= / > n`` leaf not under a ``not`` (there it is a ceiling, not a floor)."""
    if isinstance(cond, Leaf):
        if cond.field == "engagement" and cond.op in ("gt", "gte"):
            return [(float(cond.value), cond.op == "gt")]
        return []
    if isinstance(cond, (AllOf, AnyOf)):
        return [floor for part in (cond.all if isinstance(cond, AllOf) else cond.any)
                for floor in engagement_floors(part)]
    return []


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
    event: str = "form_submitted"  # one of FORM_EVENT_TYPES, or a type the rule set declares
    offer: str | None = Field(default=None, max_length=120)  # defaults to the form id
    label: str | None = Field(default=None, max_length=120)


_EVENT_TYPE = r"^[a-z][a-z0-9_]{0,63}$"
_CUSTOM_NAME = r"^custom(\.[A-Za-z_][A-Za-z0-9_]{0,63}){1,4}$"


class EventTypeDeclaration(BaseModel):
    """An event type the team logs beyond Baton's own (chat, SMS, calls...): the API, imports and
    rules accept it once declared. Written ``name: {description: ...}`` or ``name: description``."""

    model_config = _Strict
    description: str = Field(min_length=1, max_length=300)


class AttributeDeclaration(BaseModel):
    """A custom attribute's type: rules reading it are checked against it, and every path that writes
    it coerces values to it (``chalicelib.attributes.coerce_declared``)."""

    model_config = _Strict
    type: Literal["text", "number", "boolean", "date", "enum"]
    values: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(default=None, max_length=500)
    description: str = Field(default="", max_length=300)
    # What one of a number is (seconds, employees, USD): named where a threshold on it is written
    # in words ("Time on site 510 seconds or more", by the suggester).
    unit: str | None = Field(default=None, min_length=1, max_length=40)

    @field_validator("unit")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value)):
            raise ValueError("a unit is a word or two on one line: seconds, employees, USD")
        return value

    @model_validator(mode="after")
    def _values_and_unit_fit_the_type(self) -> "AttributeDeclaration":
        if self.unit is not None and self.type != "number":
            raise ValueError(f"a unit is for number attributes; this one is {self.type}")
        if self.type == "enum":
            if not self.values:
                raise ValueError("an enum attribute needs its values: {type: enum, values: [...]}")
            folded = [v.casefold() for v in self.values]
            if len(set(folded)) != len(folded):
                raise ValueError("enum values repeat (case is ignored)")
        elif self.values is not None:
            raise ValueError(f"values are for enum attributes; this one is {self.type}")
        return self


def _event_type_shorthand(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: {"description": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


class Vocabulary(BaseModel):
    """A rule set's ``event_types`` and ``attributes`` alone: what a history was imported under
    (``vocabulary.yaml``, docs/backtest-data.md), so that rule sets written from it declare them
    as the analyst did."""

    model_config = _Strict
    event_types: dict[str, EventTypeDeclaration] = Field(default_factory=dict)
    attributes: dict[str, AttributeDeclaration] = Field(default_factory=dict)

    @field_validator("event_types", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _event_type_shorthand(value)


class Decay(BaseModel):
    model_config = _Strict
    half_life_days: float | None = Field(default=30, gt=0, le=3650)  # None: no decay


class RuleSet(BaseModel):
    model_config = _Strict

    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    # The vocabulary beyond Baton's own: event types and typed custom attributes.
    event_types: dict[str, EventTypeDeclaration] = Field(default_factory=dict)
    attributes: dict[str, AttributeDeclaration] = Field(default_factory=dict)
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

    @field_validator("event_types", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _event_type_shorthand(value)

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
        for kind in self.event_types:
            if kind in KNOWN_TYPES:
                problems.append(_problem(("event_types", kind), kind, "built_in",
                                         f"{kind} is built in: declare only other event types"))
            elif not re.fullmatch(_EVENT_TYPE, kind):
                problems.append(_problem(("event_types", kind), kind, "event_type_name",
                                         f"event type {kind!r}: lower-case letters, digits and _ (e.g. chat_message)"))
        for name in self.attributes:
            if not re.fullmatch(_CUSTOM_NAME, name):
                own = f"{name} is Baton's own attribute (typed already): " if name in LEAD_FIELDS else ""
                problems.append(_problem(("attributes", name), name, "attribute_name",
                                         f"{own}declare custom attributes as custom.<name> (letters, digits, _)"))
        known = KNOWN_TYPES | set(self.event_types)
        for index, rule in enumerate(self.engagement):
            for position, kind in enumerate(rule.events):
                if kind not in known:
                    problems.append(_problem(("engagement", index, "events", position), kind, "unknown_event_type",
                                             unknown_event_type(kind, known)))
        for position, kind in enumerate(self.stages.hand_raisers):
            if kind not in known:
                problems.append(_problem(("stages", "hand_raisers", position), kind, "unknown_event_type",
                                         unknown_event_type(kind, known)))
        form_types = set(FORM_EVENT_TYPES) | set(self.event_types)
        for form_id, form in self.forms.items():
            if form.event not in form_types:
                problems.append(_problem(("forms", form_id, "event"), form.event, "unknown_event_type",
                                         unknown_event_type(form.event, form_types, FORM_EVENT_TYPES)))
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


def closest(name: str, known: Any) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or nothing."""
    import difflib

    found = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


def unknown_event_type(kind: str, known: Any, built_in: Any = KNOWN_TYPES) -> str:
    return (f"unknown event type {kind!r}{closest(kind, known)}: use one of {', '.join(sorted(built_in))} "
            "or declare it under event_types")


def _problem(loc: tuple[str | int, ...], value: Any, kind: str, message: str) -> InitErrorDetails:
    # The message goes in as a context value: braces in it are never read as a template.
    return InitErrorDetails(type=PydanticCustomError(kind, "{message}", {"message": message}), loc=loc, input=value)


def _list_ref_locations(node: Any, loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    return [((*where, "value"), leaf["value"]) for where, leaf in _leaves(node, loc)
            if leaf.get("op") == "in_list" and isinstance(leaf.get("value"), str)]


def _leaves(node: Any, loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], dict[str, Any]]]:
    found: list[tuple[tuple[str | int, ...], dict[str, Any]]] = []
    if isinstance(node, dict):
        if "field" in node and "op" in node:
            return [(loc, node)]
        for key, child in node.items():
            found += _leaves(child, (*loc, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _leaves(child, (*loc, index))
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


# -- what a rule set reads, against what it declares -------------------------------------------------

_NUMBER_ATTRIBUTES = frozenset(a.name for a in ATTRIBUTES if a.type in ("integer", "number"))  # Baton's own numbers
Problem = tuple[tuple[str | int, ...], Any, str]


def _conditions(ruleset: RuleSet) -> list[tuple[tuple[str | int, ...], Any]]:
    """Every condition with its location (the sections whose ``when`` reads lead attributes)."""
    data = ruleset.model_dump(by_alias=True, exclude_none=True)
    out: list[tuple[tuple[str | int, ...], Any]] = []
    for section in ("fit", "engagement", "disqualifiers"):
        out += [((section, i, "when"), rule["when"]) for i, rule in enumerate(data[section]) if "when" in rule]
    out += [(("stages", stage, "when"), data["stages"][stage]["when"])
            for stage in ("fast_track", "mql", "sql") if stage in data["stages"]]
    out += [(("handoff", "routes", i, "when"), route["when"])
            for i, route in enumerate(data["handoff"]["routes"]) if "when" in route]
    return out


def undeclared_reads(ruleset: RuleSet) -> list[Problem]:
    """Conditions reading a custom attribute the rule set does not declare, or comparing an attribute
    with a value its type can never equal (a number with text, an enum with a value it lacks):
    ``(location, value, message)`` each; and a declared ``custom.<Baton's own name>``, which no lead
    can have (the API, forms and imports refuse the name). New versions must have none; stored ones
    load with a warning."""
    declared = ruleset.attributes
    problems: list[Problem] = [
        (("attributes", name), name, f"{own} is Baton's own attribute: a lead never has {name} (senders and imports "
                                     f"are refused it); read {own} itself, or declare another name")
        for name in declared if (own := name.split(".")[1]) in LEAD_FIELDS
    ]
    for where, condition in _conditions(ruleset):
        for loc, leaf in _leaves(condition, where):
            name, op, value = leaf["field"], leaf["op"], leaf.get("value")
            if name.startswith("custom."):
                spec = declared.get(name)
                if spec is None:
                    problems.append(((*loc, "field"), name,
                                     f"{name} is not declared under attributes{closest(name, declared)}: "
                                     f"declare it (attributes: {{{name}: {{type: text}}}}) or fix the name"))
                    continue
                kind, values = spec.type, spec.values or []
            elif name in _NUMBER_ATTRIBUTES:
                kind, values = "number", []
            else:
                continue
            message = type_mismatch(name, kind, values, op, value)
            if message:
                problems.append(((*loc, "value" if op not in _TEXT_OPS | {"matches"} else "op"), value, message))
    return problems


def type_mismatch(name: str, kind: str, values: list[str], op: str, value: Any) -> str | None:
    """Why ``{field: name, op, value}`` can never hold for an attribute of type ``kind`` (an enum's
    ``values``), or None when it can: what a new version's validation refuses."""
    given = value if isinstance(value, list) else [value]
    if op in ("exists",):
        return None
    if kind == "number":
        if op in _TEXT_OPS or op in ("matches", "in_list"):
            return f"{name} is a number: {op} compares text"
        if op in ("eq", "ne", "in", "not_in") and any(isinstance(v, (str, bool)) for v in given):
            return f"{name} is a number: compare it with a number, not {value!r}"
        return None
    if op in _NUMBER_OPS:
        return f"{name} is {'an ' + kind if kind == 'enum' else kind}: {op} compares numbers (declare it as a number)"
    if kind == "boolean" and (op not in ("eq", "ne", "in", "not_in") or not all(isinstance(v, bool) for v in given)):
        return f"{name} is a boolean: compare it with true or false"
    if kind == "enum" and op in ("eq", "ne", "in", "not_in"):
        folded = {v.casefold() for v in values}
        for v in given:
            if not isinstance(v, str) or v.casefold() not in folded:
                return f"{v!r} is not a value of {name}{closest(str(v), values)}: one of {', '.join(values)}"
    return None
