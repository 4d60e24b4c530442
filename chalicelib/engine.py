"""The scoring engine: pure and deterministic, the same code online and in the backtest.

``apply_event(state, event, ruleset, now)`` updates ``state`` in place and returns the stage
transitions it caused; ``score`` is the copying variant. No I/O, no clock reads, no boto3.

Engagement is a sum of per-rule accumulators that decay with a half-life. Decay is linear, so an
accumulator can be stored as (value, reference time) and brought forward lazily: each event
touches only the rules it matches, whatever the lead's history, and arrival order does not
change the decayed sum. Accumulators with the same half-life also add up into one running total,
so the score itself costs one term per half-life (stage rules read it on every event).

Caps and frequency rules count hits in arrival order (the backtest replays in time order; the
online path sorts each batch by time): a late event never pushes any rolling window over its cap,
but which of several capped events counted can depend on arrival order.

Per lead, the engine keeps a plan (``_LeadPlan``, derived, never stored): the disqualifiers and
stage rules with the lead's attribute leaves already evaluated (``rules.plans``). When every check
of a plan fails and they can only turn true with a higher score, the plan notes it ("quiet"), and
later events skip the checks until the score rises or the stage changes. While the points scored
since cannot have lifted the score to the next threshold, they skip it without computing the score.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable
from typing import Any

from chalicelib.attributes import LEAD_FIELDS
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledEngagement, CompiledRuleset
from chalicelib.rules.conditions import Context
from chalicelib.rules.plans import Answers, StagePlan
from chalicelib.state import HISTORY, KEY_EVENTS, RECENT_IDS, STAGE_ORDER, LeadState, Transition

LN2 = math.log(2)
# A quiet plan's checks are skipped while its score bound stays this far under the next threshold:
# the bound is exact but the score is summed in floating point, so a hair under is not under.
_BOUND_MARGIN = 1e-6
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
    """Give the lead its address; the fit (which reads the email domain) is recomputed at the next event."""
    _set_email(state, email)
    state.fit_version = -1


def _set_email(state: LeadState, email: str) -> None:
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


def _merge(state: LeadState, traits: dict[str, Any] | Any) -> set[str]:
    """Fold attribute updates in (blank values never erase); returns the attributes that changed
    ("custom" for custom fields). The caller refits from them and refreshes the stage plan: every
    change to the attributes goes through here or through ``set_email``."""
    changed: set[str] = set()
    attrs = state.attributes
    for key, raw in traits.items():
        if raw is None or raw == "" or key in ("email", "email_domain"):
            continue
        if key in LEAD_FIELDS:
            if attrs.get(key) == raw:  # unchanged (what is stored is already clean, so raw is too)
                continue
            value = _clean(key, raw)
            if attrs.get(key) != value:
                attrs[key] = value
                changed.add(key)
        else:
            value = _clean(key, raw)
            custom = attrs.setdefault("custom", {})
            if custom.get(key) != value and (key in custom or len(custom) < MAX_CUSTOM):
                custom[key] = value
                changed.add("custom")
    if state.email is None and isinstance(traits.get("email"), str) and "@" in traits["email"]:
        _set_email(state, traits["email"].strip().lower())
        changed.update(("email", "email_domain"))  # (the caller refits from what changed)
    return changed


def compute_fit(state: LeadState, rs: CompiledRuleset) -> None:
    _refit(state, rs, None)
    state.fit_version = rs.version
    state.stage_plan = None


def _refit(state: LeadState, rs: CompiledRuleset, changed: set[str] | None) -> None:
    """The fit after ``changed`` attributes changed (None: any). (The caller refreshes the stage plan.)"""
    ctx = Context(state.attributes)
    memo = rs.fit_memo
    if memo is not None and memo.rules is rs.fit:  # (the memo stands for these rules only)
        hits = memo.hits(ctx)
    else:  # rules reading none of the changed attributes keep their answer
        held = set(state.fit_rules) if changed is not None else set()
        hits = [
            rule for rule in rs.fit
            if (rule.test(ctx) if changed is None or rule.reads is None or not rule.reads.isdisjoint(changed)
                else rule.id in held)
        ]
    state.fit = float(sum(rule.points for rule in hits))
    state.fit_rules = [rule.id for rule in hits]


class _LeadPlan:
    """A lead's stage plan and what it was made from; dropped by copies and pickling (rebuilt on use)."""

    __slots__ = ("attrs", "fit", "grade", "headroom", "plans", "quiet", "rs", "stale", "static")

    def __init__(
        self, rs: CompiledRuleset, attrs: dict[str, Any], fit: float, grade: str, static: Answers,
        plans: tuple[StagePlan, StagePlan],
    ) -> None:
        self.rs = rs
        self.attrs = attrs
        self.fit = fit
        self.grade = grade
        self.static = static  # the attribute leaves' values the plans were made from
        self.plans = plans  # for an event that is not, and that is, a hand-raiser
        # Attributes changed since ("$fit": the fit): the plan is refreshed, re-evaluating their leaves only.
        self.stale: set[str] | None = None
        # (plan, stage, fast track, engagement, bound): a monotone plan's checks all failed there, so
        # they fail while the score is no higher or below the bound (the next engagement leaf value)
        self.quiet: tuple[StagePlan, str, bool, float, float] | None = None
        # The positive points scored since ``quiet`` was noted, or None when some running total was
        # negative then. With every total >= 0 at the note, each total can only decay toward zero, so
        # the score is at most quiet's score + headroom (negative points only lower it): while that is
        # under quiet's bound the checks fail again, and the score need not be computed.
        self.headroom: float | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        return None

    def __copy__(self) -> None:
        return None

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (type(None), ())


