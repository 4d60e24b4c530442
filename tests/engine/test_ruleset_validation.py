"""Rule-set validation: every mistake is reported with the path an author wrote and its YAML line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.errors import ValidationFailed
from chalicelib.rules.compile import compile_ruleset
from chalicelib.rules.loader import (
    DEFAULT_RULESET_PATH,
    default_ruleset,
    format_path,
    json_schema,
    load_ruleset,
    parse_ruleset,
    parse_ruleset_text,
)

DEFAULT_TEXT = DEFAULT_RULESET_PATH.read_text(encoding="utf-8")

MINIMAL = """\
name: minimal
grades:
  - {grade: A, min_fit: 50}
  - {grade: D}
fit:
  - id: big
    label: Big company
    when: {field: company_size, op: gte, value: 1000}
    points: 50
engagement:
  - id: pricing
    label: Pricing page
    events: [page_view]
    when: {field: event.path, op: starts_with, value: /pricing}
    points: 10
stages:
  mql:
    when: {field: engagement, op: gte, value: 30}
  sql:
    when: {field: engagement, op: gte, value: 60}
"""


def errors_of(text: str) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as info:
        parse_ruleset_text(text)
    return info.value.details.get("errors") or [
        {"path": info.value.details.get("field"), "message": info.value.message}
    ]


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --- the default rule set -------------------------------------------------------------------------


def test_minimal_rule_set_parses() -> None:
    ruleset = parse_ruleset_text(MINIMAL)
    assert ruleset.name == "minimal"
    assert ruleset.decay.half_life_days == 30  # defaults fill what the author left out
    assert ruleset.handoff.notify == ["sql"]


def test_default_rule_set_loads_and_compiles() -> None:
    ruleset = default_ruleset()
    assert ruleset.name == "default"
    assert load_ruleset(DEFAULT_RULESET_PATH) == ruleset
    compiled = compile_ruleset(ruleset, version=7)
    assert compiled.version == 7
    assert len(compiled.fit) == len(ruleset.fit) >= 5
    assert set(compiled.engagement_by_id) == {r.id for r in ruleset.engagement}
    assert {d.id for d in compiled.disqualifiers} >= {"competitor", "disposable-email", "student", "job-seeker"}
    assert "mailinator.com" in compiled.lists["disposable"]
    assert [g for g, _ in compiled.grades] == ["A", "B", "C", "D"]
    assert compiled.fast_track is not None
    assert compiled.hand_raisers == {"demo_request", "contact_sales", "meeting_booked"}


def test_default_rule_set_points_at_the_schema_file() -> None:
    first = DEFAULT_TEXT.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = (DEFAULT_RULESET_PATH.parent / first.split("=", 1)[1]).resolve()
    assert target == (Path(__file__).parents[2] / "docs" / "ruleset.schema.json").resolve()


# --- paths and lines ------------------------------------------------------------------------------


def test_error_names_nested_path_and_line() -> None:
    # engagement[3] is blog-view; break its caps window.
    text = replace_once(
        DEFAULT_TEXT,
        "caps: {max_count: 5, window_days: 30}\n    half_life_days: 14",
        "caps: {max_count: 5, window_days: -3}\n    half_life_days: 14",
    )
    [error] = errors_of(text)
    assert error["path"] == "engagement[3].caps.window_days"
    assert error["line"] == line_of(text, "window_days: -3")
    assert "greater than 0" in error["message"]


def test_exception_message_carries_path_and_line() -> None:
    text = replace_once(MINIMAL, "points: 10", "points: lots")
    with pytest.raises(ValidationFailed) as info:
        parse_ruleset_text(text)
    exc = info.value
    assert exc.field == "engagement[0].points"
    assert exc.details["field"] == "engagement[0].points"
    assert f"(line {line_of(text, 'points: lots')})" in exc.message
    assert exc.status == 422


def test_every_error_is_reported() -> None:
    text = replace_once(MINIMAL, "points: 10", "points: 5000")
    text = replace_once(text, "label: Big company", "label: ''")
    paths = {e["path"] for e in errors_of(text)}
    assert paths == {"fit[0].label", "engagement[0].points"}


def test_missing_required_field() -> None:
    text = replace_once(MINIMAL, "    label: Pricing page\n", "")
    [error] = errors_of(text)
    assert error["path"] == "engagement[0].label"
    assert error["message"] == "Field required"
    assert error["line"] == line_of(text, "id: pricing")  # the rule it belongs to


def test_unknown_top_level_key() -> None:
    [error] = errors_of(MINIMAL + "thresholds: {mql: 30}\n")
    assert error["path"] == "thresholds"
    assert error["line"] == line_of(MINIMAL + "thresholds: {mql: 30}\n", "thresholds")
    assert "not permitted" in error["message"]


def test_unknown_key_in_a_rule() -> None:
    text = replace_once(MINIMAL, "    points: 10\n", "    points: 10\n    cap: 3\n")
    [error] = errors_of(text)
    assert error["path"] == "engagement[0].cap"
    assert error["line"] == line_of(text, "cap: 3")


def test_condition_paths_hide_union_tags() -> None:
    text = replace_once(
        MINIMAL,
        "when: {field: company_size, op: gte, value: 1000}",
        "when: {all: [{field: country, op: eq, value: us}, {not: {field: company_size, op: gte, value: big}}]}",
    )
    [error] = errors_of(text)
    assert error["path"] == "fit[0].when.all[1].not"
    assert "<" not in error["path"]
    assert "number" in error["message"]


def test_condition_shape_error() -> None:
    text = replace_once(MINIMAL, "when: {field: company_size, op: gte, value: 1000}", "when: {size: 1000}")
    [error] = errors_of(text)
    assert error["path"] == "fit[0].when"
    assert "a condition is" in error["message"]


def test_format_path() -> None:
    assert format_path(("engagement", 3, "caps", "window_days")) == "engagement[3].caps.window_days"
    assert format_path(("fit", 0, "when", "<all>", "all", 1, "<leaf>", "op")) == "fit[0].when.all[1].op"
    assert format_path(()) == "$"


# --- fields, ops and values -----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["compnay_size", "event", "event.properties", "custom", "properties.plan", "Email"])
def test_unknown_field_names(field: str) -> None:
    text = replace_once(MINIMAL, "field: company_size", f"field: {field}")
    [error] = errors_of(text)
    assert error["path"] == "fit[0].when.field"
    assert error["line"] == line_of(text, f"field: {field}")
    assert field in error["message"]


def test_unknown_field_message_lists_what_is_allowed() -> None:
    [error] = errors_of(replace_once(MINIMAL, "field: company_size", "field: compnay_size"))
    assert "unknown field 'compnay_size'" in error["message"]
    assert "company_size" in error["message"]
    assert "custom.<path>" in error["message"]


@pytest.mark.parametrize(
    "field", ["custom.plan", "custom.crm.tier", "event.utm_source", "event.properties.plan.name", "grade"]
)
def test_extensible_fields_are_accepted(field: str) -> None:
    declared = f"attributes: {{{field}: {{type: text}}}}\n" if field.startswith("custom.") else ""
    parse_ruleset_text(declared + replace_once(MINIMAL, "field: company_size, op: gte, value: 1000",
                                               f"field: {field}, op: exists"))


def test_unknown_op() -> None:
    text = replace_once(MINIMAL, "op: gte, value: 1000", "op: greater_than, value: 1000")
    [error] = errors_of(text)
    assert error["path"] == "fit[0].when.op"
    assert error["line"] == line_of(text, "greater_than")
    assert "'gte'" in error["message"]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("{field: company_size, op: gte, value: '1000'}", "needs a number"),
        ("{field: company_size, op: gte, value: true}", "needs a number"),
        ("{field: country, op: in, value: us}", "needs a list"),
        ("{field: country, op: not_in, value: us}", "needs a list"),
        ("{field: job_title, op: contains, value: 5}", "needs a text"),
        ("{field: job_title, op: starts_with, value: [vp]}", "needs a text"),
        ("{field: country, op: eq, value: [us, gb]}", "use 'in'"),
        ("{field: country, op: exists, value: yes please}", "true or false"),
        ("{field: country, op: in_list, value: [us]}", "name of a list"),
        ("{field: job_title, op: matches, value: 5}", "regular expression"),
    ],
)
def test_value_must_suit_the_op(condition: str, message: str) -> None:
    text = replace_once(MINIMAL, "{field: company_size, op: gte, value: 1000}", condition)
    [error] = errors_of(text)
    assert error["path"] == "fit[0].when"
    assert message in error["message"]
    assert error["line"] == line_of(text, condition)


def test_bad_regex() -> None:
    text = replace_once(MINIMAL, "{field: company_size, op: gte, value: 1000}", '{field: job_title, op: matches, value: "(vp"}')
    [error] = errors_of(text)
    assert error["path"] == "fit[0].when"
    assert error["message"].startswith("pattern '(vp' is not supported: missing )")
    assert error["line"] == line_of(text, "(vp")


@pytest.mark.parametrize(("pattern", "reason"), [
    ("(a)\\\\1", "invalid escape sequence"),  # a backreference
    ("(?<=vp )sales", "invalid perl operator: (?<"),  # a lookbehind
    ("vp(?= sales)", "invalid perl operator: (?="),  # a lookahead
])
def test_patterns_re2_cannot_run_in_linear_time_are_refused_naming_the_rule(pattern: str, reason: str) -> None:
    text = replace_once(MINIMAL, "{field: company_size, op: gte, value: 1000}",
                        f'{{field: job_title, op: matches, value: "{pattern}"}}')
    [error] = errors_of(text)
    assert error["path"] == "fit[0].when" and reason in error["message"] and "linear" in error["message"]


def test_in_list_of_an_undefined_list() -> None:
    text = replace_once(MINIMAL, "{field: company_size, op: gte, value: 1000}", "{field: email_domain, op: in_list, value: competitor}")
    [error] = errors_of(text)
    assert error["path"] == "fit[0].when.value"
    assert error["line"] == line_of(text, "value: competitor")
    assert "unknown list 'competitor'" in error["message"]
    assert "disposable" in error["message"]  # the built-in list is always defined


def test_in_list_reference_inside_stage_rules_is_checked() -> None:
    text = replace_once(
        MINIMAL,
        "    when: {field: engagement, op: gte, value: 60}",
        "    when: {any: [{field: engagement, op: gte, value: 60}, {field: country, op: in_list, value: vip_countries}]}",
    )
    [error] = errors_of(text)
    assert error["path"] == "stages.sql.when.any[1].value"
    assert error["line"] == line_of(text, "vip_countries")


def test_in_list_of_a_defined_list() -> None:
    text = "lists:\n  competitors: [rival.io]\n" + replace_once(
        MINIMAL, "{field: company_size, op: gte, value: 1000}", "{field: email_domain, op: in_list, value: competitors}"
    )
    assert parse_ruleset_text(text).lists == {"competitors": ["rival.io"]}


@pytest.mark.parametrize(("name", "message"), [("disposable", "built in"), ("Bad-Name", "lower-case")])
def test_list_names(name: str, message: str) -> None:
    [error] = errors_of(f"lists:\n  {name}: [x.com]\n" + MINIMAL)
    assert error["path"] == "lists"
    assert message in error["message"]


# --- rule-level checks ----------------------------------------------------------------------------


def test_duplicate_rule_ids() -> None:
    text = replace_once(
        MINIMAL,
        "stages:\n",
        "  - id: pricing\n    label: Again\n    events: [page_view]\n    points: 1\nstages:\n",
    )
    [error] = errors_of(text)
    assert error["path"] == "engagement[1].id"
    assert "duplicate rule id 'pricing'" in error["message"]
    assert "engagement[0]" in error["message"]
    assert error["line"] == line_of(text, "label: Again") - 1


def test_same_id_in_different_sections_is_fine() -> None:
    text = replace_once(MINIMAL, "  - id: pricing\n", "  - id: big\n")
    parse_ruleset_text(text)


@pytest.mark.parametrize("rule_id", ["Pricing", "has space", "-leading", "x" * 65])
def test_rule_id_format(rule_id: str) -> None:
    [error] = errors_of(replace_once(MINIMAL, "id: pricing", f"id: '{rule_id}'"))
    assert error["path"] == "engagement[0].id"


def test_unknown_event_types() -> None:
    text = replace_once(MINIMAL, "events: [page_view]", "events: [page_view, pageview]")
    [error] = errors_of(text)
    assert error["path"] == "engagement[0].events[1]"
    assert "'pageview' (did you mean 'page_view'?)" in error["message"]
    assert "webinar_attended" in error["message"]  # the known types are listed
    assert "event_types" in error["message"]
    assert error["line"] == line_of(text, "pageview")


def test_unknown_hand_raiser_event_type() -> None:
    text = replace_once(MINIMAL, "stages:\n", "stages:\n  hand_raisers: [demo_requested]\n")
    [error] = errors_of(text)
    assert error["path"] == "stages.hand_raisers[0]"
    assert "did you mean 'demo_request'" in error["message"]


def test_zero_points_rejected() -> None:
    [error] = errors_of(replace_once(MINIMAL, "points: 10", "points: 0"))
    assert error["path"] == "engagement[0]"
    assert "must not be 0" in error["message"]


def test_caps_need_a_limit() -> None:
    text = replace_once(MINIMAL, "    points: 10\n", "    points: 10\n    caps: {window_days: 7}\n")
    [error] = errors_of(text)
    assert error["path"] == "engagement[0].caps"
    assert "max_count or max_points" in error["message"]


def test_frequency_needs_at_least_two() -> None:
    text = replace_once(MINIMAL, "    points: 10\n", "    points: 10\n    frequency: {count: 1, within_days: 7}\n")
    [error] = errors_of(text)
    assert error["path"] == "engagement[0].frequency.count"


# --- grade bands ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ("[{grade: B, min_fit: 20}, {grade: A, min_fit: 50}, {grade: D}]", "highest first"),
        ("[{grade: A, min_fit: 50}, {grade: B, min_fit: 50}, {grade: D}]", "without repeats"),
        ("[{grade: A, min_fit: 50}, {grade: D, min_fit: 0}]", "last grade band"),
        ("[{grade: A, min_fit: 50}, {grade: B}, {grade: D}]", "only the last"),
        ("[]", "at least one"),
    ],
)
def test_grade_band_order(bands: str, message: str) -> None:
    text = re.sub(r"grades:\n(  - .*\n)+", f"grades: {bands}\n", MINIMAL)
    [error] = errors_of(text)
    assert error["path"] == "grades"
    assert message in error["message"]
    assert error["line"] == line_of(text, "grades:")


def test_unknown_grade_letter() -> None:
    text = replace_once(MINIMAL, "{grade: A, min_fit: 50}", "{grade: E, min_fit: 50}")
    [error] = errors_of(text)
    assert error["path"] == "grades[0].grade"


# --- document-level problems ----------------------------------------------------------------------


def test_json_input() -> None:
    data = yaml.safe_load(MINIMAL)
    assert parse_ruleset_text(json.dumps(data, indent=2)).name == "minimal"
    data["engagement"][0]["caps"] = {"max_count": 2, "window_days": 0}
    with pytest.raises(ValidationFailed) as info:
        parse_ruleset_text(json.dumps(data, indent=2))
    [error] = info.value.details["errors"]
    assert error["path"] == "engagement[0].caps.window_days"
    assert "line" not in error  # JSON errors name the path only


def test_invalid_json_names_the_line() -> None:
    with pytest.raises(ValidationFailed, match=r"not valid JSON \(line 3\)"):
        parse_ruleset_text('{\n  "name": "x",\n  "grades": [,]\n}')


def test_invalid_yaml_names_the_line() -> None:
    # The parser notices the unclosed mapping where the next key starts.
    with pytest.raises(ValidationFailed, match=r"not valid YAML \(line 4\)"):
        parse_ruleset_text("name: x\ngrades:\n  - {grade: A\nstages: {}\n")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n", "42\n"])
def test_not_a_mapping(text: str) -> None:
    with pytest.raises(ValidationFailed, match="must be a mapping"):
        parse_ruleset_text(text)


def test_parse_ruleset_rejects_non_mapping_data() -> None:
    with pytest.raises(ValidationFailed):
        parse_ruleset(["not", "a", "mapping"])


def test_empty_yaml_value_is_a_validation_error_not_a_crash() -> None:
    [error] = errors_of(replace_once(MINIMAL, "name: minimal", "name:"))
    assert error["path"] == "name"
    assert error["line"] == 1


def test_complex_yaml_keys_are_rejected() -> None:
    with pytest.raises(ValidationFailed, match="mapping keys must be text"):
        parse_ruleset_text("? [a, b]\n: 1\n")


def test_recursive_or_exploding_aliases_are_rejected() -> None:
    with pytest.raises(ValidationFailed, match="too large or recursive"):
        parse_ruleset_text("name: &x [*x]\n")
    laughs = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for prev, name in zip("abcde", "bcdef", strict=True):
        laughs += f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
    with pytest.raises(ValidationFailed, match="too large or recursive"):
        parse_ruleset_text(laughs)


def test_yaml_anchors_for_shared_conditions_work() -> None:
    text = replace_once(MINIMAL, "when: {field: company_size, op: gte, value: 1000}", "when: &big {field: company_size, op: gte, value: 1000}")
    text = replace_once(text, "    when: {field: engagement, op: gte, value: 60}", "    when: {all: [*big, {field: engagement, op: gte, value: 60}]}")
    assert parse_ruleset_text(text).stages.sql.when is not None


def test_rule_sets_are_immutable() -> None:
    ruleset = parse_ruleset_text(MINIMAL)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its own ValidationError on frozen models
        ruleset.name = "changed"  # type: ignore[misc]


# --- JSON Schema ----------------------------------------------------------------------------------


def test_json_schema_looks_valid() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Baton rule set"
    assert schema["type"] == "object"
    assert set(schema["required"]) >= {"name", "grades", "stages"}
    assert {"fit", "engagement", "disqualifiers", "lists", "decay", "handoff"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    assert {"Leaf", "AllOf", "AnyOf", "NotOf", "EngagementRule", "FitRule"} <= set(defs)
    assert "not" in defs["NotOf"]["properties"]  # the alias, as authors write it
    assert "gte" in defs["Leaf"]["properties"]["op"]["enum"]
    json.dumps(schema)  # serialisable


def test_json_schema_references_resolve() -> None:
    schema = json_schema()
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in schema["$defs"]


def test_max_points_below_one_award_is_rejected() -> None:
    text = replace_once(MINIMAL, "    points: 10\n", "    points: 10\n    caps: {max_points: 5, window_days: 7}\n")
    [error] = errors_of(text)
    assert error["path"] == "engagement[0]"
    assert "less than one award" in error["message"]
