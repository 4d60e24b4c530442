"""Conditions partly evaluated ahead of time, so the per-event work is what is left.

A condition is a tree of pure leaves. When some leaves' inputs are known, those leaves can be
evaluated once and the condition reduced to a *residual* over the others (or to a constant); the
residual answers exactly as the whole condition would, for as long as those inputs stay the same.
Three uses:

- ``StagePlanner``: disqualifiers and stage rules are checked on every event, but most of their
  leaves read only the lead's attributes (and fit/grade, which derive from them), and ``hand_raiser``
  depends only on the event's type. Attribute leaves are evaluated once per attribute change; for
  each value of ``hand_raiser`` the checks become residuals over the event, engagement, stage and
  fast track. Plans are shared by every lead whose folded leaves came out the same. A plan whose
  checks can only turn true with a higher engagement score (``monotone``) lets the engine skip
  them while the score does not rise.
- ``EventMemo``: an event type's engagement rules mostly read the event alone (its path, campaign,
  offer), and a site has a few hundred distinct pages and campaigns. The event leaves are evaluated
  once per distinct combination of the event values they read (an "alpha memory", as in Rete), so
  most events cost one dict lookup for all their rules instead of one test per rule.
- ``FieldAnswers``: the same for the lead's side. Fit rules and a plan's attribute leaves mostly read
  one field (a job title, a company size, an email domain), and leads share those values far more
  than whole profiles: each field's tests run once per distinct value and the answers are kept
  (``FitMemo`` for the fit, ``StagePlanner`` for its attribute leaves).

Each of these is a cache standing for the compiled rules it was built from (its docstring says what
it is keyed by and when it no longer applies); a compiled rule set holds them in ``RulesetCaches``
(``rules.compile``), and deciding without them gives the same answers. ``LeadPlans`` keeps each
lead's plans between its events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, compress
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from chalicelib.attributes import LEAD_FIELDS
from chalicelib.rules.conditions import (
    Context,
    Predicate,
    all_of,
    any_of,
    condition_fields,
    dig,
    getter,
    leaf_predicate,
)
from chalicelib.rules.model import AllOf, AnyOf, Condition, Leaf, NotOf

if TYPE_CHECKING:
    from chalicelib.rules.compile import (
        CompiledDisqualifier,
        CompiledEngagement,
        CompiledFit,
        CompiledRuleset,
    )

_PER_EVENT_FIELDS = frozenset({"engagement", "hand_raiser", "stage", "fast_track"})


def _static_field(name: str) -> bool:
    """Does the field depend on the lead's attributes (and rule set) alone?"""
    return not name.startswith("event.") and name not in _PER_EVENT_FIELDS


def _folded_field(name: str) -> bool:
    """Is the leaf replaced by a constant in a stage plan (attribute leaves and hand_raiser leaves)?"""
    return name == "hand_raiser" or _static_field(name)


def attribute_key(name: str) -> str:
    """What an attribute leaf depends on: its top-level attribute ("custom" for custom fields), or
    "$fit" for fit and grade."""
    if name in ("fit", "grade"):
        return "$fit"
    return name.partition(".")[0]


def _event_field(name: str) -> bool:
    return name.startswith("event.")


def _folded_leaves(cond: Condition, out: list[Leaf], folded: Callable[[str], bool]) -> None:
    if isinstance(cond, Leaf):
        if folded(cond.field):
            out.append(cond)
    elif isinstance(cond, AllOf):
        for c in cond.all:
            _folded_leaves(c, out, folded)
    elif isinstance(cond, AnyOf):
        for c in cond.any:
            _folded_leaves(c, out, folded)
    elif isinstance(cond, NotOf):
        _folded_leaves(cond.not_, out, folded)


Residual = Predicate | bool  # True / False: the condition's answer whatever the remaining leaves say


def _residual(
    cond: Condition, values: Iterable[bool], lists: dict[str, frozenset[str]], folded: Callable[[str], bool]
) -> Residual:
    """``cond`` with its folded leaves (in depth-first order) replaced by ``values``, simplified."""
    it = iter(values)

    def walk(c: Condition) -> Residual:
        if isinstance(c, Leaf):
            return next(it) if folded(c.field) else leaf_predicate(c, lists)
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
        return all_of(rest) if is_all else any_of(rest)

    return walk(cond)


