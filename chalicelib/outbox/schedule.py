"""When a Slack post that failed is tried again, and when the outbox gives up on it (pure).

Exponential backoff: ``first_seconds`` after the first failure, doubled after each one, never more
than ``max_seconds`` apart. An alert is retried for at least ``retry_seconds`` from when it was
committed (or redriven): the first failure at or after that moment parks it in the dead-letter
queue. A 429 waits exactly the ``Retry-After`` Slack asked for instead of the backoff.

No jitter: retries of one channel are spread by the channel's pace (``outbox.pacing``), which
also keeps a recovered Slack from receiving a burst; a deterministic schedule is one that
``Backoff.attempt_times`` can print and tests can check.

Defaults (``BATON_DELIVERY_BACKOFF_SECONDS=5``, ``..._MAX_SECONDS=900``,
``BATON_DELIVERY_RETRY_SECONDS=86400``): retries 5 s, 15 s, 35 s, 75 s, 155 s, 315 s, 635 s and
1,275 s after the first attempt, then every 15 minutes: 104 attempts, the last 24 h 6 min after the first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first_seconds: float = 5.0
    max_seconds: float = 900.0
    retry_seconds: float = 86400.0

    def __post_init__(self) -> None:
        if not 0 < self.first_seconds <= self.max_seconds:
            raise ValueError("the first backoff must be positive and at most the maximum backoff")
        if self.retry_seconds <= 0:
            raise ValueError("the retry window must be positive")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1 or more)."""
        exponent = min(max(failures, 1) - 1, 64)  # 2**64 * first is past any cap: no overflow
        return float(min(self.max_seconds, self.first_seconds * 2.0**exponent))

    def next_attempt(self, failures: int, now: float, retry_from: float, retry_after: float | None = None
                     ) -> float | None:
        """When to try again after a failure at ``now``; None once the retry window is over (park it)."""
        if now >= retry_from + self.retry_seconds:
            return None
        wait = retry_after if retry_after is not None else self.delay(failures)
        return now + max(0.0, wait)

    def attempt_times(self, start: float = 0.0, failing_for: float | None = None) -> list[float]:
        """Every attempt of a message first tried at ``start`` while Slack fails (each attempt
        taking no time), up to the one that parks it; or the attempts until ``start + failing_for``
        and the first after it (the one that succeeds)."""
        times, now, failures = [start], start, 0
        while failing_for is None or now < start + failing_for:
            failures += 1
            upcoming = self.next_attempt(failures, now, start)
            if upcoming is None:
                break
            times.append(now := upcoming)
        return times
