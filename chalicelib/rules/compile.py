"""Compile a validated rule set into closures, once per version.

Every condition becomes a ``Callable[[Context], bool]`` and field paths become getters, so scoring
an event is a handful of dict lookups and function calls: no parsing, no ``eval``, no regex compile.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chalicelib.rules.model import (
    AllOf,
    AnyOf,
    Condition,
    EngagementRule,
    Leaf,
    NotOf,
    Route,
    RuleSet,
)

DAY = 86400.0


_UNSET: Any = object()


class Context:
    """What a condition can see: the lead's attributes, the event being scored, the scores.

    ``engagement`` may be given as a function: it is then computed on first use only (most stage
    checks of a low-grade lead never need it). The event's path is derived once per context.
    """

    __slots__ = ("_engagement", "_engagement_fn", "_folded_path", "_path", "attrs", "event", "fast_track", "fit", "grade",
                 "hand_raiser", "stage")

    def __init__(
        self,
        attrs: dict[str, Any],
        event: Any = None,
        fit: float = 0.0,
        grade: str = "D",
        engagement: float | Callable[[], float] = 0.0,
        hand_raiser: bool = False,
        stage: str = "lead",
        fast_track: bool = False,
    ) -> None:
        self.attrs = attrs
        self.event = event
        self.fit = fit
        self.grade = grade
        self._engagement: float = _UNSET if callable(engagement) else engagement
        self._engagement_fn: Callable[[], float] | None = engagement if callable(engagement) else None
        self.hand_raiser = hand_raiser
        self.stage = stage
        self.fast_track = fast_track
        self._path = _UNSET
        self._folded_path = _UNSET

    @property
    def engagement(self) -> float:
        value = self._engagement
        if value is _UNSET and self._engagement_fn is not None:
            value = self._engagement = self._engagement_fn()
        return value

    @engagement.setter
    def engagement(self, value: float) -> None:
        self._engagement = value

    @property
    def path(self) -> Any:
        """The event's path (``properties.path``, else derived from ``properties.url``), memoised."""
        path = self._path
        if path is _UNSET:
            path = self._path = _event_path(self.event) if self.event is not None else None
        return path


Getter = Callable[[Context], Any]
Predicate = Callable[[Context], bool]


