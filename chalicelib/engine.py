"""The scoring engine: pure and deterministic, the same code online and in the backtest.

``apply_event(state, event, ruleset, now)`` updates ``state`` in place and returns the stage
transitions it caused; ``score`` is the copying variant. No I/O, no clock reads, no boto3.

Engagement is a sum of per-rule accumulators that decay with a half-life. Decay is linear, so an
accumulator can be stored as (value, reference time) and brought forward lazily: each event
touches only the rules it matches, whatever the lead's history, and arrival order does not
change the decayed sum. Caps and frequency rules count hits in arrival order (the backtest replays
in time order; the online path sorts each batch by time): a late event never pushes any rolling
window over its cap, but which of several capped events counted can depend on arrival order.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from typing import Any

from chalicelib.events import Event
from chalicelib.rules.compile import CompiledEngagement, CompiledRuleset, Context, StagePlan
from chalicelib.rules.model import LEAD_FIELDS
from chalicelib.state import HISTORY, KEY_EVENTS, RECENT_IDS, STAGE_ORDER, LeadState, Transition

LN2 = math.log(2)
FUTURE_SKEW = 300.0  # seconds: a sender's clock may run a little fast; beyond that we clamp
MAX_CUSTOM = 100  # custom attributes kept per lead (bounded state)
MAX_TEXT = 500
_NUMERIC = frozenset({"company_size", "annual_revenue"})
_TERMINAL_FOR_RULES = frozenset({"disqualified", "sql", "opportunity", "customer"})
OUTCOMES = ("accepted", "rejected", "recycled", "opportunity", "won", "lost", "disqualified")


def new_lead(lead_id: str, email: str | None = None) -> LeadState:
    state = LeadState(lead_id=lead_id)
    if email:
        set_email(state, email)
    return state


def set_email(state: LeadState, email: str) -> None:
    state.email = email
    state.attributes["email"] = email
    state.attributes["email_domain"] = email.rpartition("@")[2]
    state.stage_plan = None


def _clean(key: str, value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()[:MAX_TEXT]
        if key in _NUMERIC:
            try:
                number = float(value.replace(",", ""))
                return int(number) if number.is_integer() else number
            except ValueError:
                return value
    return value


def merge_traits(state: LeadState, traits: dict[str, Any] | Any) -> bool:
    """Fold attribute updates in; returns whether anything changed. Blank values never erase."""
    changed = False
    attrs = state.attributes
    for key, raw in traits.items():
        if raw is None or raw == "" or key in ("email", "email_domain"):
            continue
        value = _clean(key, raw)
        if key in LEAD_FIELDS:
            if attrs.get(key) != value:
                attrs[key] = value
                changed = True
        else:
            custom = attrs.setdefault("custom", {})
            if custom.get(key) != value and (key in custom or len(custom) < MAX_CUSTOM):
                custom[key] = value
                changed = True
    if state.email is None and isinstance(traits.get("email"), str) and "@" in traits["email"]:
        set_email(state, traits["email"].strip().lower())
        changed = True
    if changed:
        state.stage_plan = None  # any change to the attributes must drop the plan
    return changed


def compute_fit(state: LeadState, rs: CompiledRuleset) -> None:
    ctx = Context(state.attributes)
    hits = [rule for rule in rs.fit if rule.test(ctx)]
    state.fit = float(sum(rule.points for rule in hits))
    state.fit_rules = [rule.id for rule in hits]
    state.fit_version = rs.version
    state.stage_plan = None


class _LeadPlan:
    """A lead's stage plan and what it was made from; dropped by copies and pickling (rebuilt on use)."""

    __slots__ = ("attrs", "fit", "plans", "rs")

    def __init__(
        self, rs: CompiledRuleset, attrs: dict[str, Any], fit: float, plans: tuple[StagePlan, StagePlan]
    ) -> None:
        self.rs = rs
        self.attrs = attrs
        self.fit = fit
        self.plans = plans  # for an event that is not, and that is, a hand-raiser

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        return None

    def __copy__(self) -> None:
        return None

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (type(None), ())


def _plan(state: LeadState, rs: CompiledRuleset, hand_raiser: bool) -> StagePlan | None:
    """The lead's disqualifier and stage checks with their attribute and hand_raiser leaves evaluated.

    Valid while the rule set, the attributes (the same dict, unchanged: every change in the engine
    drops the plan) and the fit stay the same. None when the rule set has no planner for its checks.
    """
    held = state.stage_plan
    if held is not None and held.rs is rs and held.attrs is state.attributes and held.fit == state.fit:
        return held.plans[hand_raiser]
    planner = rs.planner
    if planner is None or not planner.matches(rs):
        return None
    plans = planner.plans_for(Context(state.attributes, None, state.fit, rs.grade_for(state.fit)))
    state.stage_plan = _LeadPlan(rs, state.attributes, state.fit, plans)
    return plans[hand_raiser]