def _make_plan(state: LeadState, rs: CompiledRuleset) -> _LeadPlan | None:
    """The lead's disqualifier and stage checks with their attribute and hand_raiser leaves evaluated.

    Valid while the rule set, the attributes (the same dict, unchanged: every change in the engine
    marks the plan stale or drops it) and the fit stay the same. A stale plan is refreshed from the
    leaves of what changed. None when the rule set has no planner for its checks.
    """
    planner = rs.planner
    if planner is None or not planner.matches(rs):
        return None
    grade = rs.grade_for(state.fit)
    ctx = Context(state.attributes, None, state.fit, grade)
    held = state.stage_plan
    if held is not None and held.stale is not None and held.rs is rs and held.attrs is state.attributes:
        static = planner.static_values(ctx, held.static, held.stale | ({"$fit"} if held.fit != state.fit else set()))
    else:
        static = planner.static_values(ctx)
    state.stage_plan = _LeadPlan(rs, state.attributes, state.fit, grade, static, planner.plans_for(static))
    return state.stage_plan


def _plan_context(
    state: LeadState, rs: CompiledRuleset, t: float, event: Event | None, hand_raiser: bool, plan: StagePlan,
    engagement: float | None,
) -> Context:
    """``context`` for a planned check: the grade comes with the plan, and the engagement score is
    computed at once when the plan's checks read it (they usually do), else only if a reason needs it."""
    score: float | Callable[[], float]
    if engagement is not None:
        score = engagement
    elif plan.reads_engagement:
        score = engagement_at(state, rs, t)
    else:
        score = lambda: engagement_at(state, rs, t)  # noqa: E731
    return Context(state.attributes, event, state.fit, state.stage_plan.grade, score, hand_raiser, state.stage,
                   state.fast_track)


def _decayed(acc: list[float], half_life: float | None, t: float) -> float:
    value, ref = acc[0], acc[1]
    if half_life is None or t == ref:
        return value
    return value * math.exp(-(t - ref) * LN2 / half_life)


def _add(acc: list[float] | None, points: float, ts: float, half_life: float | None) -> list[float]:
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


