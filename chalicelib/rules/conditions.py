"""Conditions compiled to closures: what a rule's ``when`` becomes.

Every condition becomes a ``Callable[[Context], bool]`` and field paths become getters, so testing
a condition is a handful of dict lookups and function calls: no parsing, no ``eval``, no regex compile.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from chalicelib.rules.model import AllOf, AnyOf, Condition, Leaf, NotOf
from chalicelib.rules.patterns import compile_pattern

log = logging.getLogger(__name__)

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


def dig(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _custom_path(custom: Any, keys: tuple[str, ...], flat: str) -> Any:
    """``custom.crm.tier``: nested (``custom: {crm: {tier: ...}}``), or one attribute named
    ``crm.tier`` (a sender's ``custom.crm.tier``, kept under that name, which its declaration types)."""
    found = dig(custom, keys)
    return custom.get(flat) if found is None and isinstance(custom, dict) else found


def _event_path(event: Any) -> Any:
    props = event.properties
    path = props.get("path")
    if path is None and isinstance(props.get("url"), str):
        try:
            path = urlsplit(props["url"]).path or "/"
        except ValueError:  # e.g. an unbalanced IPv6 bracket: a URL that cannot be read has no path
            return None
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
        if len(keys) == 1:
            return lambda c: dig(c.attrs.get("custom"), keys)
        return lambda c: _custom_path(c.attrs.get("custom"), keys, rest)
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
        return lambda c: dig(c.event.properties, keys) if c.event is not None else None
    return lambda c: c.attrs.get(name)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _member(value: Any, options: frozenset[Any]) -> bool:
    try:
        return _fold(value) in options
    except TypeError:  # a list or mapping (a multi-select field, nested properties) is never a member
        return False


def as_number(value: Any) -> float | None:
    """A value as a number for a numeric comparison: "1,200" reads 1200.0; booleans, NaN and text
    that is not a number read None (never over or under anything)."""
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


def leaf_predicate(leaf: Leaf, lists: dict[str, frozenset[str]]) -> Predicate:
    get = getter(leaf.field)
    op, value = leaf.op, leaf.value
    # Text comparisons ignore case: marketing data says "VP", "vp" and "Vp" for the same thing.
    if op in ("eq", "ne"):
        want = _fold(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            num = float(value)

            def eq_num(c: Context) -> bool:
                return as_number(get(c)) == num

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
        try:
            pattern = compile_pattern(value)
        except ValueError:
            # Only a version stored before patterns ran on RE2 gets here (validation refuses the
            # rest): the condition matches nothing rather than making the rule set unloadable.
            log.warning("rule-set pattern not supported by RE2 on %s: the condition never matches", leaf.field)
            return lambda c: False
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
                got = as_number(got)
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
        return leaf_predicate(cond, lists)
    if isinstance(cond, AllOf):
        return all_of(tuple(compile_condition(c, lists) for c in cond.all))
    if isinstance(cond, AnyOf):
        return any_of(tuple(compile_condition(c, lists) for c in cond.any))
    if isinstance(cond, NotOf):
        inner = compile_condition(cond.not_, lists)
        return lambda c: not inner(c)
    raise AssertionError(f"unknown condition {type(cond).__name__}")


# Short combinations (the usual case) are spelled out: a generator per evaluation costs more than the
# tests. Every predicate returns a bool, so `and`/`or` give the same result as all()/any().
def all_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda c: a(c) and b(c)
    if len(parts) == 3:
        a, b, d = parts
        return lambda c: a(c) and b(c) and d(c)
    return lambda c: all(p(c) for p in parts)


def any_of(parts: tuple[Predicate, ...]) -> Predicate:
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