def _decayed(acc: list[float], half_life: float | None, t: float) -> float:
    value, ref = acc[0], acc[1]
    if half_life is None or t == ref:
        return value
    return value * math.exp(-(t - ref) * LN2 / half_life)


def engagement_parts(state: LeadState, rs: CompiledRuleset, t: float) -> dict[str, float]:
    """Each rule's current (decayed) contribution; rules the rule set no longer has count nothing."""
    rules = rs.engagement_by_id
    return {rid: _decayed(acc, rules[rid].half_life, t) for rid, acc in state.eng.items() if rid in rules}


def engagement_at(state: LeadState, rs: CompiledRuleset, t: float) -> float:
    # engagement_parts summed, without building the dict: same terms, same order, same float result.
    rules = rs.engagement_by_id
    total: float = 0
    for rid, acc in state.eng.items():
        rule = rules.get(rid)
        if rule is not None:
            value, ref, half_life = acc[0], acc[1], rule.half_life
            total += value if half_life is None or t == ref else value * math.exp(-(t - ref) * LN2 / half_life)
    return total


def _award(state: LeadState, rule: CompiledEngagement, ts: float) -> None:
    acc = state.eng.get(rule.id)
    points = float(rule.points)
    if acc is None:
        state.eng[rule.id] = [points, ts]
    elif rule.half_life is None:
        acc[0] += points
    elif ts >= acc[1]:
        acc[0] = acc[0] * math.exp(-(ts - acc[1]) * LN2 / rule.half_life) + points
        acc[1] = ts
    else:  # a late event: add its points as they stand at the accumulator's reference time
        acc[0] += points * math.exp(-(acc[1] - ts) * LN2 / rule.half_life)


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


def _capped(state: LeadState, rule: CompiledEngagement, ts: float) -> bool:
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
    if _window_full(hits, ts, rule.cap_window, limit):
        return True
    bisect.insort(hits, ts)
    horizon = state.clock - 2 * rule.cap_window  # hits older than this can share no window with new ones
    if hits[0] <= horizon:
        del hits[: bisect.bisect_right(hits, horizon)]
    return False


def _frequency_reached(state: LeadState, rule: CompiledEngagement, ts: float) -> bool:
    """Count a match; True when ``count`` matches since the last award fall within the window."""
    assert rule.freq_count is not None and rule.freq_window is not None
    record = state.freq.get(rule.id)
    if record is None:
        record = state.freq[rule.id] = [-math.inf]
    last_award = record[0]
    if ts <= last_award:
        return False
    window, count = rule.freq_window, rule.freq_count
    matches = sorted([*record[1:], ts])
    matches = [m for m in matches if m > ts - window]
    # ``count`` matches must fit in one window; a late event can sit beside later ones, so check spans.
    if any(matches[i + count - 1] - matches[i] < window for i in range(len(matches) - count + 1)):
        record[:] = [matches[-1]]
        return True
    record[:] = [last_award, *matches[-(count - 1):]]
    return False


def record_transition(state: LeadState, rs: CompiledRuleset, to: str, at: float, reason: str, *,
                event_id: str | None = None, manual: bool = False) -> Transition:
    seq = state.transitions_count
    state.transitions_count += 1
    digest = hashlib.sha256(f"{state.lead_id}:{seq}:{to}".encode()).hexdigest()[:24]
    transition = Transition(
        id=f"t_{digest}", lead_id=state.lead_id, from_stage=state.stage, to_stage=to, at=at, reason=reason,
        ruleset_version=rs.version, event_id=event_id, fast_track=state.fast_track and to == "sql", manual=manual,
    )
    state.stage = to
    state.stage_history.append(
        {"stage": to, "at": at, "reason": reason, "transition_id": transition.id, "ruleset_version": rs.version}
    )
    if len(state.stage_history) > HISTORY:
        del state.stage_history[0]
    if to == "sql":
        state.handed_off_at = at
        route = rs.route_for(context(state, rs, at))
        state.route = route.name
        state.sla_deadline = at + route.sla_hours * 3600
        state.sla_reminders = 0
    return transition


