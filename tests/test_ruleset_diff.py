"""baton.ruleset_diff: what changes between two rule sets, rule by rule."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.ruleset_diff import Change, condition_text, diff_rulesets, render_diff
from chalicelib.errors import ValidationFailed
from chalicelib.rules.loader import default_ruleset

BASE: dict[str, Any] = default_ruleset().model_dump(mode="json", by_alias=True)


def _edit() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def _rule(body: dict[str, Any], section: str, rule_id: str) -> dict[str, Any]:
    return next(r for r in body[section] if r["id"] == rule_id)


def test_the_same_rule_set_has_no_changes_even_when_a_file_spells_out_defaults() -> None:
    sparse = _edit()
    del sparse["handoff"]["rescore_alerts"], sparse["decay"], sparse["accept_unknown_forms"]  # all defaults
    assert diff_rulesets(BASE, sparse) == []
    assert diff_rulesets(default_ruleset(), BASE) == []  # a RuleSet and its stored form alike
    assert render_diff([], "v1", "rules.yaml") == "no changes: v1 and rules.yaml are the same rule set\n"


def test_points_labels_and_caps_are_changes_of_their_rule() -> None:
    after = _edit()
    _rule(after, "fit", "title-executive")["points"] = 35
    pricing = _rule(after, "engagement", "pricing-view")
    pricing["label"] = "Pricing page"
    pricing["caps"]["max_count"] = 5
    changes = diff_rulesets(BASE, after)
    assert changes == [
        Change("fit", "title-executive", "points", "changed", 30, 35, "Executive or VP title"),
        Change("engagement", "pricing-view", "label", "changed", "Viewed the pricing page", "Pricing page",
               "Pricing page"),
        Change("engagement", "pricing-view", "caps.max_count", "changed", 3, 5, "Pricing page"),
    ]
    text = render_diff(changes, "v3 (active)", "candidate.yaml")
    assert text.splitlines() == [
        "v3 (active) -> candidate.yaml: 3 changes",
        "fit",
        "  ~ title-executive (Executive or VP title): points: 30 -> 35",
        "engagement",
        "  ~ pricing-view (Pricing page)",
        '      label: "Viewed the pricing page" -> "Pricing page"',
        "      caps.max_count: 3 -> 5",
    ]


def test_added_and_removed_rules_are_shown_whole() -> None:
    after = _edit()
    after["fit"] = [r for r in after["fit"] if r["id"] != "free-email"]
    after["fit"].append({"id": "size-smb", "label": "Company of 10 to 49 people", "points": 5,
                         "when": {"all": [{"field": "company_size", "op": "gte", "value": 10},
                                          {"field": "company_size", "op": "lt", "value": 50}]}})
    changes = diff_rulesets(BASE, after)
    assert [(c.kind, c.item, c.field) for c in changes] == [("added", "size-smb", None), ("removed", "free-email", None)]
    lines = render_diff(changes).splitlines()
    assert "  + size-smb (Company of 10 to 49 people): +5 points when company_size >= 10 and company_size < 50" in lines
    assert '  - free-email (Free webmail address): -10 points when email_domain in_list "free_mail"' in lines


def test_a_threshold_that_moved_shows_only_the_value() -> None:
    after = _edit()
    mql = after["stages"]["mql"]["when"]["any"][0]["all"][1]
    assert mql == {"field": "engagement", "op": "gte", "value": 30}
    mql["value"] = 40
    after["grades"][1]["min_fit"] = 40
    changes = diff_rulesets(BASE, after)
    assert [(c.section, c.item, c.field) for c in changes] == [("grades", "B", "min_fit"), ("stages", None, "mql.when")]
    lines = render_diff(changes).splitlines()
    assert "  ~ B: min_fit: 35 -> 40" in lines
    assert "  ~ mql.when: engagement >= 30 -> 40" in lines


def test_a_condition_that_changed_shape_is_shown_before_and_after() -> None:
    after = _edit()
    after["stages"]["sql"]["when"] = {"field": "engagement", "op": "gte", "value": 80}
    [change] = diff_rulesets(BASE, after)
    assert change.before == BASE["stages"]["sql"]["when"] and change.after == after["stages"]["sql"]["when"]
    line = render_diff([change]).splitlines()[-1]
    assert line.startswith("  ~ sql.when: ") and line.endswith(" -> engagement >= 80")
    assert condition_text(BASE["stages"]["sql"]["when"]) in line


def test_lists_and_values_in_a_condition_show_what_was_added_and_removed() -> None:
    after = _edit()
    after["lists"]["competitors"] = [*after["lists"]["competitors"][1:], "acme.io"]
    _rule(after, "fit", "department-revenue")["when"]["value"].append("finance")
    after["lists"]["partners"] = ["ally.io"]
    changes = diff_rulesets(BASE, after)
    lines = render_diff(changes).splitlines()
    assert '  ~ department-revenue (Works in sales, marketing or revenue operations): when: department in + "finance"' in lines
    assert '  ~ competitors: + "acme.io"; - "rivalscore.io"' in lines
    assert '  + partners: 1 value: "ally.io"' in lines


def test_routes_are_matched_by_name_and_their_order_counts() -> None:
    after = _edit()
    routes = after["handoff"]["routes"]
    assert len(routes) >= 2, "the default rule set has routes to reorder"
    routes[0]["sla_hours"] = 2
    routes.reverse()
    after["handoff"]["sla_hours"] = 12
    changes = diff_rulesets(BASE, after)
    first = BASE["handoff"]["routes"][0]["name"]
    assert Change("routes", first, "sla_hours", "changed", BASE["handoff"]["routes"][0]["sla_hours"], 2,
                  BASE["handoff"]["routes"][0]["channel"]) in changes
    order = next(c for c in changes if c.field == "order")
    assert order.before == [r["name"] for r in BASE["handoff"]["routes"]] and order.after == order.before[::-1]
    assert Change("handoff", None, "sla_hours", "changed", 24, 12) in changes  # not a route's
    assert "routes" in render_diff(changes).splitlines()


def test_settings_of_every_section_are_reported() -> None:
    after = _edit()
    after["name"], after["decay"]["half_life_days"], after["accept_unknown_forms"] = "candidate", 21, True
    after["stages"]["hand_raisers"].append("trial_signup")
    after["stages"]["fast_track"] = None
    after["forms"]["demo"]["offer"] = "demo-2027"
    sections = {(c.section, c.item, c.field) for c in diff_rulesets(BASE, after)}
    assert sections == {
        ("settings", None, "name"), ("settings", None, "accept_unknown_forms"), ("decay", None, "half_life_days"),
        ("stages", None, "hand_raisers"), ("stages", None, "fast_track"), ("forms", "demo", "offer"),
    }


def test_changes_are_json_for_tools() -> None:
    after = _edit()
    _rule(after, "fit", "title-executive")["points"] = 35
    [change] = diff_rulesets(BASE, after)
    assert json.loads(json.dumps(change.to_dict())) == {
        "section": "fit", "item": "title-executive", "field": "points", "kind": "changed", "before": 30, "after": 35,
        "title": "Executive or VP title",
    }


def test_an_invalid_side_is_refused_naming_the_field() -> None:
    broken = _edit()
    broken["fit"][0]["points"] = "many"
    with pytest.raises(ValidationFailed):
        diff_rulesets(BASE, broken)


# Random edits of the default rule set: a diff is empty exactly when nothing changed, and reading it
# backwards swaps every change's sides.
_POINTS = st.integers(-15, 15).filter(lambda p: p != 0)  # within every cap of the default rules


@st.composite
def _edited(draw: st.DrawFn) -> dict[str, Any]:
    body = _edit()
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from(["fit", "engagement"]))
        index = draw(st.integers(0, len(body[section]) - 1))
        action = draw(st.sampled_from(["points", "drop", "label"]))
        if action == "points":
            body[section][index]["points"] = draw(_POINTS)
        elif action == "label":
            body[section][index]["label"] = draw(st.sampled_from(["A", "B", "Renamed"]))
        elif len(body[section]) > 1:
            del body[section][index]
    return body


@settings(max_examples=60, deadline=None)
@given(_edited(), _edited())
def test_a_diff_is_empty_exactly_when_the_rule_sets_are_equal_and_reverses_cleanly(a: dict[str, Any],
                                                                                      b: dict[str, Any]) -> None:
    forward, backward = diff_rulesets(a, b), diff_rulesets(b, a)
    assert (forward == []) == (a == b)
    flip = {"added": "removed", "removed": "added", "changed": "changed"}
    assert sorted((c.section, c.item, c.field, flip[c.kind], c.after, c.before) for c in forward) == sorted(
        (c.section, c.item, c.field, c.kind, c.before, c.after) for c in backward
    )
    assert render_diff(forward).count("\n") >= len({(c.section, c.item) for c in forward})
