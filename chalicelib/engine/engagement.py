"""What the lead did: engagement points per rule, decayed, capped, and frequency bonuses.

Engagement is a sum of per-rule accumulators that decay exponentially with a half-life. Decay
scales a value by a factor that depends only on the time elapsed, so an accumulator can be stored as
(value, reference time) and brought forward lazily: each event touches only the rules it matches,
whatever the lead's history, and arrival order does not change the decayed sum.
Accumulators with the same half-life also add up into one running total, so the score itself costs
one term per half-life (stage rules read it on every event).

An amount rule awards its points per amount of an event property, in proportion; its ``max_points``
caps the points themselves (kept as (time, points) pairs), ``max_count`` the events that scored.
Like hit times, awards are kept while they lie within two windows of the lead's newest event: an
event arriving later than that is capped against what is kept.

Caps and frequency rules count hits in the order events are applied: event time, because the live
service replays a lead's history when an event arrives late (``timeline.replay_late``), as the
backtest and the re-score do. (A late event applied on top would never push a rolling window over
its cap, but which of several capped events counted would depend on arrival order.)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

from chalicelib.attributes import non_negative_number
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledEngagement, CompiledRuleset
from chalicelib.state import KEY_EVENTS, LeadState

LN2 = math.log(2)


def _decayed(acc: list[float], half_life: float | None, t: float) -> float:
    value, ref = acc[0], acc[1]
    if half_life is None or t == ref:
        return value
    return value * math.exp(-(t - ref) * LN2 / half_life)


def accumulate(acc: list[float] | None, points: float, ts: float, half_life: float | None) -> list[float]:
    """Add ``points`` scored at ``ts`` to an accumulator [value at ref, ref], decaying lazily."""
    if acc is None:
        return [points, ts]
    if half_life is None:
        acc[0] += points
    elif ts >= acc[1]:
        acc[0] = acc[0] * math.exp(-(ts - acc[1]) * LN2 / half_life) + points
        acc[1] = ts
    else:  # a late event: add its points as they stand at the accumulator's reference time
        acc[0] += points * math.exp(-(acc[1] - ts) * LN2 / half_life)
    return acc


def totals(state: LeadState, rs: CompiledRuleset) -> list[list[float] | None]:
    """The lead's running totals per half-life; made afresh from the rules' accumulators when they
    were kept under another grouping (another rule set, or none yet). Reading never stores them, so
    a lead's state depends only on what was applied to it, not on who looked at its score."""
    if state.totals_basis == rs.decay_basis:
        return state.engagement_totals
    made: list[list[float] | None] = [None] * len(rs.half_lives)
    rules = rs.engagement_by_id
    for rid, acc in state.engagement_by_rule.items():
        rule = rules.get(rid)
        if rule is not None:
            made[rule.group] = accumulate(made[rule.group], acc[0], acc[1], rule.half_life)
    return made


def engagement_parts(state: LeadState, rs: CompiledRuleset, t: float) -> dict[str, float]:
    """Each rule's current (decayed) contribution; rules the rule set no longer has count nothing."""
    rules = rs.engagement_by_id
    return {rid: _decayed(acc, rules[rid].half_life, t) for rid, acc in state.engagement_by_rule.items() if rid in rules}


def engagement_at(state: LeadState, rs: CompiledRuleset, t: float) -> float:
    """The engagement score at ``t``: the engagement parts summed (to rounding), one term per half-life."""
    total: float = 0
    running = state.engagement_totals if state.totals_basis == rs.decay_basis else totals(state, rs)
    for acc, rate in zip(running, rs.decay_rates, strict=True):
        if acc is not None:
            value, ref = acc[0], acc[1]
            total += value if rate == 0.0 or t == ref else value * math.exp((ref - t) * rate)
    return total


def key_event(state: LeadState, event: Event, ts: float, label: str) -> None:
    """Remember the event among the lead's last few that counted most (shown to sales)."""
    detail = event.properties.get("offer") or event.properties.get("form_id") or event.properties.get("path")
    state.key_events.append({"type": event.type, "at": ts, "label": label, "detail": detail})
    if len(state.key_events) > KEY_EVENTS:
        del state.key_events[0]


def reset(state: LeadState, rs: CompiledRuleset) -> None:
    """Engagement starts again from zero: accumulators, running totals, caps and frequency counts."""
    state.engagement_by_rule.clear()
    state.engagement_totals, state.totals_basis = [None] * len(rs.half_lives), rs.decay_basis
    state.caps.clear()
    state.frequency_matches.clear()


def _window_full(hits: list[float], ts: float, window: float, limit: int) -> bool:
    """Would counting a hit at ``ts`` put more than ``limit`` hits in some window of that length?

    Checks every window containing ``ts`` (not only the one ending there), so a late event cannot
    push an earlier window over its cap.
    """
    lo = bisect.bisect_right(hits, ts - window)
    if not hits or ts >= hits[-1]:  # in order (the usual case): only the window ending at ts can be full
        return len(hits) - lo >= limit
    hi = bisect.bisect_left(hits, ts + window)
    near = hits[lo:hi]
    if len(near) < limit:
        return False
    for start in [h for h in near if h <= ts] + [ts]:
        inside = bisect.bisect_left(near, start + window) - bisect.bisect_left(near, start)
        if inside >= limit:
            return True
    return False


