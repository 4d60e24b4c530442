"""Condition semantics: every operator, the combinators and the field resolution rules.

Conditions are compiled exactly as a published rule set compiles them (through ``RuleSet``
validation and ``compile_ruleset``), so what is tested here is what production evaluates.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.events import Event
from chalicelib.rules.compile import compile_ruleset
from chalicelib.rules.conditions import Context
from chalicelib.rules.model import RuleSet

LISTS = {"competitors": ["RivalScore.io", "leadlytics.com"], "countries": ["us", "gb", "de"]}


def predicate(cond: dict[str, Any]) -> Any:
    """Compile one condition as the single fit rule of a minimal rule set."""
    ruleset = RuleSet.model_validate(
        {
            "name": "conditions",
            "lists": LISTS,
            "grades": [{"grade": "A", "min_fit": 1}, {"grade": "D"}],
            "fit": [{"id": "probe", "label": "probe", "when": cond, "points": 1}],
            "stages": {
                "mql": {"when": {"field": "fit", "op": "gte", "value": 1000}},
                "sql": {"when": {"field": "fit", "op": "gte", "value": 1000}},
            },
        }
    )
    return compile_ruleset(ruleset, version=1).fit[0].test


def holds(cond: dict[str, Any], attrs: dict[str, Any] | None = None, event: Event | None = None, **scores: Any) -> bool:
    return bool(predicate(cond)(Context(attrs or {}, event, **scores)))


def page_view(**properties: Any) -> Event:
    return Event(event_id="e1", type="page_view", ts=1_700_000_000.0, properties=properties)


# --- eq / ne --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "attr", "expected"),
    [
        ("VP", "vp", True),  # text compares case-insensitively
        ("vp", "VP", True),
        ("Software", "SOFTWARE", True),
        ("vp", "vp sales", False),  # whole value, not a substring
        ("vp", None, False),
        (250, 250, True),
        (250, "250", True),  # numbers arrive as text from forms
        (250, "250.0", True),
        (250, "1,250", False),
        (250, 251, False),
        (True, True, True),
        (True, False, False),
    ],
)
def test_eq(value: Any, attr: Any, expected: bool) -> None:
    attrs = {} if attr is None else {"seniority": attr}
    assert holds({"field": "seniority", "op": "eq", "value": value}, attrs) is expected


def test_ne_is_the_negation_of_eq_including_missing_fields() -> None:
    cond = {"field": "country", "op": "ne", "value": "US"}
    assert holds(cond, {"country": "de"})
    assert not holds(cond, {"country": "us"})
    assert holds(cond, {})  # a missing field is not equal to anything
    numeric = {"field": "company_size", "op": "ne", "value": 50}
    assert not holds(numeric, {"company_size": "50"})
    assert holds(numeric, {"company_size": 51})
    assert holds(numeric, {})


# --- in / not_in ----------------------------------------------------------------------------------


def test_in_and_not_in_fold_case() -> None:
    cond = {"field": "department", "op": "in", "value": ["Sales", "marketing"]}
    assert holds(cond, {"department": "SALES"})
    assert holds(cond, {"department": "Marketing"})
    assert not holds(cond, {"department": "engineering"})
    assert not holds(cond, {})
    neg = {"field": "department", "op": "not_in", "value": ["Sales", "marketing"]}
    assert not holds(neg, {"department": "sales"})
    assert holds(neg, {"department": "engineering"})
    assert holds(neg, {})


def test_in_with_numbers() -> None:
    cond = {"field": "company_size", "op": "in", "value": [10, 50]}
    assert holds(cond, {"company_size": 50})
    assert not holds(cond, {"company_size": 51})


def test_membership_on_a_list_value_is_false_not_an_error() -> None:
    """A multi-select form field arrives as a list: it is unhashable and must not crash scoring."""
    attrs = {"custom": {"interests": ["pricing", "api"]}}
    assert not holds({"field": "custom.interests", "op": "in", "value": ["pricing"]}, attrs)
    assert holds({"field": "custom.interests", "op": "not_in", "value": ["pricing"]}, attrs)
    assert not holds({"field": "custom.interests", "op": "in_list", "value": "countries"}, attrs)
    event = page_view(tags={"a": 1})
    assert not holds({"field": "event.tags", "op": "in", "value": ["a"]}, event=event)


# --- text operators -------------------------------------------------------------------------------


def test_contains_on_text_and_lists() -> None:
    cond = {"field": "job_title", "op": "contains", "value": "Marketing"}
    assert holds(cond, {"job_title": "Head of marketing ops"})
    assert not holds(cond, {"job_title": "Head of sales"})
    assert not holds(cond, {})
    assert not holds(cond, {"job_title": 42})
    tags = {"field": "custom.tags", "op": "contains", "value": "VIP"}
    assert holds(tags, {"custom": {"tags": ["new", "vip"]}})  # list: element equality, case-insensitive
    assert not holds(tags, {"custom": {"tags": ["vip-ish"]}})


def test_starts_with_and_ends_with() -> None:
    assert holds({"field": "email_domain", "op": "ends_with", "value": ".EDU"}, {"email_domain": "mit.edu"})
    assert not holds({"field": "email_domain", "op": "ends_with", "value": ".edu"}, {"email_domain": "edu.com"})
    assert holds({"field": "job_title", "op": "starts_with", "value": "vp"}, {"job_title": "VP Marketing"})
    assert not holds({"field": "job_title", "op": "starts_with", "value": "vp"}, {"job_title": "SVP"})
    assert not holds({"field": "job_title", "op": "starts_with", "value": "vp"}, {})
    assert not holds({"field": "company_size", "op": "starts_with", "value": "1"}, {"company_size": 100})


def test_matches_is_a_regex_search_and_case_sensitive_unless_flagged() -> None:
    sensitive = {"field": "job_title", "op": "matches", "value": r"\bVP\b"}
    assert holds(sensitive, {"job_title": "Senior VP, Sales"})  # search, not full match
    assert not holds(sensitive, {"job_title": "senior vp"})
    insensitive = {"field": "job_title", "op": "matches", "value": r"(?i)\bvp\b"}
    assert holds(insensitive, {"job_title": "Senior Vp"})
    assert not holds(insensitive, {"job_title": "mvp builder"})
    assert not holds(insensitive, {})
    anchored = {"field": "email_domain", "op": "matches", "value": r"\.(ac|edu)\.[a-z]{2}$"}
    assert holds(anchored, {"email_domain": "ox.ac.uk"})
    assert not holds(anchored, {"email_domain": "ac.uk.example.com"})


# --- numeric comparisons --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "size", "expected"),
    [
        ("gt", 250, False),
        ("gt", 251, True),
        ("gte", 250, True),
        ("gte", 249, False),
        ("lt", 249, True),
        ("lt", 250, False),
        ("lte", 250, True),
        ("lte", 251, False),
        ("gte", "250", True),  # text from a form
        ("gte", " 1,000 ", True),  # thousands separator and padding
        ("gt", "250.5", True),
        ("gte", "lots", False),  # not a number: no comparison holds
        ("lt", "lots", False),
        ("gte", None, False),  # missing
        ("lt", None, False),
        ("gte", True, False),  # booleans are not numbers
        ("lt", float("nan"), False),
    ],
)
def test_numeric_comparisons_coerce_text(op: str, size: Any, expected: bool) -> None:
    attrs = {} if size is None else {"company_size": size}
    assert holds({"field": "company_size", "op": op, "value": 250}, attrs) is expected


def test_numeric_bound_may_be_a_float() -> None:
    assert holds({"field": "annual_revenue", "op": "gte", "value": 1.5}, {"annual_revenue": "1.5"})


# --- exists ---------------------------------------------------------------------------------------


def test_exists() -> None:
    cond = {"field": "phone", "op": "exists"}
    assert holds(cond, {"phone": "+44 20 1234"})
    assert not holds(cond, {})
    assert not holds(cond, {"phone": ""})  # blank is not a value
    assert not holds(cond, {"phone": None})
    assert holds(cond, {"phone": 0})  # 0 is a value
    assert holds({"field": "phone", "op": "exists", "value": True}, {"phone": "1"})
    absent = {"field": "phone", "op": "exists", "value": False}
    assert holds(absent, {})
    assert holds(absent, {"phone": ""})
    assert not holds(absent, {"phone": "1"})


# --- in_list --------------------------------------------------------------------------------------


def test_in_list_uses_named_lists_case_insensitively() -> None:
    cond = {"field": "email_domain", "op": "in_list", "value": "competitors"}
    assert holds(cond, {"email_domain": "rivalscore.io"})  # list entry was written "RivalScore.io"
    assert holds(cond, {"email_domain": "LEADLYTICS.COM"})
    assert not holds(cond, {"email_domain": "acme.com"})
    assert not holds(cond, {})


@pytest.mark.parametrize("domain", ["mailinator.com", "Mailinator.com", "guerrillamail.com", "10minutemail.com"])
def test_built_in_disposable_list(domain: str) -> None:
    assert holds({"field": "email_domain", "op": "in_list", "value": "disposable"}, {"email_domain": domain})


@pytest.mark.parametrize("domain", ["acme.com", "gmail.com", "example.org"])
def test_disposable_list_excludes_real_domains(domain: str) -> None:
    assert not holds({"field": "email_domain", "op": "in_list", "value": "disposable"}, {"email_domain": domain})


def test_disposable_list_is_loaded_only_when_referenced() -> None:
    ruleset = RuleSet.model_validate(
        {
            "name": "t",
            "grades": [{"grade": "D"}],
            "stages": {
                "mql": {"when": {"field": "fit", "op": "gte", "value": 1}},
                "sql": {"when": {"field": "fit", "op": "gte", "value": 2}},
            },
        }
    )
    assert "disposable" not in compile_ruleset(ruleset).lists


# --- all / any / not ------------------------------------------------------------------------------


def test_all_any_not() -> None:
    exec_title = {"field": "job_title", "op": "matches", "value": "(?i)vp"}
    big = {"field": "company_size", "op": "gte", "value": 1000}
    both = {"all": [exec_title, big]}
    either = {"any": [exec_title, big]}
    neither = {"not": either}
    cases = [
        ({"job_title": "VP", "company_size": 5000}, True, True),
        ({"job_title": "VP", "company_size": 10}, False, True),
        ({"job_title": "analyst", "company_size": 5000}, False, True),
        ({"job_title": "analyst", "company_size": 10}, False, False),
        ({}, False, False),
    ]
    for attrs, want_all, want_any in cases:
        assert holds(both, attrs) is want_all, attrs
        assert holds(either, attrs) is want_any, attrs
        assert holds(neither, attrs) is (not want_any), attrs


def test_nested_combinators() -> None:
    cond = {
        "all": [
            {"field": "email_domain", "op": "exists"},
            {"not": {"field": "email_domain", "op": "in_list", "value": "competitors"}},
            {"any": [{"field": "country", "op": "in_list", "value": "countries"}, {"field": "custom.global", "op": "eq", "value": True}]},
        ]
    }
    assert holds(cond, {"email_domain": "acme.com", "country": "US"})
    assert holds(cond, {"email_domain": "acme.com", "country": "jp", "custom": {"global": True}})
    assert not holds(cond, {"email_domain": "acme.com", "country": "jp"})
    assert not holds(cond, {"email_domain": "leadlytics.com", "country": "us"})
    assert not holds(cond, {"country": "us"})


# --- field resolution -----------------------------------------------------------------------------


def test_custom_dotted_paths() -> None:
    cond = {"field": "custom.crm.tier", "op": "eq", "value": "gold"}
    assert holds(cond, {"custom": {"crm": {"tier": "Gold"}}})
    assert not holds(cond, {"custom": {"crm": {"tier": "silver"}}})
    assert not holds(cond, {"custom": {"crm": "gold"}})  # not a mapping on the way down
    assert not holds(cond, {"custom": {}})
    assert not holds(cond, {})
    assert holds({"field": "custom.inquiry_type", "op": "in", "value": ["job"]}, {"custom": {"inquiry_type": "JOB"}})
    # Sent as rules name it (traits {"custom.crm.tier": ...}), it is one attribute named crm.tier.
    assert holds(cond, {"custom": {"crm.tier": "gold"}})
    assert holds(cond, {"custom": {"crm": {"tier": "gold"}, "crm.tier": "silver"}})  # (nested first)


def test_event_type_and_source() -> None:
    event = Event(event_id="e", type="email_click", ts=0.0, source="sendgrid")
    assert holds({"field": "event.type", "op": "eq", "value": "email_click"}, event=event)
    assert holds({"field": "event.source", "op": "eq", "value": "SendGrid"}, event=event)
    # Outside an event (fit, a stage rule on publish) event fields are simply missing.
    assert not holds({"field": "event.type", "op": "exists"})
    assert not holds({"field": "event.path", "op": "exists"})
    assert not holds({"field": "event.offer", "op": "exists"})
    assert not holds({"field": "event.properties.plan", "op": "exists"})


@pytest.mark.parametrize(
    ("properties", "expected_path"),
    [
        ({"path": "/pricing"}, "/pricing"),
        ({"url": "https://acme.com/pricing?plan=pro#faq"}, "/pricing"),
        ({"url": "https://acme.com"}, "/"),
        ({"url": "https://acme.com/blog/post", "path": "/explicit"}, "/explicit"),  # an explicit path wins
        ({"url": "http://[::1/pricing"}, None),  # urlsplit refuses it: no path, and no error
    ],
)
def test_event_path_is_derived_from_url(properties: dict[str, Any], expected_path: str) -> None:
    event = page_view(**properties)
    assert holds({"field": "event.path", "op": "eq", "value": expected_path}, event=event)


def test_event_path_missing_without_url() -> None:
    assert not holds({"field": "event.path", "op": "exists"}, event=page_view(title="Pricing"))
    assert not holds({"field": "event.path", "op": "exists"}, event=page_view(url=42))


def test_event_shorthand_and_properties_paths() -> None:
    event = page_view(url="https://acme.com/pricing", campaign="Spring", plan={"name": "Pro", "seats": "25"})
    assert holds({"field": "event.campaign", "op": "eq", "value": "spring"}, event=event)
    assert holds({"field": "event.url", "op": "contains", "value": "/pricing"}, event=event)
    assert holds({"field": "event.properties.plan.name", "op": "eq", "value": "pro"}, event=event)
    assert holds({"field": "event.plan.name", "op": "eq", "value": "pro"}, event=event)  # shorthand
    assert holds({"field": "event.properties.plan.seats", "op": "gte", "value": 20}, event=event)
    assert not holds({"field": "event.properties.plan.missing", "op": "exists"}, event=event)
    # event.properties.path is the literal property, not the derived one.
    assert not holds({"field": "event.properties.path", "op": "exists"}, event=event)


def test_event_offer_falls_back_to_form_id() -> None:
    cond = {"field": "event.offer", "op": "eq", "value": "ebook-2024"}
    form = Event(event_id="f", type="form_submitted", ts=0.0, properties={"form_id": "ebook-2024"})
    assert holds(cond, event=form)
    named = Event(event_id="g", type="form_submitted", ts=0.0, properties={"form_id": "f-1", "offer": "ebook-2024"})
    assert holds(cond, event=named)
    other = Event(event_id="h", type="form_submitted", ts=0.0, properties={"form_id": "ebook-2024", "offer": "webinar"})
    assert not holds(cond, event=other)  # the sender's offer wins over the form id
    assert not holds({"field": "event.offer", "op": "exists"}, event=page_view(path="/"))


def test_score_fields() -> None:
    assert holds({"field": "grade", "op": "in", "value": ["a", "b"]}, grade="B")
    assert holds({"field": "engagement", "op": "gte", "value": 30}, engagement=30.0)
    assert not holds({"field": "engagement", "op": "gte", "value": 30}, engagement=29.99)
    assert holds({"field": "hand_raiser", "op": "eq", "value": True}, hand_raiser=True)
    assert holds({"field": "stage", "op": "eq", "value": "MQL"}, stage="mql")
    assert holds({"field": "fit", "op": "lt", "value": 0}, fit=-5.0)
    assert holds({"field": "fast_track", "op": "eq", "value": False})
