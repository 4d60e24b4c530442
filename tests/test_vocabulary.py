"""A rule set's vocabulary: the event types and typed custom attributes it declares, checked in the
rules that read them and coerced the same way on every path that writes them."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.attributes import (
    LEAD_FIELDS,
    Declared,
    boolean,
    coerce_all,
    coerce_declared,
    coerce_traits,
    enum_value,
    iso_date,
    number,
    stored_names,
)
from chalicelib.errors import ValidationFailed
from chalicelib.events import Event
from chalicelib.rules.compile import compile_ruleset
from chalicelib.rules.loader import default_ruleset, parse_ruleset, parse_ruleset_text, read_document

HEAD = """\
name: vocabulary
event_types:
  chat_message: {description: A chat with an advisor}
  sms_sent: An SMS from sales
attributes:
  custom.lead_origin: {type: enum, values: [Lead Add Form, API, Landing Page Submission]}
  custom.time_on_site: {type: number, description: seconds on the website}
  custom.free_copy: {type: boolean}
  custom.first_visit: {type: date}
  custom.city: {type: text}
grades: [{grade: A, min_fit: 50}, {grade: D}]
"""
TAIL = """\
engagement:
  - {id: chat, label: Chatted, events: [chat_message], points: 10}
stages:
  hand_raisers: [demo_request, sms_sent]
  mql: {when: {field: engagement, op: gte, value: 30}}
  sql: {when: {field: engagement, op: gte, value: 60}}
forms:
  chat: {event: chat_message}