def _totals(state: LeadState, rs: CompiledRuleset) -> list[list[float] | None]:
    """The lead's running totals per half-life; made afresh from the rules' accumulators when they
    were kept under another grouping (another rule set, or none yet). Reading never stores them, so
    a lead's state depends only on what was applied to it, not on who looked at its score."""
    if state.eng_basis == rs.decay_basis:
        return state.eng_total
    totals: list[list[float] | None] = [None] * len(rs.half_lives)
    rules = rs.engagement_by_id
    for rid, acc in state.eng.items():
        rule = rules.get(rid)
        if rule is not None:
            totals[rule.group] = _add(totals[rule.group], acc[0], acc[1], rule.half_life)
    return totals


def engagement_parts(state: LeadState, rs: CompiledRuleset, t: float) -> dict[str, float]:
    """Each rule's current (decayed) contribution; rules the rule set no longer has count nothing."""
    rules = rs.engagement_by_id
    return {rid: _decayed(acc, rules[rid].half_life, t) for rid, acc in state.eng.items() if rid in rules}


def engagement_at(state: LeadState, rs: CompiledRuleset, t: float) -> float:
    """The engagement score at ``t``: the engagement parts summed (to rounding), one term per half-life."""
    total: float = 0
    totals = state.eng_total if state.eng_basis == rs.decay_basis else _totals(state, rs)
    for acc, rate in zip(totals, rs.decay_rates, strict=True):
        if acc is not None:
            value, ref = acc[0], acc[1]
            total += value if rate == 0.0 or t == ref else value * math.exp((ref - t) * rate)
    return total


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
    window = rule.cap_window
    if not hits or ts >= hits[-1]:  # in order (the usual case): only the window ending at ts can be full
        if len(hits) - bisect.bisect_right(hits, ts - window) >= limit:
            return True
        hits.append(ts)
    elif _window_full(hits, ts, window, limit):
        return True
    else:
        bisect.insort(hits, ts)
    horizon = state.clock - 2 * window  # hits older than this can share no window with new ones
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
    hand_raiser = event is not None and event.type in rs.hand_raisers
    held = state.stage_plan
    if (held is None or held.rs is not rs or held.attrs is not state.attributes or held.fit != state.fit
            or held.stale is not None):
        held = _make_plan(state, rs)
        if held is None:
            return _advance_full(state, rs, event, t)
    plan = held.plans[hand_raiser]
    if plan.idle:  # no disqualifier and no stage rule can fire for this lead, whatever the event
        return []
    engagement: float | None = None
    if plan.monotone:
        quiet = held.quiet
        if quiet is not None and quiet[0] is plan and quiet[1] == state.stage and quiet[2] == state.fast_track:
            headroom = held.headroom
            if headroom is not None and (headroom == 0.0 or quiet[3] + headroom + _BOUND_MARGIN < quiet[4]):
                return []
            if plan.reads_engagement:
                engagement = engagement_at(state, rs, t)
            if engagement is None or engagement <= quiet[3] or engagement < quiet[4]:
                return []  # every check failed at this stage with a score as good: they fail again
        elif plan.reads_engagement:
            engagement = engagement_at(state, rs, t)
    ctx: Context | None = None
    event_id = event.event_id if event is not None else None
    for rule, residual in plan.disqualifiers:
        if event is None and rule.needs_event:
            continue
        if not isinstance(residual, bool):  # True: always holds; constant False ones are not in the plan
            if ctx is None:
                ctx = _plan_context(state, rs, t, event, hand_raiser, plan, engagement)
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
            ctx = _plan_context(state, rs, t, event, hand_raiser, plan, engagement)
        if plan.fast_track is True or plan.fast_track(ctx):
            state.fast_track = ctx.fast_track = True
            out.append(record_transition(state, rs, "sql", t, f"fast track: {_why(ctx, event)}", event_id=event_id))
            return out
    if lead_like and plan.mql is not False:
        if ctx is None:
            ctx = _plan_context(state, rs, t, event, hand_raiser, plan, engagement)
        if plan.mql is True or plan.mql(ctx):
            out.append(record_transition(state, rs, "mql", t, _why(ctx, event), event_id=event_id))
            ctx.stage = "mql"
    if (state.stage == "mql" or not rs.sql_requires_mql) and plan.sql is not False:
        if ctx is None:
            ctx = _plan_context(state, rs, t, event, hand_raiser, plan, engagement)
        if plan.sql is True or plan.sql(ctx):
            out.append(record_transition(state, rs, "sql", t, _why(ctx, event), event_id=event_id))
    if not out and plan.monotone:
        if engagement is None:  # the checks do not read the score: they fail whatever it is
            held.quiet = (plan, state.stage, state.fast_track, math.inf, math.inf)
        else:
            bounds = plan.engagement_bounds
            above = bisect.bisect_left(bounds, engagement)  # the first bound >= the score
            held.quiet = (plan, state.stage, state.fast_track, engagement,
                          bounds[above] if above < len(bounds) else math.inf)
        held.headroom = 0.0 if all(acc is None or acc[0] >= 0 for acc in _totals(state, rs)) else None
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
    recent[event_id] = None  # (bounded as state.RECENT_IDS says)
    if len(recent) > 2 * RECENT_IDS:
        state.recent_ids = dict.fromkeys(list(recent)[-RECENT_IDS:])
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
    if state.fit_version != version:
        if event.traits:
            _merge(state, event.traits)
        compute_fit(state, rs)
    elif event.traits:
        changed = _merge(state, event.traits)
        if changed:
            _refit(state, rs, changed)
            held = state.stage_plan
            if held is not None:
                held.stale = changed if held.stale is None else held.stale | changed
    state.ruleset_version = version
    kind = event.type
    rules = rs.engagement_by_type.get(kind)
    if rules:
        memo = rs.event_rules.get(kind)
        # The memo stands for these rules only (a rule set copied with other rules has none).
        candidates = memo.candidates(event) if memo is not None and memo.rules is rules else _plain(rules)
        ctx: Context | None = None
        totals: list[list[float] | None] | None = None
        gained = 0.0  # positive points scored (a quiet plan's headroom)
        for rule, test in candidates:
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
            # The award: the rule's accumulator and its half-life's running total.
            if totals is None:
                if state.eng_basis == rs.decay_basis:
                    totals = state.eng_total
                else:
                    totals = state.eng_total = _totals(state, rs)
                    state.eng_basis = rs.decay_basis
            points, half_life = float(rule.points), rule.half_life
            if points > 0:
                gained += points
            totals[rule.group] = _add(totals[rule.group], points, ts, half_life)
            state.eng[rule.id] = _add(state.eng.get(rule.id), points, ts, half_life)
            if points >= 10 or points <= -10:
                _key_event(state, event, ts, rule.label)
        if gained and state.stage_plan is not None and state.stage_plan.headroom is not None:
            state.stage_plan.headroom += gained
    elif kind in rs.hand_raisers:
        _key_event(state, event, ts, kind)
    if state.stage in _TERMINAL_FOR_RULES:  # (advance's first test, here: a quarter of events stop there)
        return []
    return advance(state, rs, event, state.clock)


def _plain(rules: tuple[CompiledEngagement, ...]) -> list[tuple[CompiledEngagement, Any]]:
    return [(rule, rule.test) for rule in rules]


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
        state.eng_total, state.eng_basis = [None] * len(rs.half_lives), rs.decay_basis
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
    """Each rule's current contribution. The engagement parts sum to the engagement score (to rounding)."""
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
        "engagement": {"score": engagement_at(state, rs, t), "rules": engagement_rules, "at": t},
        "disqualified": state.disqualified_reason,
        "ruleset_version": rs.version,
    }
