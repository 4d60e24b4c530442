"""One event through the engine: dedupe, time, attributes and fit (``fit``), the engagement rules it
scores for (accumulators, caps and frequency from ``engagement``), then the stage ladder (``stages``).

The award loop is spelled out here rather than called: it runs for nearly every event, and a call
costs about 2 % of an event's work.
"""

from __future__ import annotations

from typing import Any

from chalicelib.engine.engagement import (
    accumulate,
    amount_award,
    capped,
    frequency_reached,
    key_event,
    totals,
)
from chalicelib.engine.explain import event_label
from chalicelib.engine.fit import compute_fit, merge_traits, refit
from chalicelib.engine.stages import SETTLED, climb
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledEngagement, CompiledRuleset
from chalicelib.rules.conditions import Context
from chalicelib.state import RECENT_IDS, SHORT_ID, LeadState, Transition

FUTURE_SKEW = 300.0  # seconds: a sender's clock may run a little fast; beyond that we clamp
_RECENT_MAX = 2 * RECENT_IDS


def apply_event(state: LeadState, event: Event, rs: CompiledRuleset, now: float) -> list[Transition]:
    """Score one event into ``state`` (in place); returns the stage transitions it caused. A
    redelivered event changes nothing."""
    event_id = event.event_id
    recent = state.recent_ids
    if event_id in recent:
        return []
    recent[event_id] = None  # (bounded as state.RECENT_IDS says, by count and by bytes)
    if state.recent_bytes or len(event_id) > SHORT_ID:
        state.count_recent(event_id)
    elif len(recent) > _RECENT_MAX:
        state.trim_recent()
    state.event_count += 1
    ts = event.ts
    if ts > now + FUTURE_SKEW:
        ts = now + FUTURE_SKEW
    first_seen = state.first_seen
    if first_seen is None or ts < first_seen:
        state.first_seen = ts
    if ts > state.last_seen:
        state.last_seen = ts
    version = rs.version
    changed: set[str] | None = None
    if state.fit_version != version:
        if event.traits:
            merge_traits(state, event.traits, event.source, ts)
        compute_fit(state, rs)  # (which drops the lead's plan)
    elif event.traits:
        changed = merge_traits(state, event.traits, event.source, ts)
        if changed:
            refit(state, rs, changed)
    state.ruleset_version = version
    kind = event.type
    rules = rs.engagement_by_type.get(kind)
    gained = 0.0  # positive points scored (a quiet plan's headroom)
    noted = False  # the event is among the lead's key events
    if rules:
        memo = rs.caches.events.get(kind)
        # The memo stands for these rules only (a rule set copied with other rules has none).
        candidates = memo.candidates(event) if memo is not None and memo.rules is rules else _plain(rules)
        ctx: Context | None = None
        running: list[list[float] | None] | None = None
        for rule, test in candidates:
            if test is not None:
                if ctx is None:
                    ctx = Context(state.attributes, event)
                if not test(ctx):
                    continue
            if rule.gated:
                if rule.amount is not None:
                    points = amount_award(state, rule, event, ts)  # (its caps included)
                    if not points:
                        continue
                else:
                    # A frequency bonus may be capped too ("at most once a month"): the cap counts awards.
                    if not frequency_reached(state, rule, ts):
                        continue
                    if rule.cap_count is not None and capped(state, rule, ts):
                        continue
                    points = float(rule.points)
            else:
                if rule.cap_count is not None and capped(state, rule, ts):
                    continue
                points = float(rule.points)
            # The award: the rule's accumulator and its half-life's running total.
            if running is None:
                if state.totals_basis == rs.decay_basis:
                    running = state.engagement_totals
                else:
                    running = state.engagement_totals = totals(state, rs)
                    state.totals_basis = rs.decay_basis
            half_life = rule.half_life
            if points > 0:
                gained += points
            running[rule.group] = accumulate(running[rule.group], points, ts, half_life)
            by_rule = state.engagement_by_rule
            by_rule[rule.id] = accumulate(by_rule.get(rule.id), points, ts, half_life)
            # A frequency bonus is not an activity: the event it counted is one (its own rule, or
            # the transition it tips below).
            if (points >= 10 or points <= -10) and rule.freq_count is None:
                key_event(state, event, ts, rule.label)
                noted = True
    elif kind in rs.hand_raisers:
        key_event(state, event, ts, event_label(rs, event))
        noted = True
    if state.stage in SETTLED:  # (a quarter of events stop here)
        return []
    transitions = climb(state, rs, event, state.last_seen, changed, gained)
    if transitions and not noted:  # the event that tipped the lead over is one sales must see
        key_event(state, event, ts, event_label(rs, event))
    return transitions


def _plain(rules: tuple[CompiledEngagement, ...]) -> list[tuple[CompiledEngagement, Any]]:
    return [(rule, rule.test) for rule in rules]


def score(state: LeadState, event: Event, rs: CompiledRuleset, now: float) -> tuple[LeadState, list[Transition]]:
    """The functional form: ``(state, event, ruleset, now) -> (state', transitions)``."""
    updated = state.copy()
    return updated, apply_event(updated, event, rs, now)