def _dig(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _event_path(event: Any) -> Any:
    props = event.properties
    path = props.get("path")
    if path is None and isinstance(props.get("url"), str):
        path = urlsplit(props["url"]).path or "/"
    return path


def _context_path(c: Context) -> Any:
    return c.path


def _context_folded_path(c: Context) -> str | None:
    """The event's path case-folded (None when it is not text), memoised: page rules test it many times."""
    folded = c._folded_path
    if folded is _UNSET:
        path = c.path
        folded = c._folded_path = path.casefold() if isinstance(path, str) else None
    return folded


def getter(name: str) -> Getter:
    """Turn a field name (already checked by the model) into a fast accessor."""
    if name in ("fit", "grade", "engagement", "hand_raiser", "stage", "fast_track"):
        return operator.attrgetter(name)
    head, _, rest = name.partition(".")
    if head == "custom":
        keys = tuple(rest.split("."))
        return lambda c: _dig(c.attrs.get("custom"), keys)
    if head == "event":
        sub, _, deeper = rest.partition(".")
        if sub == "type":
            return lambda c: c.event.type if c.event is not None else None
        if sub == "source":
            return lambda c: c.event.source if c.event is not None else None
        if sub == "path":
            return _context_path
        keys = tuple(deeper.split(".")) if sub == "properties" else tuple(rest.split("."))
        if sub == "offer":  # the form id is the offer unless the sender named one
            return lambda c: (
                (c.event.properties.get("offer") or c.event.properties.get("form_id")) if c.event is not None else None
            )
        return lambda c: _dig(c.event.properties, keys) if c.event is not None else None
    return lambda c: c.attrs.get(name)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _member(value: Any, options: frozenset[Any]) -> bool:
    try:
        return _fold(value) in options
    except TypeError:  # a list or mapping (a multi-select field, nested properties) is never a member
        return False


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if not (isinstance(value, float) and math.isnan(value)) else None
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return None
    return None


def _leaf(leaf: Leaf, lists: dict[str, frozenset[str]]) -> Predicate:
    get = getter(leaf.field)
    op, value = leaf.op, leaf.value
    # Text comparisons ignore case: marketing data says "VP", "vp" and "Vp" for the same thing.
    if op in ("eq", "ne"):
        want = _fold(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            num = float(value)

            def eq_num(c: Context) -> bool:
                return _number(get(c)) == num

            return eq_num if op == "eq" else (lambda c: not eq_num(c))

        def eq(c: Context) -> bool:
            got = get(c)
            return (got.casefold() if isinstance(got, str) else got) == want

        if op == "eq":
            return eq
        return lambda c: not eq(c)
    if op in ("in", "not_in"):
        options = frozenset(_fold(v) for v in value if not isinstance(v, (list, dict)))

        def is_in(c: Context) -> bool:
            got = get(c)
            if isinstance(got, str):
                return got.casefold() in options
            return _member(got, options)

        if op == "in":
            return is_in
        return lambda c: not is_in(c)
    if op == "contains":
        needle = value.casefold()

        def contains(c: Context) -> bool:
            got = get(c)
            if isinstance(got, str):
                return needle in got.casefold()
            if isinstance(got, list):
                return any(isinstance(x, str) and x.casefold() == needle for x in got)
            return False

        return contains
    if op == "starts_with":
        prefix = value.casefold()
        if leaf.field == "event.path":
            return lambda c: (v := _context_folded_path(c)) is not None and v.startswith(prefix)
        return lambda c: isinstance(v := get(c), str) and v.casefold().startswith(prefix)
    if op == "ends_with":
        suffix = value.casefold()
        if leaf.field == "event.path":
            return lambda c: (v := _context_folded_path(c)) is not None and v.endswith(suffix)
        return lambda c: isinstance(v := get(c), str) and v.casefold().endswith(suffix)
    if op == "matches":
        pattern = re.compile(value)
        return lambda c: isinstance(v := get(c), str) and pattern.search(v) is not None
    if op in ("gt", "gte", "lt", "lte"):
        bound = float(value)
        compare: Callable[[float], bool] = {
            "gt": lambda x: x > bound,
            "gte": lambda x: x >= bound,
            "lt": lambda x: x < bound,
            "lte": lambda x: x <= bound,
        }[op]

        def numeric(c: Context) -> bool:
            got = get(c)
            if type(got) is not float:  # (a float is its own number: the usual case, fit and engagement)
                got = _number(got)
                if got is None:
                    return False
            return compare(got)

        return numeric
    if op == "exists":
        wanted = value is None or bool(value)
        return lambda c: (get(c) not in (None, "")) == wanted
    if op == "in_list":
        members = lists[value]

        def in_list(c: Context) -> bool:
            got = get(c)
            if isinstance(got, str):
                return got.casefold() in members
            return _member(got, members)

        return in_list
    raise AssertionError(f"unhandled op {op}")  # the model's Literal makes this unreachable


def compile_condition(cond: Condition, lists: dict[str, frozenset[str]]) -> Predicate:
    if isinstance(cond, Leaf):
        return _leaf(cond, lists)
    if isinstance(cond, AllOf):
        return _all(tuple(compile_condition(c, lists) for c in cond.all))
    if isinstance(cond, AnyOf):
        return _any(tuple(compile_condition(c, lists) for c in cond.any))
    if isinstance(cond, NotOf):
        inner = compile_condition(cond.not_, lists)
        return lambda c: not inner(c)
    raise AssertionError(f"unknown condition {type(cond).__name__}")


# Short combinations (the usual case) are spelled out: a generator per evaluation costs more than the
# tests. Every predicate returns a bool, so `and`/`or` give the same result as all()/any().
def _all(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda c: a(c) and b(c)
    if len(parts) == 3:
        a, b, d = parts
        return lambda c: a(c) and b(c) and d(c)
    return lambda c: all(p(c) for p in parts)


def _any(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda c: a(c) or b(c)
    if len(parts) == 3:
        a, b, d = parts
        return lambda c: a(c) or b(c) or d(c)
    return lambda c: any(p(c) for p in parts)


def condition_fields(cond: Condition | None) -> set[str]:
    if cond is None:
        return set()
    if isinstance(cond, Leaf):
        return {cond.field}
    if isinstance(cond, AllOf):
        return set().union(*(condition_fields(c) for c in cond.all))
    if isinstance(cond, AnyOf):
        return set().union(*(condition_fields(c) for c in cond.any))
    if isinstance(cond, NotOf):
        return condition_fields(cond.not_)
    return set()


@dataclass(frozen=True, slots=True)
class CompiledFit:
    id: str
    label: str
    points: int
    test: Predicate


@dataclass(frozen=True, slots=True)
class CompiledEngagement:
    id: str
    label: str
    points: int
    test: Predicate | None
    half_life: float | None  # seconds; None: no decay
    cap_count: int | None  # hits allowed per window (max_points folded in)
    cap_window: float | None  # seconds; None: ever
    freq_count: int | None
    freq_window: float | None


@dataclass(frozen=True, slots=True)
class CompiledDisqualifier:
    id: str
    reason: str
    test: Predicate
    needs_event: bool


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    channel: str
    sla_hours: float
    escalation_channel: str | None
    test: Predicate | None


@dataclass(frozen=True)
class CompiledRuleset:
    version: int | None
    source: RuleSet
    fit: tuple[CompiledFit, ...]
    engagement_by_type: dict[str, tuple[CompiledEngagement, ...]]
    engagement_by_id: dict[str, CompiledEngagement]
    disqualifiers: tuple[CompiledDisqualifier, ...]
    grades: tuple[tuple[str, float], ...]  # (grade, min_fit) highest first; last is -inf
    hand_raisers: frozenset[str]
    mql: Predicate
    sql: Predicate
    fast_track: Predicate | None
    sql_requires_mql: bool
    recycle_cooldown: float
    routes: tuple[CompiledRoute, ...]
    default_route: CompiledRoute
    mql_route: CompiledRoute
    notify: frozenset[str]
    lists: dict[str, frozenset[str]] = field(repr=False)
    # What the per-event checks (disqualifiers, stage rules) reduce to once a lead's attributes are known.
    planner: "StagePlanner | None" = field(default=None, repr=False, compare=False)

    def grade_for(self, fit: float) -> str:
        for grade, floor in self.grades:
            if fit >= floor:
                return grade
        return self.grades[-1][0]

    def route_for(self, ctx: Context) -> CompiledRoute:
        for route in self.routes:
            if route.test is None or route.test(ctx):
                return route
        return self.default_route


# -- per-lead plans ---------------------------------------------------------------------------------
#
# Disqualifiers and stage rules are checked on every event, but most of their leaves read only the
# lead's attributes (and fit/grade, which derive from them), and ``hand_raiser`` depends only on the
# event's type. Attribute leaves are evaluated once per attribute change; for each value of
# ``hand_raiser``, each checked condition is reduced to a residual over its remaining leaves (the
# event, engagement, stage, fast track) or to a constant. Leaves are pure, so the residual gives the
# same answer as the whole condition for every event until the attributes change.

_PER_EVENT_FIELDS = frozenset({"engagement", "hand_raiser", "stage", "fast_track"})


def _static_field(name: str) -> bool:
    """Does the field depend on the lead's attributes (and rule set) alone?"""
    return not name.startswith("event.") and name not in _PER_EVENT_FIELDS


def _folded_field(name: str) -> bool:
    """Is the leaf replaced by a constant in a plan (attribute leaves and hand_raiser leaves)?"""
    return name == "hand_raiser" or _static_field(name)


def _folded_leaves(cond: Condition, out: list[Leaf]) -> None:
    if isinstance(cond, Leaf):
        if _folded_field(cond.field):
            out.append(cond)
    elif isinstance(cond, AllOf):
        for c in cond.all:
            _folded_leaves(c, out)
    elif isinstance(cond, AnyOf):
        for c in cond.any:
            _folded_leaves(c, out)
    elif isinstance(cond, NotOf):
        _folded_leaves(cond.not_, out)


Residual = Predicate | bool  # True / False: the condition's answer whatever the event


def _residual(cond: Condition, values: Iterable[bool], lists: dict[str, frozenset[str]]) -> Residual:
    """``cond`` with its folded leaves (in depth-first order) replaced by ``values``, simplified."""
    it = iter(values)

    def walk(c: Condition) -> Residual:
        if isinstance(c, Leaf):
            return next(it) if _folded_field(c.field) else _leaf(c, lists)
        if isinstance(c, NotOf):
            inner = walk(c.not_)
            if isinstance(inner, bool):
                return not inner
            return lambda ctx: not inner(ctx)
        is_all = isinstance(c, AllOf)
        parts = [walk(p) for p in (c.all if is_all else c.any)]  # type: ignore[union-attr]
        if any(p is (not is_all) for p in parts):  # a False in an all, a True in an any
            return not is_all
        rest = tuple(p for p in parts if not isinstance(p, bool))
        if not rest:
            return is_all
        return _all(rest) if is_all else _any(rest)

    return walk(cond)


@dataclass(frozen=True, slots=True)
class StagePlan:
    """The per-event checks for leads whose folded leaves came out the same (shared between them)."""

    disqualifiers: tuple[tuple[CompiledDisqualifier, Residual], ...]  # those not constantly False, in order
    fast_track: Residual
    mql: Residual
    sql: Residual
    idle: bool  # nothing can fire: no disqualifier can, every stage rule is False


class StagePlanner:
    """Builds (and shares, by the folded leaves' outcomes) the plans of one compiled rule set."""

    MAX_PLANS = 4096  # distinct outcome patterns kept; beyond that plans are built and not kept

    def __init__(
        self, disqualifiers: tuple[CompiledDisqualifier, ...], conditions: list[Condition | None],
        fast_track: Predicate | None, mql: Predicate, sql: Predicate, lists: dict[str, frozenset[str]],
    ) -> None:
        self.disqualifiers = disqualifiers
        self.conditions = conditions  # disqualifiers' conditions, then fast track, mql, sql
        self.compiled = (fast_track, mql, sql)  # the rule set's own predicates these plans stand for
        self.lists = lists
        folded: list[Leaf] = []
        self.spans: list[tuple[int, int]] = []
        for cond in conditions:
            start = len(folded)
            if cond is not None:
                _folded_leaves(cond, folded)
            self.spans.append((start, len(folded)))
        self.folded = len(folded)
        # Attribute leaves are evaluated per lead; hand_raiser leaves once here, for False and True.
        self.static = tuple((i, _leaf(leaf, lists)) for i, leaf in enumerate(folded) if _static_field(leaf.field))
        self.by_hand_raiser = tuple(
            tuple((i, bool(_leaf(leaf, lists)(Context({}, hand_raiser=hand_raiser))))
                  for i, leaf in enumerate(folded) if not _static_field(leaf.field))
            for hand_raiser in (False, True)
        )
        self.plans: dict[tuple[bool, tuple[bool, ...]], StagePlan] = {}

    def matches(self, rs: "CompiledRuleset") -> bool:
        return (
            self.disqualifiers is rs.disqualifiers
            and self.compiled[0] is rs.fast_track and self.compiled[1] is rs.mql and self.compiled[2] is rs.sql
        )

    def plans_for(self, ctx: Context) -> tuple[StagePlan, StagePlan]:
        """A lead's plans for an event that is not and is a hand-raiser, given a context with its
        attributes, fit and grade."""
        static = tuple([bool(leaf(ctx)) for _, leaf in self.static])
        return self._plan(False, static), self._plan(True, static)

    def _plan(self, hand_raiser: bool, static: tuple[bool, ...]) -> StagePlan:
        key = (hand_raiser, static)
        plan = self.plans.get(key)
        if plan is None:
            values = [False] * self.folded
            for (i, _), value in zip(self.static, static, strict=True):
                values[i] = value
            for i, value in self.by_hand_raiser[hand_raiser]:
                values[i] = value
            plan = self._build(values)
            if len(self.plans) < self.MAX_PLANS:
                self.plans[key] = plan
        return plan

    def _build(self, values: list[bool]) -> StagePlan:
        residuals: list[Residual] = []
        for cond, (start, end) in zip(self.conditions, self.spans, strict=True):
            residuals.append(False if cond is None else _residual(cond, values[start:end], self.lists))
        n = len(self.disqualifiers)
        disqualifiers = tuple((d, r) for d, r in zip(self.disqualifiers, residuals[:n], strict=True) if r is not False)
        fast_track, mql, sql = residuals[n:]
        idle = not disqualifiers and fast_track is False and mql is False and sql is False
        return StagePlan(disqualifiers, fast_track, mql, sql, idle)


def _load_lists(ruleset: RuleSet) -> dict[str, frozenset[str]]:
    lists = {name: frozenset(v.casefold() for v in values) for name, values in ruleset.lists.items()}
    if "disposable" in _referenced_lists(ruleset):
        # Imported only when a rule set uses it: the blocklist is large.
        from disposable_email_domains import blocklist

        lists["disposable"] = frozenset(blocklist)
    return lists


def _referenced_lists(ruleset: RuleSet) -> set[str]:
    from chalicelib.rules.model import _list_refs

    return _list_refs(ruleset.model_dump(by_alias=True))


def _engagement(rule: EngagementRule, default_half_life: float | None, lists: dict[str, frozenset[str]]) -> CompiledEngagement:
    half_life_days = rule.half_life_days if rule.half_life_days is not None else default_half_life
    cap_count: int | None = None
    cap_window: float | None = None
    if rule.caps is not None:
        limits = []
        if rule.caps.max_count is not None:
            limits.append(rule.caps.max_count)
        if rule.caps.max_points is not None:
            limits.append(max(1, rule.caps.max_points // abs(rule.points)))
        cap_count = min(limits)
        cap_window = rule.caps.window_days * DAY if rule.caps.window_days is not None else None
    return CompiledEngagement(
        id=rule.id,
        label=rule.label,
        points=rule.points,
        test=compile_condition(rule.when, lists) if rule.when is not None else None,
        half_life=half_life_days * DAY if half_life_days is not None else None,
        cap_count=cap_count,
        cap_window=cap_window,
        freq_count=rule.frequency.count if rule.frequency else None,
        freq_window=rule.frequency.within_days * DAY if rule.frequency else None,
    )


def _route(route: Route, default_sla: float, lists: dict[str, frozenset[str]]) -> CompiledRoute:
    return CompiledRoute(
        name=route.name,
        channel=route.channel,
        sla_hours=route.sla_hours if route.sla_hours is not None else default_sla,
        escalation_channel=route.escalation_channel,
        test=compile_condition(route.when, lists) if route.when is not None else None,
    )


def compile_ruleset(ruleset: RuleSet, version: int | None = None) -> CompiledRuleset:
    lists = _load_lists(ruleset)
    default_half_life = ruleset.decay.half_life_days
    engagement = [_engagement(r, default_half_life, lists) for r in ruleset.engagement]
    by_type: dict[str, list[CompiledEngagement]] = {}
    for rule, compiled in zip(ruleset.engagement, engagement, strict=True):
        for event_type in rule.events:
            by_type.setdefault(event_type, []).append(compiled)
    handoff = ruleset.handoff
    stages = ruleset.stages
    disqualifiers = tuple(
        CompiledDisqualifier(
            d.id,
            d.reason,
            compile_condition(d.when, lists),
            any(f.startswith("event.") for f in condition_fields(d.when)),
        )
        for d in ruleset.disqualifiers
    )
    mql = compile_condition(stages.mql.when, lists)
    sql = compile_condition(stages.sql.when, lists)
    fast_track = compile_condition(stages.fast_track.when, lists) if stages.fast_track else None
    conditions: list[Condition | None] = [d.when for d in ruleset.disqualifiers]
    conditions += [stages.fast_track.when if stages.fast_track else None, stages.mql.when, stages.sql.when]
    planner = StagePlanner(disqualifiers, conditions, fast_track, mql, sql, lists)
    return CompiledRuleset(
        version=version,
        source=ruleset,
        fit=tuple(CompiledFit(r.id, r.label, r.points, compile_condition(r.when, lists)) for r in ruleset.fit),
        engagement_by_type={k: tuple(v) for k, v in by_type.items()},
        engagement_by_id={r.id: r for r in engagement},
        disqualifiers=disqualifiers,
        grades=tuple(
            (b.grade, float(b.min_fit) if b.min_fit is not None else -math.inf) for b in ruleset.grades
        ),
        hand_raisers=frozenset(stages.hand_raisers),
        mql=mql,
        sql=sql,
        fast_track=fast_track,
        sql_requires_mql=stages.sql_requires_mql,
        recycle_cooldown=stages.recycle_cooldown_days * DAY,
        routes=tuple(_route(r, handoff.sla_hours, lists) for r in handoff.routes),
        default_route=CompiledRoute("default", handoff.default_channel, handoff.sla_hours, None, None),
        mql_route=CompiledRoute("marketing", handoff.mql_channel, handoff.sla_hours, None, None),
        notify=frozenset(handoff.notify),
        lists=lists,
        planner=planner,
    )


def event_types(ruleset: RuleSet) -> Iterable[str]:
    return sorted({t for r in ruleset.engagement for t in r.events})
