"""The one attribute vocabulary: names and aliases, and the same coercion on every path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.attributes import ATTRIBUTES, LEAD_FIELDS, attribute_for, coerce, coerce_all, whole_number
from chalicelib.errors import ValidationFailed


@pytest.mark.parametrize(("field", "attribute"), [
    ("Company Name", "company"), ("company_name", "company"), ("E-mail", "email"), ("Email Address", "email"),
    ("Employees", "company_size"), ("  Job Title ", "job_title"), ("utm_source", "utm_source"),
    ("how_heard", None), ("email_domain", None),  # derived from the email, never sent
])
def test_field_names_people_use_map_to_one_attribute(field: str, attribute: str | None) -> None:
    assert attribute_for(field) == attribute


def test_the_vocabulary_lists_each_attribute_once_and_every_alias_once() -> None:
    names = [a.name for a in ATTRIBUTES]
    assert len(names) == len(set(names)) == len(LEAD_FIELDS)
    aliases = [alias for a in ATTRIBUTES for alias in a.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(names)


@pytest.mark.parametrize(("value", "expected"), [
    (250, 250), (250.0, 250), ("250", 250), ("1,000", 1000), ("50-200", 50), ("1000+", 1000), (" 10 - 49 ", 10),
])
def test_company_size_ranges_count_as_their_lower_bound(value: Any, expected: int) -> None:
    assert coerce("company_size", value, "traits.company_size") == expected


@pytest.mark.parametrize("value", ["lots", "-5", -5, 2.5, True, [10], "10-", "1e3"])
def test_a_size_that_cannot_be_read_is_refused_naming_the_field(value: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        coerce("company_size", value, "events[3].traits.company_size")
    assert caught.value.field == "events[3].traits.company_size"
    assert "whole number" in caught.value.message


def test_revenue_email_text_and_custom_values() -> None:
    assert coerce("annual_revenue", "$1,200.50", "r") == 1200.5
    assert coerce("email", " Ada@Acme.IO ", "e") == "ada@acme.io"
    assert coerce("company", 42, "c") == 42  # text attributes pass through as sent
    assert coerce("how_heard", {"a": 1}, "h") == {"a": 1}  # custom attributes too
    with pytest.raises(ValidationFailed, match="annual_revenue must be a number"):
        coerce("annual_revenue", "a lot", "annual_revenue")


def test_coerce_all_prefixes_the_path_and_leaves_blanks_to_the_merge() -> None:
    assert coerce_all({"company_size": "50-200", "country": "", "industry": None}, "traits") == {
        "company_size": 50, "country": "", "industry": None}
    with pytest.raises(ValidationFailed) as caught:
        coerce_all({"company_size": "many"}, "traits")
    assert caught.value.field == "traits.company_size"


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_any_range_reads_as_its_lower_bound(low: int, high: int) -> None:
    assert whole_number(f"{low:,}-{high:,}") == low
    assert whole_number(f"{low}+") == low
