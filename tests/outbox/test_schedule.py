"""The retry schedule (pure): exponential from seconds, capped, for at least the retry window."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.outbox.pacing import slot_after
from chalicelib.outbox.schedule import Backoff


def test_the_default_schedule_doubles_from_five_seconds_to_fifteen_minutes() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 11)] == [5, 10, 20, 40, 80, 160, 320, 640, 900, 900]
    times = backoff.attempt_times()
    assert times[:9] == [0, 5, 15, 35, 75, 155, 315, 635, 1275]
    assert {b - a for a, b in pairwise(times[8:])} == {900}


def test_the_default_schedule_retries_for_at_least_a_day_then_parks() -> None:
    times = Backoff().attempt_times(start=1_000.0)
    assert times[-2] < 1_000.0 + 86_400 <= times[-1], "the first attempt after 24 h is the last"
    assert len(times) == 104
    assert Backoff().next_attempt(len(times), times[-1], retry_from=1_000.0) is None


def test_the_default_schedule_rides_out_a_two_minute_outage() -> None:
    times = Backoff().attempt_times(failing_for=120)
    assert times == [0, 5, 15, 35, 75, 155], "the sixth attempt, 35 s after Slack is back, succeeds"


def test_retry_after_replaces_the_backoff() -> None:
    assert Backoff().next_attempt(7, now=100.0, retry_from=0.0, retry_after=3.0) == 103.0
    assert Backoff().next_attempt(1, now=100.0, retry_from=0.0, retry_after=0.0) == 100.0


def test_settings_compress_the_schedule() -> None:
    s = Settings.from_env({"BATON_DELIVERY_BACKOFF_SECONDS": "0.2", "BATON_DELIVERY_BACKOFF_MAX_SECONDS": "1",
                           "BATON_DELIVERY_RETRY_SECONDS": "30", "BATON_SLACK_PACE_SECONDS": "0.5",
                           "BATON_DELIVERY_SWEEP_SECONDS": "0"})
    backoff = Backoff(s.delivery_backoff_seconds, s.delivery_backoff_max_seconds, s.delivery_retry_seconds)
    assert backoff.attempt_times()[:5] == pytest.approx([0, 0.2, 0.6, 1.4, 2.4])
    assert (s.slack_pace_seconds, s.delivery_sweep_seconds) == (0.5, 0.0)
    defaults = Settings.from_env({})
    assert (defaults.delivery_backoff_seconds, defaults.delivery_backoff_max_seconds,
            defaults.delivery_retry_seconds, defaults.slack_pace_seconds) == (5.0, 900.0, 86400.0, 1.0)


@pytest.mark.parametrize(("name", "value"), [("BATON_DELIVERY_BACKOFF_SECONDS", "soon"),
                                             ("BATON_DELIVERY_RETRY_SECONDS", "-1"),
                                             ("BATON_SLACK_PACE_SECONDS", "inf")])
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_a_first_backoff_above_the_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="at most the maximum"):
        Backoff(first_seconds=10, max_seconds=5)


@given(first=st.floats(0.01, 60), cap=st.floats(60, 3600), window=st.floats(1, 200_000),
       outage=st.floats(0, 100_000))
def test_every_schedule_retries_for_the_window_and_never_waits_more_than_the_cap(
    first: float, cap: float, window: float, outage: float
) -> None:
    backoff = Backoff(first, cap, window)
    times = backoff.attempt_times()
    gaps = [b - a for a, b in pairwise(times)]
    tolerance = 1e-6 * max(times)  # the times are sums of floats
    assert all(0 < gap <= cap + tolerance for gap in gaps)
    assert all(b >= a - tolerance for a, b in pairwise(gaps)), "never sooner than the last wait"
    assert times[-1] >= window and (len(times) == 1 or times[-2] < window)
    recovered = backoff.attempt_times(failing_for=outage)
    if outage < window:  # it is posted within one cap of Slack's recovery
        assert outage <= recovered[-1] <= outage + cap + tolerance


@given(st.lists(st.floats(0, 1_000), min_size=1, max_size=50), st.floats(0.1, 5))
def test_reserved_slots_are_an_interval_apart_and_never_in_the_past(asks: list[float], interval: float) -> None:
    next_free, slots = None, []
    for now in sorted(asks):
        slot, next_free = slot_after(next_free, now, interval)
        assert slot >= now
        slots.append(slot)
    assert all(b - a >= interval - 1e-9 for a, b in pairwise(slots))
