"""Small, safe edits of a rule set for analysts: read and change the stage thresholds.

A rule set is data; these helpers find the numeric comparisons in the stage rules (``engagement
>= 30``, ``fit >= 50``) so a notebook can say "raise the MQL engagement threshold to 40" without
walking the condition tree by hand. Every edit returns a new, validated ``RuleSet``.
"""

from __future__ import annotations

from typing import Any

import yaml

from chalicelib.rules.loader import parse_ruleset
from chalicelib.rules.model import RuleSet

STAGE_RULES = ("mql", "sql", "fast_track")
_BOUNDS = frozenset({"gt", "gte"})


def _leaves(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "field" in node and "op" in node:
            return [(path, node)]
        out = []
        for key in ("all", "any"):
            for i, child in enumerate(node.get(key) or ()):
                out += _leaves(child, f"{path}.{key}[{i}]")
        if "not" in node:
            out += _leaves(node["not"], f"{path}.not")
        return out
    return []


def _stage_conditions(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for stage in STAGE_RULES:
        rule = body["stages"].get(stage)
        if rule:
            for path, leaf in _leaves(rule["when"], f"stages.{stage}.when"):
                found.append((stage, path, leaf))
    return found


def thresholds(ruleset: RuleSet) -> list[dict[str, Any]]:
    """Every lower bound in the stage rules: ``{"stage", "field", "op", "value", "path"}``."""
    body = ruleset.model_dump(mode="json", by_alias=True)
    return [
        {"stage": stage, "field": leaf["field"], "op": leaf["op"], "value": leaf["value"], "path": path}
        for stage, path, leaf in _stage_conditions(body)
        if leaf["op"] in _BOUNDS
    ]


def stage_grades(ruleset: RuleSet, stage: str, field: str = "engagement") -> frozenset[str] | None:
    """The grades a stage rule asks for alongside its lower bound on ``field`` (None: any grade).

    For the default rule set: ``mql`` -> {A, B} (fit B or better and 30 engagement), ``sql`` -> {A}.
    Read from the ``all`` group holding the bound: its ``grade`` leaves (``in`` / ``eq``).
    """
    body = ruleset.model_dump(mode="json", by_alias=True)
    rule = body["stages"].get(stage)
    if not rule:
        return None
    found: set[str] = set()

    def visit(node: Any) -> None:
        if not isinstance(node, dict):
            return
        parts = node.get("all")
        if parts:
            leaves = [p for p in parts if isinstance(p, dict) and "field" in p]
            if any(p["field"] == field and p["op"] in _BOUNDS for p in leaves):
                for p in leaves:
                    if p["field"] == "grade" and p["op"] == "in":
                        found.update(str(v) for v in p["value"])
                    elif p["field"] == "grade" and p["op"] == "eq":
                        found.add(str(p["value"]))
        for key in ("all", "any"):
            for child in node.get(key) or ():
                visit(child)

    visit(rule["when"])
    return frozenset(found) or None


def with_threshold(ruleset: RuleSet, stage: str, value: float, field: str = "engagement") -> RuleSet:
    """A copy of ``ruleset`` whose ``stage`` rule requires ``field >= value`` wherever it bounded it.

    Raises ``ValueError`` when the stage rule has no lower bound on ``field`` (nothing to change).
    """
    if stage not in STAGE_RULES:
        raise ValueError(f"stage must be one of {', '.join(STAGE_RULES)}")
    body = ruleset.model_dump(mode="json", by_alias=True)
    changed = 0
    for found_stage, _, leaf in _stage_conditions(body):
        if found_stage == stage and leaf["field"] == field and leaf["op"] in _BOUNDS:
            leaf["value"] = value
            changed += 1
    if not changed:
        raise ValueError(f"the {stage} rule has no lower bound on {field!r} to change")
    return parse_ruleset(body)


def to_yaml(ruleset: RuleSet) -> str:
    """The rule set as YAML text (what ``load_ruleset`` and ``POST /v1/rulesets`` accept)."""
    return yaml.safe_dump(ruleset.model_dump(mode="json", by_alias=True), sort_keys=False, allow_unicode=True)