def context(state: LeadState, rs: CompiledRuleset, t: float, event: Event | None = None) -> Context:
    """The view conditions evaluate against (stage rules, routing)."""
    if state.fit_version != rs.version:
        compute_fit(state, rs)
    return Context(
        state.attributes, event, state.fit, rs.grade_for(state.fit), lambda: engagement_at(state, rs, t),
        event is not None and event.type in rs.hand_raisers, state.stage, state.fast_track,
    )


def advance(state: LeadState, rs: CompiledRuleset, event: Event | None, t: float) -> list[Transition]:
    """Apply disqualifiers and stage rules at time ``t``. Stages only move forward."""
    if state.stage in _TERMINAL_FOR_RULES:
        return []
    if state.fit_version != rs.version:
        compute_fit(state, rs)
    plan = _plan(state, rs, event is not None and event.type in rs.hand_raisers)
    if plan is None:
        return _advance_full(state, rs, event, t)
    if plan.idle:  # no disqualifier and no stage rule can fire for this lead, whatever the event
        return []
    ctx: Context | None = None
    event_id = event.event_id if event is not None else None
    for rule, residual in plan.disqualifiers:
        if event is None and rule.needs_event:
            continue
        if not isinstance(residual, bool):  # True: always holds; constant False ones are not in the plan
            if ctx is None:
                ctx = context(state, rs, t, event)
            if not residual(ctx):
                continue
        state.disqualified_reason = rule.reason
        return [record_transition(state, rs, "disqualified", t, f"disqualified: {rule.reason}", event_id=event_id)]
    if state.stage == "recycled" and state.recycled_at is not None and t - state.recycled_at < rs.recycle_cooldown:
        return []
    out: list[Transition] = []
    lead_like = state.stage in ("lead", "recycled")
    if lead_like and rs.fast_track is not None and plan.fast_track is not False:
        if ctx is None:
            ctx = context(state, rs, t, event)
        if plan.fast_track is True or plan.fast_track(ctx):
            state.fast_track = ctx.fast_track = True
            out.append(record_transition(state, rs, "sql", t, f"fast track: {_why(ctx, event)}", event_id=event_id))
            return out
    if lead_like and plan.mql is not False:
        if ctx is None:
            ctx = context(state, rs, t, event)
        if plan.mql is True or plan.mql(ctx):
            out.append(record_transition(state, rs, "mql", t, _why(ctx, event), event_id=event_id))
            ctx.stage = "mql"
    if (state.stage == "mql" or not rs.sql_requires_mql) and plan.sql is not False:
        if ctx is None:
            ctx = context(state, rs, t, event)
        if plan.sql is True or plan.sql(ctx):
            out.append(record_transition(state, rs, "sql", t, _why(ctx, event), event_id=event_id))
    return out


def _advance_full(state: LeadState, rs: CompiledRuleset, event: Event | None, t: float) -> list[Transition]:
    """``advance`` evaluating every condition whole (a rule set compiled without a planner)."""
    ctx = context(state, rs, t, event)
    event_id = event.event_id if event is not None else None
    for rule in rs.disqualifiers:
        if (event is not None or not rule.needs_event) and rule.test(ctx):
            state.disqualified_reason = rule.reason
            return [record_transition(state, rs, "disqualified", t, f"disqualified: {rule.reason}", event_id=event_id)]
    if state.stage == "recycled" and state.recycled_at is not None and t - state.recycled_at < rs.recycle_cooldown:
        return []
    out: list[Transition] = []
    if state.stage in ("lead", "recycled") and rs.fast_track is not None and rs.fast_track(ctx):
        state.fast_track = ctx.fast_track = True
        out.append(record_transition(state, rs, "sql", t, f"fast track: {_why(ctx, event)}", event_id=event_id))
        return out
    if state.stage in ("lead", "recycled") and rs.mql(ctx):
        out.append(record_transition(state, rs, "mql", t, _why(ctx, event), event_id=event_id))
        ctx.stage = "mql"
    if (state.stage == "mql" or not rs.sql_requires_mql) and rs.sql(ctx):
        out.append(record_transition(state, rs, "sql", t, _why(ctx, event), event_id=event_id))
    return out


def _why(ctx: Context, event: Event | None) -> str:
    """A transition's reason; built only when there is a transition (it is the costly part of a check)."""
    if ctx.hand_raiser and event is not None:
        return f"hand-raiser: {event.type}"
    return f"fit {ctx.grade} ({ctx.fit:g}), engagement {ctx.engagement:.1f}"


