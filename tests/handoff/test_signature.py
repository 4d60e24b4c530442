"""Slack request signatures (v0), with Slack's published example as the vector."""

from __future__ import annotations

import time

import pytest

from chalicelib.errors import Unauthorized
from chalicelib.handoff.signature import compute_signature, verify_slack_request

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
EXPECTED = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
HEADERS = {"x-slack-request-timestamp": TIMESTAMP, "x-slack-signature": EXPECTED}


def _reason(headers: dict[str, str], body: bytes = BODY, now: float = 1531420618 + 30) -> str:
    with pytest.raises(Unauthorized) as caught:
        verify_slack_request(SECRET, headers, body, now)
    return caught.value.message


def test_slacks_documented_example_signature() -> None:
    assert compute_signature(SECRET, TIMESTAMP, BODY) == EXPECTED


@pytest.mark.parametrize("skew", [-299, -1, 0, 1, 299])
def test_accepts_the_example_near_its_timestamp(skew: int) -> None:
    verify_slack_request(SECRET, HEADERS, BODY, now=1531420618 + skew)


def test_the_example_is_stale_today() -> None:
    assert _reason(HEADERS, now=time.time()).startswith("stale timestamp in x-slack-request-timestamp header")


@pytest.mark.parametrize("skew", [301, 3600])
def test_older_than_five_minutes_is_stale(skew: int) -> None:
    assert _reason(HEADERS, now=1531420618 + skew) == (
        f"stale timestamp in x-slack-request-timestamp header ({skew} s old, limit 300 s)"
    )


def test_more_than_five_minutes_ahead_is_refused_too() -> None:
    assert _reason(HEADERS, now=1531420618 - 301) == (
        "timestamp in x-slack-request-timestamp header is 301 s in the future (limit 300 s)"
    )


def test_missing_headers_are_named() -> None:
    assert _reason({"x-slack-signature": EXPECTED}) == "missing x-slack-request-timestamp header"
    assert _reason({"x-slack-request-timestamp": TIMESTAMP}) == "missing x-slack-signature header"
    assert _reason({**HEADERS, "x-slack-signature": "  "}) == "missing x-slack-signature header"
    assert "missing" in _reason({})


BAD = "bad signature in x-slack-signature header"


def test_tampered_body_or_signature_is_a_bad_signature() -> None:
    assert _reason(HEADERS, body=BODY + b"&x=1") == BAD
    assert _reason({**HEADERS, "x-slack-signature": EXPECTED[:-1] + "0"}) == BAD
    assert _reason({**HEADERS, "x-slack-signature": "v0=\u00e9\u00e9"}) == BAD


def test_wrong_secret_is_a_bad_signature() -> None:
    with pytest.raises(Unauthorized, match=BAD):
        verify_slack_request("another-secret", HEADERS, BODY, 1531420618)


def test_malformed_timestamp_and_version() -> None:
    malformed = "malformed timestamp in x-slack-request-timestamp header"
    assert _reason({**HEADERS, "x-slack-request-timestamp": "15314e6"}) == malformed
    assert _reason({**HEADERS, "x-slack-request-timestamp": "-1531420618"}) == malformed
    assert _reason({**HEADERS, "x-slack-signature": "v1=" + EXPECTED[3:]}) == (
        "unsupported signature version in x-slack-signature header"
    )


def test_every_failure_names_its_header_in_details() -> None:
    for headers in ({}, {"x-slack-request-timestamp": TIMESTAMP}, {**HEADERS, "x-slack-signature": "v1=x"},
                    {**HEADERS, "x-slack-request-timestamp": "x"}, {**HEADERS, "x-slack-signature": "v0=0"}):
        with pytest.raises(Unauthorized) as caught:
            verify_slack_request(SECRET, headers, BODY, 1531420618)
        assert caught.value.details["header"] in caught.value.message


def test_an_empty_secret_never_verifies() -> None:
    with pytest.raises(Unauthorized, match="not configured"):
        verify_slack_request("", HEADERS, BODY, 1531420618)


def test_signs_the_exact_bytes_even_when_not_utf8() -> None:
    body = b"payload=\xff\xfe"
    headers = {
        "x-slack-request-timestamp": TIMESTAMP,
        "x-slack-signature": compute_signature(SECRET, TIMESTAMP, body),
    }
    verify_slack_request(SECRET, headers, body, 1531420618)
