"""What changes between two rule sets, rule by rule: structured changes and a text rendering.

    changes = diff_rulesets(active, candidate)   # RuleSet objects or plain dicts (as the API stores them)
    print(render_diff(changes, "v3 (active)", "candidate.yaml"))

Both sides are validated and compared in their normalised form (defaults filled in), so a file
that only spells out a default changes nothing. Fit, engagement and disqualifier rules are matched
by ``id``, grade bands by grade, routes by ``name``, lists and forms by their name: a renamed rule
reads as one rule removed and one added. A condition is compared as a whole; when only its values
moved (a threshold, a list of titles) the rendering shows just those values.

Used by ``baton rules diff``, the dry run of ``baton rules publish`` and, for a suggested rule set,
``baton rules suggest --from``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeGuard

from chalicelib.rules.loader import parse_ruleset
from chalicelib.rules.model import RuleSet

Kind = Literal["added", "removed", "changed"]

# Sections in the order they are reported. Each maps to where it lives in a rule set and how its
# items are named (a key inside list items, or the keys of a mapping); None: plain settings.
_KEYED: dict[str, tuple[tuple[str, ...], str | None]] = {
    "fit": (("fit",), "id"),
    "engagement": (("engagement",), "id"),
    "disqualifiers": (("disqualifiers",), "id"),
    "grades": (("grades",), "grade"),
    "stages": (("stages",), None),
    "routes": (("handoff", "routes"), "name"),
    "handoff": (("handoff",), None),
    "lists": (("lists",), ""),  # "": a mapping whose keys name the items
    "forms": (("forms",), ""),
    "decay": (("decay",), None),
}
SECTIONS = (*_KEYED, "settings")  # settings: name, description, accept_unknown_forms
_TITLE_KEYS = ("label", "reason", "channel")  # what an item is called, for the reader


@dataclass(frozen=True)
class Change:
    """One difference between two rule sets.

    ``section`` is one of ``SECTIONS``. ``item`` names the rule (its id), grade band, route, list
    or form, and is None for a section's own settings (``stages``, ``handoff``, ``decay``,
    ``settings``). ``field`` is what changed, as a dotted path inside the item or section
    (``points``, ``caps.max_count``, ``mql.when``); it is None when a whole item was added or
    removed. ``before`` and ``after`` are JSON values as written in a rule set (None on the side
    where the item or setting is absent). ``title`` is the item's label (or reason, or channel).
    """

    section: str
    item: str | None
    field: str | None
    kind: Kind
    before: Any = None
    after: Any = None
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise(ruleset: RuleSet | Mapping[str, Any]) -> dict[str, Any]:
    """A rule set as plain data with every default filled in (validated: raises ValidationFailed)."""
    model = ruleset if isinstance(ruleset, RuleSet) else parse_ruleset(dict(ruleset))
    return model.model_dump(mode="json", by_alias=True)


def diff_rulesets(before: RuleSet | Mapping[str, Any], after: RuleSet | Mapping[str, Any]) -> list[Change]:
    """Every change from ``before`` to ``after``, section by section; empty when they score alike."""
    a, b = normalise(before), normalise(after)
    changes: list[Change] = []
    for section, (path, key) in _KEYED.items():
        left, right = _at(a, path), _at(b, path)
        if section == "handoff":  # its routes are a section of their own
            left, right = _without(left, "routes"), _without(right, "routes")
        if key is None:
            changes += _compare(section, None, "", left, right, None)
        else:
            changes += _items(section, key, left, right)
    top = ("name", "description", "accept_unknown_forms")
    changes += _compare("settings", None, "", {k: a.get(k) for k in top}, {k: b.get(k) for k in top}, None)
    return changes


def _at(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data


def _without(data: Any, key: str) -> Any:
    return {k: v for k, v in data.items() if k != key} if isinstance(data, dict) else data


def _named(items: Any, key: str) -> dict[str, Any]:
    if isinstance(items, dict):  # lists, forms: the mapping's keys name the items
        return {str(k): v for k, v in items.items()}
    return {str(item[key]): item for item in items or []}


def _title(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((str(value[k]) for k in _TITLE_KEYS if value.get(k)), None)
    return None


def _items(section: str, key: str, left: Any, right: Any) -> list[Change]:
    before, after = _named(left, key), _named(right, key)
    out: list[Change] = []
    for name, value in after.items():
        if name not in before:
            out.append(Change(section, name, None, "added", None, value, _title(value)))
        else:
            title = _title(value) or _title(before[name])
            out += _compare(section, name, "", before[name], value, title)
    out += [Change(section, name, None, "removed", value, None, _title(value))
            for name, value in before.items() if name not in after]  # fmt: skip
    if section == "routes":  # the first matching route wins: its order is part of the rules
        kept = [n for n in before if n in after]
        if kept != [n for n in after if n in before]:
            out.append(Change(section, None, "order", "changed", kept, [n for n in after if n in before]))
    return out


def _compare(section: str, item: str | None, path: str, a: Any, b: Any, title: str | None) -> list[Change]:
    if a == b:
        return []
    # Conditions are compared whole (the rendering points at the values that moved); so are
    # lists, scalars, and a setting present on one side only.
    if path.endswith("when") or not (isinstance(a, dict) and isinstance(b, dict)):
        return [Change(section, item, path or None, "changed", a, b, title)]
    out: list[Change] = []
    for key in [*a, *(k for k in b if k not in a)]:
        out += _compare(section, item, f"{path}.{key}" if path else key, a.get(key), b.get(key), title)
    return out


# --- rendering ------------------------------------------------------------------------------------


def render_diff(changes: Sequence[Change], before_label: str = "before", after_label: str = "after") -> str:
    """The changes as text, grouped by section and rule, one line per change."""
    if not changes:
        return f"no changes: {before_label} and {after_label} are the same rule set\n"
    count = f"{len(changes)} change{'s' if len(changes) != 1 else ''}"
    lines = [f"{before_label} -> {after_label}: {count}"]
    for section in SECTIONS:
        mine = [c for c in changes if c.section == section]
        if not mine:
            continue
        lines.append(section)
        for item, group in _grouped(mine):
            lines += _render_item(item, group)
    return "\n".join(lines) + "\n"


def _grouped(changes: list[Change]) -> Iterator[tuple[str | None, list[Change]]]:
    seen: dict[str | None, list[Change]] = {}
    for change in changes:
        seen.setdefault(change.item, []).append(change)
    yield from seen.items()


def _render_item(item: str | None, group: list[Change]) -> list[str]:
    if item is None:  # a section's own settings: one line each
        return [f"  ~ {c.field}: {_change_text(c)}" for c in group]
    first = group[0]
    title = f" ({first.title})" if first.title else ""
    if first.kind == "added":
        return [f"  + {item}{title}: {summary(first.section, first.after)}"]
    if first.kind == "removed":
        return [f"  - {item}{title}: {summary(first.section, first.before)}"]
    if len(group) == 1:
        field = f"{first.field}: " if first.field else ""
        return [f"  ~ {item}{title}: {field}{_change_text(first)}"]
    return [f"  ~ {item}{title}"] + [f"      {c.field}: {_change_text(c)}" for c in group]


def _change_text(change: Change) -> str:
    a, b = change.before, change.after
    if change.field and change.field.endswith("when"):
        return _condition_change(a, b)
    if change.field != "order":
        return _list_change(a, b) or f"{_value(a)} -> {_value(b)}"
    return f"{_value(a)} -> {_value(b)}"


def _list_change(a: Any, b: Any) -> str | None:
    """Two lists of plain values as what was added and removed; None for anything else."""
    if not (_scalars(a) and _scalars(b)):
        return None
    added, removed = [v for v in b if v not in a], [v for v in a if v not in b]
    if not (added or removed):
        return f"{_values(a)} -> {_values(b)} (order)"
    return "; ".join(([f"+ {_values(added)}"] if added else []) + ([f"- {_values(removed)}"] if removed else []))


def _scalars(value: Any) -> TypeGuard[list[Any]]:
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def summary(section: str, value: Any) -> str:
    """One line for a whole item of ``section`` (a rule, a band, a route, a list, a form)."""
    if not isinstance(value, dict):
        if isinstance(value, list):
            return f"{len(value)} value{'s' if len(value) != 1 else ''}: {_values(value)}"
        return _value(value)
    if section == "grades":
        return f"min_fit {value['min_fit']}" if value.get("min_fit") is not None else "everyone else"
    if section == "routes":
        sla = f", SLA {_num(value['sla_hours'])} h" if value.get("sla_hours") is not None else ""
        when = f" when {condition_text(value['when'])}" if value.get("when") else ""
        return f"to {value['channel']}{when}{sla}"
    parts: list[str] = []
    if "points" in value:
        parts.append(f"{value['points']:+d} points")
    if value.get("events"):
        parts.append(f"on {', '.join(value['events'])}")
    if value.get("when"):
        parts.append(f"when {condition_text(value['when'])}")
    for extra in ("amount", "caps", "frequency", "half_life_days", "event", "offer"):
        if value.get(extra) is not None:
            parts.append(f"{extra} {_value(value[extra])}")
    return " ".join(parts) or _value(value)


# --- conditions -----------------------------------------------------------------------------------

_OPS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def condition_text(cond: Any) -> str:
    """A condition on one line, exactly (``engagement >= 30 and fit >= 35``)."""
    return _cond(cond, nested=False)


def _cond(cond: Any, nested: bool) -> str:
    if cond is None:
        return "always"
    if "not" in cond:
        return f"not {_cond(cond['not'], nested=True)}"
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in cond:
            parts = cond[key]
            if len(parts) == 1:
                return _cond(parts[0], nested)
            text = joiner.join(_cond(p, nested=True) for p in parts)
            return f"({text})" if nested else text
    op, value = cond["op"], cond.get("value")
    if op == "exists" and value in (None, True):
        return f"{cond['field']} exists"
    return f"{cond['field']} {_OPS.get(op, op)} {_value(value)}"


def _leaves(cond: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(cond, dict):
        return
    if "field" in cond:
        yield cond
    for key in ("all", "any"):
        for part in cond.get(key, []):
            yield from _leaves(part)
    if "not" in cond:
        yield from _leaves(cond["not"])


def _shape(cond: Any) -> Any:
    """The condition with its values blanked: equal shapes differ only in values."""
    if not isinstance(cond, dict):
        return cond
    if "field" in cond:
        return (cond["field"], cond["op"])
    return {k: [_shape(p) for p in v] if isinstance(v, list) else _shape(v) for k, v in cond.items()}


def _condition_change(a: Any, b: Any) -> str:
    if a is None or b is None or _shape(a) != _shape(b):
        return f"{condition_text(a)} -> {condition_text(b)}"
    moved = []
    for left, right in zip(_leaves(a), _leaves(b), strict=True):
        if left.get("value") != right.get("value"):
            head = f"{left['field']} {_OPS.get(left['op'], left['op'])}"
            lv, rv = left.get("value"), right.get("value")
            moved.append(f"{head} {_list_change(lv, rv) or f'{_value(lv)} -> {_value(rv)}'}")
    return ", ".join(moved)


# --- values ---------------------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and set(value) == {"when"}:  # a stage rule
        return f"when {condition_text(value['when'])}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items() if v is not None) + "}"
    return "[" + ", ".join(_value(v) for v in value) + "]"


def _values(values: Sequence[Any]) -> str:
    return ", ".join(_value(v) for v in values) if values else "(none)"