def _grows_with_engagement(cond: Condition, negated: bool = False) -> bool:
    """Does the condition read nothing per event but the engagement score (only ever as "at least"),
    the stage and the fast track, besides the leaves a plan folds?"""
    if isinstance(cond, Leaf):
        if cond.field == "engagement":
            return not negated and cond.op in ("gt", "gte")
        return _folded_field(cond.field) or cond.field in ("stage", "fast_track")
    if isinstance(cond, NotOf):
        return _grows_with_engagement(cond.not_, not negated)
    parts = cond.all if isinstance(cond, AllOf) else cond.any
    return all(_grows_with_engagement(c, negated) for c in parts)


Answers = tuple[tuple[bool, ...], ...]  # per field (in FieldAnswers.groups order), its tests' answers
_SCALARS = (int, float, bool, type(None))  # besides text, the values answers are kept for
# A field's name when it is a plain attribute (else None: read through the getter), its getter, its
# tests, and their answers by value: text as itself, other scalars as (type, value). Tests reading
# several fields make a group with neither getter nor answers: they are tested each time.
_Group = tuple[
    str | None, Callable[[Context], Any] | None, tuple[Predicate, ...], dict[Any, tuple[bool, ...]] | None
]


class FieldAnswers:
    """Tests that each read one field of the lead (or fit, or grade), answered per distinct value.

    The tests are grouped by the field they read; a group's answers depend on that field's value
    alone, so they are kept by value: text as it is, numbers, booleans and None with their type (1,
    1.0 and True are equal as keys but not to every test). Lists and mappings (multi-select or
    nested custom fields) are tested each time. Bounded: past ``MAX_VALUES`` values per field, new
    values are tested and not kept. A test whose field is given as None reads several: it is tested
    each time.
    """

    MAX_VALUES = 4096

    def __init__(self, fields: Sequence[str | None], tests: Sequence[Predicate]) -> None:
        positions: dict[str | None, list[int]] = {}
        for i, name in enumerate(fields):
            positions.setdefault(name, []).append(i)
        self.groups: tuple[_Group, ...] = tuple(
            (name if name in LEAD_FIELDS else None, getter(name), tuple(tests[i] for i in where), {})
            if name is not None else (None, None, tuple(tests[i] for i in where), None)
            for name, where in positions.items()
        )
        # What each group depends on ("*" for several fields: always looked at again).
        self.reads = tuple(attribute_key(name) if name is not None else "*" for name in positions)
        self.order = tuple(chain.from_iterable(positions.values()))  # the tests, group by group

    def answers(self, ctx: Context, previous: Answers | None = None, changed: set[str] | None = None) -> Answers:
        """Every group's answers; with ``previous`` ones, only groups reading a ``changed`` attribute
        (or "$fit") are looked up again."""
        attrs = ctx.attrs
        out = []
        # (One loop, spelled out: this runs for every lead whose details change.)
        for index, (name, read, tests, memo) in enumerate(self.groups):
            if memo is None or read is None:  # (tests reading several fields)
                out.append(tuple([bool(test(ctx)) for test in tests]))
                continue
            if previous is not None and changed is not None and self.reads[index] not in changed:
                out.append(previous[index])
                continue
            value = attrs.get(name) if name is not None else read(ctx)
            kind = value.__class__
            if kind is str:
                key: Any = value
            elif kind in _SCALARS:
                key = (kind, value)
            else:
                out.append(tuple([bool(test(ctx)) for test in tests]))
                continue
            found = memo.get(key)
            if found is None:
                found = tuple([bool(test(ctx)) for test in tests])
                if len(memo) < self.MAX_VALUES:
                    memo[key] = found
            out.append(found)
        return tuple(out)


class FitMemo:
    """A rule set's fit rules answered through ``FieldAnswers``: by value for rules reading one field,
    tested each time for the others.

    Keyed by the attribute values the rules read; never stale (answers depend on the values alone).
    ``rules`` is what it stands for: the engine uses it only for that tuple (a copy of the rule set
    with other fit rules has none).
    """

    def __init__(self, rules: tuple[CompiledFit, ...], conditions: Sequence[Condition]) -> None:
        self.rules = rules
        fields: list[str | None] = []
        for cond in conditions:
            names = condition_fields(cond)
            name = next(iter(names)) if len(names) == 1 else None
            fields.append(name if name is not None and _static_field(name) else None)
        self.answers = FieldAnswers(fields, [rule.test for rule in rules])
        # The answers come field by field; the rules' own order is the order fit_rules lists them in.
        position = {test: k for k, test in enumerate(self.answers.order)}
        self._in_rule_order = _picker([position[i] for i in range(len(rules))])

    def hits(self, ctx: Context) -> list[CompiledFit]:
        """The rules that hold (every rule: a lookup per field costs less than finding what changed)."""
        return list(compress(self.rules, self._in_rule_order(tuple(chain.from_iterable(self.answers.answers(ctx))))))