def capped(state: LeadState, rule: CompiledEngagement, ts: float) -> bool:
    """Record the hit against the rule's cap; True when the cap refuses it."""
    limit = rule.cap_count
    if limit is None:
        return False
    hits = state.caps.get(rule.id)
    if rule.cap_window is None:  # a lifetime cap needs only a counter
        if hits is None:
            state.caps[rule.id] = [1.0]
            return False
        if hits[0] >= limit:
            return True
        hits[0] += 1
        return False
    if hits is None:
        state.caps[rule.id] = [ts]
        return False
    window = rule.cap_window
    if not hits or ts >= hits[-1]:  # in order (the usual case): only the window ending at ts can be full
        if len(hits) - bisect.bisect_right(hits, ts - window) >= limit:
            return True
        hits.append(ts)
    elif _window_full(hits, ts, window, limit):
        return True
    else:
        bisect.insort(hits, ts)
    horizon = state.last_seen - 2 * window  # hits older than this can share no window with new ones
    if hits[0] <= horizon:
        del hits[: bisect.bisect_right(hits, horizon)]
    return False


def frequency_reached(state: LeadState, rule: CompiledEngagement, ts: float) -> bool:
    """Count a match; True when ``count`` matches since the last award fall within the window."""
    assert rule.freq_count is not None and rule.freq_window is not None
    record = state.frequency_matches.get(rule.id)
    if record is None:
        record = state.frequency_matches[rule.id] = [-math.inf]
    last_award = record[0]
    if ts <= last_award:
        return False
    window, count = rule.freq_window, rule.freq_count
    if ts >= record[-1]:  # in order (the usual case): every match kept is in (ts - window, ts]
        since = ts - window
        recent = [m for m in record[1:] if m > since] if len(record) > 1 and record[1] <= since else record[1:]
        if len(recent) + 1 >= count:
            record[:] = [ts]
            return True
        record[:] = [last_award, *recent, ts]  # (fewer than ``count``: all are kept)
        return False
    matches = sorted([*record[1:], ts])
    matches = [m for m in matches if m > ts - window]
    # ``count`` matches must fit in one window; a late event can sit beside later ones, so check spans.
    if any(matches[i + count - 1] - matches[i] < window for i in range(len(matches) - count + 1)):
        record[:] = [matches[-1]]
        return True
    record[:] = [last_award, *matches[-(count - 1):]]
    return False


def amount_of(properties: Mapping[str, Any], path: tuple[str, ...]) -> float | None:
    """The event's amount at ``path`` as a number (``612``, ``"612"``, ``"1,200.5"``), or None."""
    value: Any = properties
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return non_negative_number(value) if value is not None else None


def amount_award(state: LeadState, rule: CompiledEngagement, event: Event, ts: float) -> float:
    """An amount rule's points for this event: ``points`` per ``amount_per`` of its amount, trimmed to
    what ``max_points`` leaves in every window holding ``ts``; 0.0 when nothing is awarded (no
    amount, or a cap reached), and then no cap counts the event."""
    assert rule.amount is not None
    amount = amount_of(event.properties, rule.amount)
    if not amount:
        return 0.0
    magnitude = abs(rule.points) * amount / rule.amount_per
    limit = rule.cap_points
    if limit is not None:
        room = limit - _points_in_windows(state.caps.get(rule.id + _POINTS), ts, rule.cap_window)
        if room <= _EPSILON:
            return 0.0
        magnitude = min(magnitude, room)
    if rule.cap_count is not None and capped(state, rule, ts):
        return 0.0
    if limit is not None:
        _record_points(state, rule, ts, magnitude)
    return magnitude if rule.points > 0 else -magnitude


_POINTS = ":points"  # state.caps key suffix of an amount rule's points (rule ids never hold ':')
_EPSILON = 1e-9  # points: what float sums leave below a cap is no room


def _points_in_windows(record: list[float] | None, ts: float, window: float | None) -> float:
    """The most points already awarded in one window holding ``ts`` (lifetime: all of them).

    ``record`` is ``[total]`` for a lifetime cap, else ``[t0, p0, t1, p1, ...]`` in time order; a
    window is ``(end - window, end]``, and those holding ``ts`` end in ``[ts, ts + window)``.
    """
    if not record:
        return 0.0
    if window is None:
        return record[0]
    times = record[0::2]
    if ts >= times[-1]:  # in order (the usual case): only the window ending at ts
        start = bisect.bisect_right(times, ts - window)
        return math.fsum(record[2 * start + 1::2])
    ends = [ts, *(t for t in times if ts < t < ts + window)]
    best = 0.0
    for end in ends:
        lo, hi = bisect.bisect_right(times, end - window), bisect.bisect_right(times, end)
        best = max(best, math.fsum(record[2 * lo + 1:2 * hi:2]))
    return best


def _record_points(state: LeadState, rule: CompiledEngagement, ts: float, points: float) -> None:
    key = rule.id + _POINTS
    record = state.caps.get(key)
    if rule.cap_window is None:
        state.caps[key] = [(record[0] if record else 0.0) + points]
        return
    if record is None:
        state.caps[key] = [ts, points]
        return
    times = record[0::2]
    at = bisect.bisect_right(times, ts)
    record[2 * at:2 * at] = [ts, points]
    horizon = state.last_seen - 2 * rule.cap_window  # awards older than this share no window with new ones
    if record[0] <= horizon:
        del record[: 2 * bisect.bisect_right(record[0::2], horizon)]
