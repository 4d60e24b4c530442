"""Bounded retries for every Slack call of a notifier, through slack_sdk's own retry hooks.

429 waits exactly what Slack asked (``Retry-After``, no jitter); any 5xx, a refused, reset or
dropped connection and a timeout back off exponentially; anything else fails at once. At most
``max_retries`` retries in all. The wait goes through an injectable ``sleep``, so tests never
really sleep.

``slack_sdk`` is imported only when a notifier builds its client (see ``notifiers``), never
when this module is imported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import RemoteDisconnected
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

if TYPE_CHECKING:  # for type checkers only: importing slack_sdk is what we avoid at runtime
    from slack_sdk.http_retry.handler import RetryHandler
    from slack_sdk.http_retry.request import HttpRequest
    from slack_sdk.http_retry.response import HttpResponse
    from slack_sdk.http_retry.state import RetryState

CONNECTION_ERRORS = (URLError, ConnectionError, RemoteDisconnected, TimeoutError)


@dataclass
class RetryPolicy:
    """Bounded retries shared by every Slack call of a notifier.

    ``max_wait_seconds`` caps how long one ``Retry-After`` is waited for in-process: a Lambda
    must not sleep for minutes, so a longer one fails fast with ``details["retry_after"]`` and
    the queue redelivers later. ``waits`` records the requested waits, in order (the last 100).
    """

    max_retries: int = 3
    backoff_seconds: float = 0.5
    max_wait_seconds: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    waits: list[float] = field(default_factory=list)

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) > 100:  # a warm Lambda keeps its notifier: keep the record bounded
            del self.waits[:-100]
        self.sleep(seconds)

    def backoff(self, attempt: int) -> float:
        return float(self.backoff_seconds * (2**attempt))

    def retries(self, status: int | None, headers: Mapping[str, Any], error: Exception | None) -> bool:
        """Whether a failed call (its HTTP status, if any, or the error raised) is tried again."""
        if status == 429:
            return retry_after_seconds(headers) <= self.max_wait_seconds
        if status is not None and 500 <= status <= 599:
            return True
        # An HTTPError (a URLError) with a status is a 4xx answer, not a connection problem.
        return isinstance(error, CONNECTION_ERRORS) and not (isinstance(error, URLError) and status is not None)

    def delay(self, attempt: int, status: int | None, headers: Mapping[str, Any]) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        return retry_after_seconds(headers) if status == 429 else self.backoff(attempt)

    def handlers(self) -> list[RetryHandler]:
        return [_handler_class()(self)]


def retry_after_seconds(headers: Mapping[str, Any]) -> float:
    """``Retry-After`` in seconds (header name in any case, value a str or a list of str)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            if isinstance(value, (list, tuple)):
                value = value[0] if value else ""
            try:
                seconds = float(str(value).strip())
            except ValueError:  # an HTTP-date: Slack does not send those, wait a second
                return 1.0
            return max(0.0, seconds) if math.isfinite(seconds) else 1.0
    return 1.0


_HANDLER: Any = None


def _handler_class() -> Any:
    """slack_sdk's retry hook, deciding and waiting through a :class:`RetryPolicy` (built on first use)."""
    global _HANDLER
    if _HANDLER is not None:
        return _HANDLER
    from slack_sdk.http_retry.handler import RetryHandler

    class PolicyRetryHandler(RetryHandler):
        def __init__(self, policy: RetryPolicy) -> None:
            super().__init__(max_retry_count=policy.max_retries)
            self.policy = policy

        def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                       error: Exception | None = None) -> bool:
            return self.policy.retries(*_answer(response), error)

        def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                     response: HttpResponse | None = None, error: Exception | None = None) -> None:
            state.next_attempt_requested = True
            self.policy.wait(self.policy.delay(state.current_attempt, *_answer(response)))
            state.increment_current_attempt()

    _HANDLER = PolicyRetryHandler
    return _HANDLER


def _answer(response: HttpResponse | None) -> tuple[int | None, Mapping[str, Any]]:
    return (None, {}) if response is None else (response.status_code, response.headers)