def _picker(indices: list[int]) -> Callable[[tuple[bool, ...]], tuple[bool, ...]]:
    """``values -> tuple(values[i] for i in indices)``, in C where it can be."""
    if len(indices) >= 2:
        return itemgetter(*indices)
    return lambda values: tuple(values[i] for i in indices)


@dataclass(frozen=True, slots=True)
class StagePlan:
    """The per-event checks for leads whose folded leaves came out the same (shared between them)."""

    disqualifiers: tuple[tuple[CompiledDisqualifier, Residual], ...]  # those not constantly False, in order
    fast_track: Residual
    mql: Residual
    sql: Residual
    idle: bool  # nothing can fire: no disqualifier can, every stage rule is False
    reads_engagement: bool  # some check left may read the engagement score
    # Per event, the checks can only turn true by a higher engagement score or another stage: once
    # all fail, they fail again at the same stage with an engagement score no higher, or lower than
    # the next bound (an engagement leaf's value) above it.
    monotone: bool = False
    engagement_bounds: tuple[float, ...] = ()  # sorted


class StagePlanner:
    """Builds (and shares, by the folded leaves' outcomes) the plans of one compiled rule set.

    Its plans are kept by (hand-raiser, attribute leaves' values), for good: a plan depends on those
    alone. It stands for the rule set's disqualifiers and stage predicates it was built with
    (``matches``): a copy of the rule set with others has no plans.
    """

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
                _folded_leaves(cond, folded, _folded_field)
            self.spans.append((start, len(folded)))
        self.folded = len(folded)
        # Attribute leaves are evaluated per lead; hand_raiser leaves once here, for False and True.
        static = [(i, leaf) for i, leaf in enumerate(folded) if _static_field(leaf.field)]
        self.static = FieldAnswers([leaf.field for _, leaf in static], [leaf_predicate(leaf, lists) for _, leaf in static])
        # The folded position of each static answer, in the order ``static_values`` gives them.
        self.static_positions = tuple(static[k][0] for k in self.static.order)
        self.by_hand_raiser = tuple(
            tuple((i, bool(leaf_predicate(leaf, lists)(Context({}, hand_raiser=hand_raiser))))
                  for i, leaf in enumerate(folded) if not _static_field(leaf.field))
            for hand_raiser in (False, True)
        )
        self.plans: dict[tuple[bool, Answers], StagePlan] = {}
        self.monotone = all(cond is None or _grows_with_engagement(cond) for cond in conditions)
        bounds: list[Leaf] = []
        for cond in conditions:
            if cond is not None:
                _folded_leaves(cond, bounds, lambda name: name == "engagement")
        self.engagement_bounds = tuple(sorted({float(leaf.value) for leaf in bounds if leaf.op in ("gt", "gte")}))

    def matches(self, rs: "CompiledRuleset") -> bool:
        return (
            self.disqualifiers is rs.disqualifiers
            and self.compiled[0] is rs.fast_track and self.compiled[1] is rs.mql and self.compiled[2] is rs.sql
        )

    def static_values(self, ctx: Context, previous: Answers | None = None, changed: set[str] | None = None) -> Answers:
        """The attribute leaves' values for a context with the lead's attributes, fit and grade, by
        field; with ``previous`` values, only the fields of a ``changed`` attribute (or "$fit") are read."""
        return self.static.answers(ctx, previous, changed)

    def plans_for(self, static: Answers) -> tuple[StagePlan, StagePlan]:
        """A lead's plans, given its attribute leaves' values, for an event that is not and is a hand-raiser."""
        return self._plan(False, static), self._plan(True, static)

    def _plan(self, hand_raiser: bool, static: Answers) -> StagePlan:
        key = (hand_raiser, static)
        plan = self.plans.get(key)
        if plan is None:
            values = [False] * self.folded
            for i, value in zip(self.static_positions, chain.from_iterable(static), strict=True):
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
            residuals.append(False if cond is None else _residual(cond, values[start:end], self.lists, _folded_field))
        n = len(self.disqualifiers)
        disqualifiers = tuple((d, r) for d, r in zip(self.disqualifiers, residuals[:n], strict=True) if r is not False)
        fast_track, mql, sql = residuals[n:]
        idle = not disqualifiers and fast_track is False and mql is False and sql is False
        reads_engagement = any(
            not isinstance(residual, bool) and "engagement" in condition_fields(cond)
            for cond, residual in zip(self.conditions, residuals, strict=True)
        )
        return StagePlan(disqualifiers, fast_track, mql, sql, idle, reads_engagement, self.monotone,
                         self.engagement_bounds)