"""


def rules(fit: str = "") -> str:
    return HEAD + (f"fit:\n{fit}" if fit else "") + TAIL


def errors_of(text: str) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as info:
        parse_ruleset_text(text)
    return list(info.value.details["errors"])


def fit_rule(condition: str) -> str:
    return f"  - {{id: r, label: R, points: 5, when: {condition}}}\n"


def test_declared_event_types_and_attributes_validate() -> None:
    ruleset = parse_ruleset_text(rules(fit_rule("{field: custom.lead_origin, op: eq, value: lead add form}")))
    assert ruleset.event_types["sms_sent"].description == "An SMS from sales"  # (the shorthand)
    assert ruleset.attributes["custom.lead_origin"].values == ["Lead Add Form", "API", "Landing Page Submission"]
    assert parse_ruleset_text(rules().replace("{type: number, description", "{type: number, unit: seconds, description")
                              ).attributes["custom.time_on_site"].unit == "seconds"
    compiled = compile_ruleset(ruleset)
    assert {"chat_message", "sms_sent", "page_view"} <= compiled.event_types
    assert compiled.declared["time_on_site"] == Declared("time_on_site", "number")


@pytest.mark.parametrize(("text", "path", "says"), [
    (rules().replace("events: [chat_message]", "events: [chat_mesage]"), "engagement[0].events[0]",
     "did you mean 'chat_message'?"),
    (rules().replace("[demo_request, sms_sent]", "[demo_request, sms_send]"), "stages.hand_raisers[1]",
     "did you mean 'sms_sent'?"),
    (rules().replace("chat: {event: chat_message}", "chat: {event: chat_messages}"), "forms.chat.event",
     "did you mean 'chat_message'?"),
    (rules().replace("  sms_sent: An SMS", "  page_view: A page\n  sms_sent: An SMS"), "event_types.page_view",
     "page_view is built in"),
    (rules().replace("chat_message: {description: A chat with an advisor}", "Chat Message: {description: x}"),
     "event_types.Chat Message", "lower-case letters"),
    (rules().replace("{type: boolean}", "{type: enum}"), "attributes.custom.free_copy", "needs its values"),
    (rules().replace("{type: boolean}", "{type: boolean, values: [a]}"), "attributes.custom.free_copy",
     "values are for enum"),
    (rules().replace("{type: boolean}", "{type: boolean, unit: days}"), "attributes.custom.free_copy",
     "a unit is for number attributes; this one is boolean"),
    (rules().replace("{type: number, description", "{type: number, unit: '', description"),
     "attributes.custom.time_on_site.unit", "at least 1 character"),
    (rules().replace("{type: number, description", "{type: number, unit: \"sec\\nonds\", description"),
     "attributes.custom.time_on_site.unit", "a unit is a word or two on one line"),
    (rules().replace("custom.city: {type: text}", "company_size: {type: number}"), "attributes.company_size",
     "company_size is Baton's own attribute"),
    (rules().replace("custom.city: {type: text}", "city: {type: text}"), "attributes.city", "custom.<name>"),
])
def test_declaration_errors_name_the_key(text: str, path: str, says: str) -> None:
    error = errors_of(text)[0]
    assert error["path"] == path and says in error["message"], error
    assert "line" in error


@pytest.mark.parametrize(("condition", "path", "says"), [
    ("{field: custom.lead_orgin, op: eq, value: API}", "fit[0].when.field",
     "custom.lead_orgin is not declared under attributes (did you mean 'custom.lead_origin'?)"),
    ("{field: custom.time_on_site, op: eq, value: '600'}", "fit[0].when.value",
     "custom.time_on_site is a number: compare it with a number"),
    ("{field: custom.time_on_site, op: in, value: [600, ten]}", "fit[0].when.value", "is a number"),
    ("{field: custom.time_on_site, op: contains, value: '6'}", "fit[0].when.op", "contains compares text"),
    ("{field: company_size, op: eq, value: '50-200'}", "fit[0].when.value", "company_size is a number"),
    ("{field: custom.lead_origin, op: eq, value: Lead Add Farm}", "fit[0].when.value",
     "did you mean 'Lead Add Form'?"),
    ("{field: custom.lead_origin, op: gt, value: 3}", "fit[0].when.value", "gt compares numbers"),
    ("{field: custom.free_copy, op: eq, value: 'yes'}", "fit[0].when.value", "compare it with true or false"),
    ("{not: {any: [{field: custom.city, op: exists}, {field: custom.town, op: exists}]}}",
     "fit[0].when.not.any[1].field", "custom.town is not declared"),
])
def test_rules_read_what_is_declared_with_values_of_its_type(condition: str, path: str, says: str) -> None:
    text = rules(fit_rule(condition))
    error = errors_of(text)[0]
    assert error["path"] == path and says in error["message"], error
    assert error["line"] == text.splitlines().index(fit_rule(condition).rstrip("\n")) + 1


@pytest.mark.parametrize("condition", [
    "{field: custom.time_on_site, op: gte, value: 600}",
    "{field: custom.time_on_site, op: in, value: [1, 2.5]}",
    "{field: custom.lead_origin, op: in, value: [api, Landing Page Submission]}",
    "{field: custom.free_copy, op: eq, value: true}",
    "{field: custom.first_visit, op: starts_with, value: '2024-01'}",
    "{field: custom.city, op: exists, value: false}",
    "{field: company_size, op: gte, value: 50}",
])
def test_well_typed_reads_validate(condition: str) -> None:
    parse_ruleset_text(rules(fit_rule(condition)))


def test_a_custom_name_of_batons_own_cannot_be_declared_in_a_new_version(caplog: pytest.LogCaptureFixture) -> None:
    # The API, forms and imports refuse custom.company_size (it would be read as company_size): a
    # rule set declaring it would wait for a value no lead can have.
    text = rules().replace("custom.city: {type: text}", "custom.city: {type: text}\n  custom.company_size: {type: number}")
    (error,) = errors_of(text)
    assert error["path"] == "attributes.custom.company_size" and error["line"] == 11
    assert "company_size is Baton's own attribute: a lead never has custom.company_size" in error["message"]
    with caplog.at_level(logging.WARNING):
        assert parse_ruleset(read_document(text)[0], stored=True).attributes["custom.company_size"].type == "number"
    assert "custom.company_size" in caplog.text


def test_a_stored_version_loads_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    body = parse_ruleset_text(rules()).model_dump(mode="json", by_alias=True)
    body["fit"] = [{"id": "r", "label": "R", "points": 5, "when": {"field": "custom.plan", "op": "eq", "value": "pro"}}]
    with pytest.raises(ValidationFailed, match=r"custom\.plan is not declared"):
        parse_ruleset(body)
    with caplog.at_level(logging.WARNING):
        assert parse_ruleset(body, stored=True).fit[0].id == "r"
    assert "fit[0].when.field: custom.plan is not declared" in caplog.text


def test_the_service_loads_stored_versions_made_before_declarations(caplog: pytest.LogCaptureFixture) -> None:
    from chalicelib.rulesets import RulesetService
    from chalicelib.store.memory import InMemoryRulesets

    body = default_ruleset().model_dump(mode="json", by_alias=True)
    del body["attributes"]  # as stored before declarations existed
    repo = InMemoryRulesets()
    version = repo.create("old", body, "sum", 0.0)
    service = RulesetService(repo, clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING):
        compiled = service.compiled(version.version)
    assert compiled.declared == {} and "custom.inquiry_type is not declared" in caplog.text


def test_the_shipped_rule_set_declares_what_it_reads() -> None:
    from chalicelib.rules.loader import declaration_errors

    assert declaration_errors(default_ruleset()) == []
    assert "custom.inquiry_type" in default_ruleset().attributes


# --- coercion: one vocabulary --------------------------------------------------------------------------

ENUM = Declared("lead_origin", "enum", ("Lead Add Form", "API"))


@pytest.mark.parametrize(("declared", "value", "expected"), [
    (Declared("n", "number"), "1,200", 1200),
    (Declared("n", "number"), "-3.5", -3.5),
    (Declared("n", "number"), 7.0, 7),
    (Declared("b", "boolean"), "Yes", True),
    (Declared("b", "boolean"), "on", True),
    (Declared("b", "boolean"), 0, False),
    (Declared("d", "date"), "2024-05-31T23:30:00-02:00", "2024-06-01"),
    (Declared("d", "date"), "2024-05-31", "2024-05-31"),
    (ENUM, " lead add form ", "Lead Add Form"),
    (Declared("t", "text"), 42, "42"),
])
def test_declared_values_are_coerced(declared: Declared, value: Any, expected: Any) -> None:
    assert coerce_declared(declared, value, "traits.x") == expected


@pytest.mark.parametrize(("declared", "value", "says"), [
    (Declared("n", "number"), "ten", "must be a number"),
    (Declared("b", "boolean"), "maybe", "must be true or false"),
    (Declared("d", "date"), "31/05/2024", "must be a date"),
    (ENUM, "Lead Add Farm", "did you mean 'Lead Add Form'?"),
    (Declared("t", "text"), {"a": 1}, "must be text"),
])
def test_values_that_cannot_be_coerced_name_the_field(declared: Declared, value: Any, says: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        coerce_declared(declared, value, "events[2].traits.x")
    assert info.value.field == "events[2].traits.x" and says in info.value.message


def test_undeclared_custom_traits_pass_as_sent() -> None:
    traits = {"time_on_site": "600", "favourite": "teal", "company_size": 50}
    assert coerce_traits(traits, {"time_on_site": Declared("time_on_site", "number")}, "traits") == {
        "time_on_site": 600, "favourite": "teal", "company_size": 50}
    assert coerce_traits(traits, {}, "traits") is traits


_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(lambda n: n not in LEAD_FIELDS and n != "custom")
_VALUES = st.one_of(st.text(max_size=8), st.integers(0, 10**6), st.booleans(), st.none())


@given(st.dictionaries(_NAMES, _VALUES, max_size=5))
def test_custom_attributes_sent_as_rules_name_them_are_stored_alike(custom: dict[str, Any]) -> None:
    # `plan`, `custom.plan` and `custom: {plan: ...}` are one attribute, coerced once; and coercing
    # what is stored again changes nothing (a redelivery, a replay).
    declared = {"n": Declared("n", "number")}
    traits = {"company_size": "50-200", **{k: v for k, v in custom.items() if k != "n"}, "n": "1,200"}
    plain = coerce_all(traits, "traits", declared)
    prefixed = coerce_all({("company_size" if k == "company_size" else f"custom.{k}"): v for k, v in traits.items()},
                          "traits", declared)
    nested = coerce_all({"company_size": "50-200", "custom": {k: v for k, v in traits.items() if k != "company_size"}},
                        "traits", declared)
    assert plain == prefixed == nested
    assert plain["company_size"] == 50 and plain["n"] == 1200
    assert coerce_all(plain, "traits", declared) == plain
    # A history names them the same way (its values are left as written).
    assert stored_names({f"custom.{k}": v for k, v in custom.items()}, "traits") == custom
    assert stored_names({"custom": custom}, "traits") == stored_names(custom, "traits") == custom


@given(st.one_of(st.integers(-10**12, 10**12), st.floats(-1e9, 1e9, allow_nan=False)))
def test_numbers_read_back_as_themselves(value: float) -> None:
    assert number(value) == value
    assert number(number(value)) == number(value)  # coercion is idempotent
    assert number(f"{value:,.2f}") == pytest.approx(round(value, 2))  # as text, thousands separated


@given(st.sampled_from(["true", "FALSE", "yes", "No", "1", "0", "on", "off", "t", "f", True, False]))
def test_booleans_are_idempotent(value: Any) -> None:
    once = boolean(value)
    assert once is not None and boolean(once) == once


def test_enum_and_date_are_idempotent() -> None:
    assert enum_value(enum_value("api", ENUM.values), ENUM.values) == "API"
    assert iso_date(iso_date("2024-02-29T10:00:00Z")) == "2024-02-29"


# --- every live path: the lead service is where vendor webhooks meet the declarations -------------------


def test_the_lead_service_coerces_declared_attributes_from_any_source() -> None:
    from chalicelib.leads import LeadService
    from chalicelib.rulesets import RulesetService
    from chalicelib.store.memory import InMemoryLeads, InMemoryRulesets

    repo = InMemoryRulesets()
    service = RulesetService(repo, clock=lambda: 1_700_000_000.0)
    service.publish(service.create(parse_ruleset_text(rules()).model_dump(mode="json"))["version"])
    leads = LeadService(InMemoryLeads(), service, clock=lambda: 1_700_000_000.0)
    event = Event("h1", "page_view", 1_700_000_000.0, "ana@acme.io", source="hubspot",
                  traits={"time_on_site": "1,200", "free_copy": "yes", "colour": "teal"})
    result = leads.ingest([event])
    stored = leads.leads.get(result["leads"][0]["lead_id"])
    assert stored is not None and stored.state.attributes["custom"] == {"time_on_site": 1200, "free_copy": True,
                                                                 "colour": "teal"}
    with pytest.raises(ValidationFailed) as info:
        leads.ingest([Event("h2", "page_view", 1_700_000_000.0, "bo@acme.io", traits={"free_copy": "perhaps"})])
    assert info.value.field == "traits.free_copy"