def apply_event(state: LeadState, event: Event, rs: CompiledRuleset, now: float) -> list[Transition]:
    """Score one event into ``state`` (in place). A redelivered event changes nothing."""
    event_id = event.event_id
    recent = state.recent_ids
    if event_id in recent:
        return []
    recent[event_id] = None  # LeadState.remember, inlined (it runs for every event)
    if len(recent) > RECENT_IDS:
        del recent[next(iter(recent))]
    state.event_count += 1
    ts = event.ts
    if ts > now + FUTURE_SKEW:
        ts = now + FUTURE_SKEW
    first_seen = state.first_seen
    if first_seen is None or ts < first_seen:
        state.first_seen = ts
    if ts > state.clock:
        state.clock = ts
    version = rs.version
    if (event.traits and merge_traits(state, event.traits)) or state.fit_version != version:
        compute_fit(state, rs)
    state.ruleset_version = version
    rules = rs.engagement_by_type.get(event.type)
    if rules:
        ctx: Context | None = None
        for rule in rules:
            test = rule.test
            if test is not None:
                if ctx is None:
                    ctx = Context(state.attributes, event)
                if not test(ctx):
                    continue
            # A frequency bonus may be capped too ("at most once a month"): the cap counts awards.
            if rule.freq_count is not None and not _frequency_reached(state, rule, ts):
                continue
            if rule.cap_count is not None and _capped(state, rule, ts):
                continue
            _award(state, rule, ts)
            if abs(rule.points) >= 10:
                _key_event(state, event, ts, rule.label)
    elif event.type in rs.hand_raisers:
        _key_event(state, event, ts, event.type)
    return advance(state, rs, event, state.clock)


def _key_event(state: LeadState, event: Event, ts: float, label: str) -> None:
    detail = event.properties.get("offer") or event.properties.get("form_id") or event.properties.get("path")
    state.key_events.append({"type": event.type, "at": ts, "label": label, "detail": detail})
    if len(state.key_events) > KEY_EVENTS:
        del state.key_events[0]


def score(state: LeadState, event: Event, rs: CompiledRuleset, now: float) -> tuple[LeadState, list[Transition]]:
    """The functional form: ``(state, event, ruleset, now) -> (state', transitions)``."""
    updated = state.copy()
    return updated, apply_event(updated, event, rs, now)


def apply_outcome(
    state: LeadState, outcome: str, rs: CompiledRuleset, now: float, reason: str | None = None
) -> list[Transition]:
    """Sales feedback. Recycling re-arms qualification: engagement starts again from zero."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    why = f"sales: {outcome}" + (f" ({reason})" if reason else "")
    if outcome == "accepted":
        if state.accepted_at is None:
            state.accepted_at = now
        if STAGE_ORDER[state.stage] < STAGE_ORDER["sql"] and state.stage != "disqualified":
            return [record_transition(state, rs, "sql", now, why, manual=True)]
        return []
    if outcome in ("rejected", "recycled", "lost"):
        if state.stage == "recycled":
            return []
        state.eng.clear()
        state.caps.clear()
        state.freq.clear()
        state.recycled_at = now
        state.fast_track = False
        state.handed_off_at = state.sla_deadline = None
        state.accepted_at = None
        state.disqualified_reason = None
        return [record_transition(state, rs, "recycled", now, why, manual=True)]
    if outcome == "disqualified":
        if state.stage == "disqualified":
            return []
        state.disqualified_reason = reason or "disqualified by sales"
        return [record_transition(state, rs, "disqualified", now, why, manual=True)]
    target = "opportunity" if outcome == "opportunity" else "customer"
    if STAGE_ORDER[state.stage] >= STAGE_ORDER[target]:
        return []
    if state.accepted_at is None:
        state.accepted_at = now
    return [record_transition(state, rs, target, now, why, manual=True)]


def explain(state: LeadState, rs: CompiledRuleset, now: float) -> dict[str, Any]:
    """Each rule's current contribution. The engagement parts sum exactly to the engagement score."""
    t = max(now, state.clock)
    ctx = Context(state.attributes)
    hits = [r for r in rs.fit if r.test(ctx)]
    fit_rules: list[dict[str, Any]] = [{"rule": r.id, "label": r.label, "points": r.points} for r in hits]
    fit = float(sum(r.points for r in hits))
    parts = engagement_parts(state, rs, t)
    engagement_rules: list[dict[str, Any]] = [
        {"rule": rid, "label": rs.engagement_by_id[rid].label, "points": value}
        for rid, value in sorted(parts.items(), key=lambda item: -abs(item[1]))
    ]
    return {
        "fit": {"score": fit, "grade": rs.grade_for(fit), "rules": fit_rules},
        "engagement": {"score": sum(parts.values()), "rules": engagement_rules, "at": t},
        "disqualified": state.disqualified_reason,
        "ruleset_version": rs.version,
    }