@dataclass(slots=True)
class QuietNote:
    """Every check of a monotone plan failed at this stage, fast track and engagement score.

    The checks can only turn true with a higher score (or at another stage), so they fail again while
    the score is no higher than ``score``, or below ``bound`` (the next engagement leaf value above
    it). ``headroom`` is the positive points scored since the note, or None when some running total
    was negative then: with every total >= 0 at the note, each total can only decay toward zero, so
    the score is at most ``score + headroom`` (negative points only lower it), and while that is
    under ``bound`` the checks fail again without the score being computed.
    """

    plan: StagePlan
    stage: str
    fast_track: bool
    score: float
    bound: float
    headroom: float | None


@dataclass(slots=True, eq=False)
class LeadPlan:
    """A lead's stage plans (for an event that is not, and that is, a hand-raiser) and what they were
    made from: the rule set, the lead's attributes (the dict itself), its fit, grade and attribute
    leaves' values. Valid while all of those stay the same; after attributes change in place, it is
    made again from the leaves of those that changed."""

    rs: CompiledRuleset
    attrs: dict[str, Any]
    fit: float
    grade: str
    static: Answers
    plans: tuple[StagePlan, StagePlan]
    quiet: QuietNote | None = None


class LeadPlans(dict[str, LeadPlan]):
    """Each lead's ``LeadPlan`` under one rule set, by lead id, between its events.

    An entry is used only for the state whose attributes dict it was made from (another state of the
    same lead, a copy or a state loaded again, makes its own in its place), and only while the rule
    set, attributes and fit are the same. The engine drops it where attributes may have changed
    unseen: a full refit (``set_email``, another rule set version) and recycling (see
    ``engine.stages``). Bounded: past ``MAX_LEADS`` leads it starts afresh (a backtest replays lead
    by lead; a Lambda scores a few leads at a time).
    """

    __slots__ = ()
    MAX_LEADS = 4096

    def keep(self, lead_id: str, plan: LeadPlan) -> None:
        if len(self) >= self.MAX_LEADS and lead_id not in self:
            self.clear()
        self[lead_id] = plan

    def drop(self, lead_id: str) -> None:
        self.pop(lead_id, None)


# -- engagement rules by event values ----------------------------------------------------------------

Candidates = tuple[tuple["CompiledEngagement", Predicate | None], ...]
_NO_ATTRIBUTES: dict[str, Any] = {}  # event leaves never read the lead's attributes


def url_base(url: Any) -> Any:
    """A URL without its query and fragment: what the event's path is derived from.

    ``urlsplit(url).path == urlsplit(url_base(url)).path`` for every string (a property test checks
    it), so the base stands for the URL in a key when only the path is read, and tracking parameters
    (utm_*, gclid) do not make every page view a new key.
    """
    if url.__class__ is not str:
        return url
    if "?" in url:
        url = url.partition("?")[0]
    return url.partition("#")[0] if "#" in url else url


Reader = Callable[[Any, Any], Any]  # (event, its properties) -> a raw value a field derives from


def _sources(name: str) -> list[tuple[str, ...]]:
    """The raw values the event field ``name`` is derived from, named: ("prop", key), ("base", key)..."""
    _, _, rest = name.partition(".")
    sub, _, deeper = rest.partition(".")
    if sub in ("type", "source"):
        return [(sub,)]
    if sub == "path":
        return [("prop", "path"), ("base", "url")]
    if sub == "offer":
        return [("prop", "offer"), ("prop", "form_id")]
    keys = tuple((deeper if sub == "properties" else rest).split("."))
    return [("prop", keys[0])] if len(keys) == 1 else [("dig", *keys)]


def _reader(source: tuple[str, ...]) -> Reader:
    kind, *names = source
    if kind == "type":
        return lambda e, p: e.type
    if kind == "source":
        return lambda e, p: e.source
    if kind == "base":
        return lambda e, p: url_base(p.get(names[0]))
    if kind == "prop":
        return lambda e, p: p.get(names[0])
    keys = tuple(names)
    return lambda e, p: dig(p, keys)


def _key_sources(fields: Iterable[str]) -> list[tuple[str, ...]]:
    """The distinct raw values the fields read (the URL's base is left out when the URL itself is read)."""
    sources = {source: None for name in sorted(fields) for source in _sources(name)}
    return [s for s in sources if not (s[0] == "base" and ("prop", s[1]) in sources)]


