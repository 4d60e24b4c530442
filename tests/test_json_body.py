"""The one JSON body loader (routes, forms, vendor webhooks, Slack's payload field)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import BadRequest
from chalicelib.json_body import load_json


def _refused(raw: bytes | str, field: str = "body") -> str:
    with pytest.raises(BadRequest) as caught:
        load_json(raw, field)
    assert caught.value.status == 400 and caught.value.details == {"field": field}
    return caught.value.message


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_what_json_writes_it_reads(value: Any) -> None:
    text = json.dumps(value)
    assert load_json(text.encode()) == value
    assert load_json(text) == value


def test_a_utf8_byte_order_mark_is_skipped() -> None:
    assert load_json(b"\xef\xbb\xbf{}") == {}
    assert load_json("\ufeff[1]") == [1]


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": NaN}', b"Infinity", b"[-Infinity]", b"1e999", b'{"x": -1e99999}'])
def test_non_finite_numbers_are_refused(raw: bytes) -> None:
    message = _refused(raw)
    assert message.startswith("the body is not valid JSON: ")
    assert "NaN" in message or "Infinity" in message or "out of range" in message


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "the body is empty; send JSON"),
    (b" \r\n\t", "the body is empty; send JSON"),
    (b"\xef\xbb\xbf", "the body is empty; send JSON"),
    (b"\xff\xfe{\x00}\x00", "the body is not UTF-8 encoded JSON"),
    (b"\xc3\x28", "the body is not UTF-8 encoded JSON"),
    (b'{"a": 1,}', "the body is not valid JSON at line 1 column 9"),
    (b"{\n  'a': 1}", "the body is not valid JSON at line 2 column 3"),
    (b"[" * 100_000 + b"]" * 100_000, "the body is not valid JSON: nested too deeply"),
    (b"9" * 5000, "the body is not valid JSON: a number is too long"),
])
def test_bad_bodies_are_400s_that_say_why(raw: bytes, message: str) -> None:
    assert _refused(raw) == message


def test_the_field_is_named() -> None:
    assert _refused("{not json", "payload") == "the payload is not valid JSON at line 1 column 2"
    assert _refused("", "payload.actions[0].value") == "the payload.actions[0].value is empty; send JSON"
