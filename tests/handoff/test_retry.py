"""The retry policy's decisions, without Slack (the notifier tests drive it through a fake Slack)."""

from __future__ import annotations

from email.message import Message
from http.client import RemoteDisconnected
from urllib.error import HTTPError, URLError

import pytest

from chalicelib.handoff.retry import RetryPolicy, retry_after_seconds


@pytest.fixture
def policy() -> RetryPolicy:
    return RetryPolicy(max_retries=3, backoff_seconds=0.5, max_wait_seconds=30.0, sleep=lambda s: None)


def test_rate_limits_are_retried_only_when_the_wait_is_short(policy: RetryPolicy) -> None:
    assert policy.retries(429, {"Retry-After": "30"}, None)
    assert not policy.retries(429, {"retry-after": ["31"]}, None)
    assert policy.delay(2, 429, {"Retry-After": "7"}) == 7.0  # what Slack asked, not the backoff


@pytest.mark.parametrize("status", [500, 502, 503, 599])
def test_server_errors_back_off(policy: RetryPolicy, status: int) -> None:
    assert policy.retries(status, {}, None)
    assert [policy.delay(n, status, {}) for n in range(3)] == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_client_errors_are_final(policy: RetryPolicy, status: int) -> None:
    assert not policy.retries(status, {}, None)
    assert not policy.retries(status, {}, HTTPError("https://x", status, "no", Message(), None))


@pytest.mark.parametrize("error", [URLError("refused"), ConnectionResetError(), RemoteDisconnected("closed"), TimeoutError()])
def test_connection_errors_back_off(policy: RetryPolicy, error: Exception) -> None:
    assert policy.retries(None, {}, error)
    assert policy.delay(0, None, {}) == 0.5


def test_other_errors_are_final(policy: RetryPolicy) -> None:
    assert not policy.retries(None, {}, ValueError("bad payload"))
    assert not policy.retries(None, {}, None)


@pytest.mark.parametrize(("headers", "seconds"), [
    ({}, 1.0), ({"Retry-After": "2.5"}, 2.5), ({"RETRY-AFTER": ["4"]}, 4.0), ({"Retry-After": []}, 1.0),
    ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 1.0), ({"Retry-After": "-3"}, 0.0), ({"Retry-After": "inf"}, 1.0),
])
def test_retry_after_seconds(headers: dict[str, object], seconds: float) -> None:
    assert retry_after_seconds(headers) == seconds