def _key_function(sources: list[tuple[str, ...]]) -> Callable[[Any], Any]:
    """The memo key of an event: its raw values, or ``_NO_KEY`` when one is not text.

    Only text and None make keys: 1, 1.0 and True are equal as keys but not to every condition.
    Keys of one or two properties (most event types: the path and URL, the campaign, the offer) are
    spelled out: they are built for every event.
    """
    if not sources:
        return lambda e: ()
    if len(sources) <= 2 and all(kind in ("prop", "base") for kind, *_ in sources):
        names = [name for _, name in sources]
        bases = [kind == "base" for kind, _ in sources]
        if len(sources) == 1:
            (name,), (base,) = names, bases

            def one(e: Any) -> Any:
                value = e.properties.get(name)
                if value is None:
                    return None
                if value.__class__ is str:
                    return url_base(value) if base else value
                return _NO_KEY

            return one
        (first, second), (first_base, second_base) = names, bases

        def two(e: Any) -> Any:
            props = e.properties
            a, b = props.get(first), props.get(second)
            if a is not None:
                if a.__class__ is not str:
                    return _NO_KEY
                if first_base and ("?" in a or "#" in a):
                    a = url_base(a)
            if b is not None:
                if b.__class__ is not str:
                    return _NO_KEY
                if second_base and ("?" in b or "#" in b):
                    b = url_base(b)
            return (a, b)

        return two
    readers = tuple(_reader(source) for source in sources)

    def many(e: Any) -> Any:
        props = e.properties
        values = tuple([read(e, props) for read in readers])
        for value in values:
            if value is not None and value.__class__ is not str:
                return _NO_KEY
        return values

    return many


_NO_KEY: Any = object()


class EventMemo:
    """One event type's engagement rules, with their event leaves evaluated per distinct event values.

    Keyed by the event values the rules read; never stale, and it stands for ``rules`` (the engine
    uses it only for the rule set's tuple of that event type). ``candidates(event)`` gives, in rule
    order, the rules the event can score for and what is left to test per lead: None when the rule
    holds whatever the lead, else a residual over the lead's attributes. Keys are tuples of text (or
    None) values; an event with any other value (a number, a list) is tested rule by rule, as is
    every event once the keys stop repeating (a stream of unique URLs read by a rule), so the memory
    is bounded and never a loss for long.
    """

    MAX_KEYS = 2048

    def __init__(
        self, rules: tuple[CompiledEngagement, ...], conditions: list[Condition | None],
        lists: dict[str, frozenset[str]],
    ) -> None:
        self.rules = rules  # what the memo stands for: the engine checks it is the rule set's tuple
        self.conditions = conditions
        self.lists = lists
        self.plain: Candidates = tuple((rule, rule.test) for rule in rules)
        sources = _key_sources(f for c in conditions for f in condition_fields(c) if _event_field(f))
        self.key = _key_function(sources)
        self.leaves: list[tuple[Predicate, ...]] = []
        for cond in conditions:
            folded: list[Leaf] = []
            if cond is not None:
                _folded_leaves(cond, folded, _event_field)
            self.leaves.append(tuple(leaf_predicate(leaf, lists) for leaf in folded))
        self.residuals: dict[tuple[int, tuple[bool, ...]], Residual] = {}
        self.memo: dict[Any, Candidates] | None = {}
        self.lookups = 0
        if not sources:  # no rule reads the event (an email open scores the same whoever sent it)
            fixed = self._build(None)
            self.candidates = lambda event: fixed  # type: ignore[method-assign]

    def candidates(self, event: Any) -> Candidates:
        memo = self.memo
        if memo is None:
            return self.plain
        key = self.key(event)
        if key is _NO_KEY:
            return self.plain
        self.lookups += 1
        found = memo.get(key)
        if found is None:
            found = self._miss(key, event)
        return found

    def _miss(self, key: Any, event: Any) -> Candidates:
        memo = self.memo
        assert memo is not None
        if len(memo) >= self.MAX_KEYS:
            if self.lookups < 2 * self.MAX_KEYS:  # under half the lookups hit: keys do not repeat
                self.memo = None
                return self.plain
            memo.clear()
            self.lookups = 0
        found = memo[key] = self._build(event)
        return found

    def _build(self, event: Any) -> Candidates:
        ctx = Context(_NO_ATTRIBUTES, event)
        out: list[tuple[CompiledEngagement, Predicate | None]] = []
        for index, (rule, cond, leaves) in enumerate(zip(self.rules, self.conditions, self.leaves, strict=True)):
            if cond is None:
                out.append((rule, None))
                continue
            values = tuple([bool(leaf(ctx)) for leaf in leaves])
            residual = self.residuals.get((index, values))
            if residual is None:
                residual = self.residuals[(index, values)] = _residual(cond, values, self.lists, _event_field)
            if residual is not False:
                out.append((rule, None if residual is True else residual))
        return tuple(out)
