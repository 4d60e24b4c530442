"""Where the lead stands: disqualifiers, the stage ladder, transitions, and the route at SQL.

The ladder, at each event: disqualifiers first; a recycled lead waits out its cooldown; a lead (or
recycled lead) may be fast-tracked to SQL, else become an MQL; an MQL (or anyone, when the rule set
does not require MQL first) may become an SQL. Stages only move forward here; sales feedback
(``outcomes``) moves them otherwise.

Per lead, the engine keeps a plan (``rules.plans.LeadPlan``, in the rule set's ``caches.leads``): the
disqualifiers and stage rules with the lead's attribute and hand-raiser leaves already evaluated
(``rules.plans``). When every check of a plan fails and they can only turn true with a higher score,
the plan notes it (``QuietNote``), and later events skip the checks until the score rises or the
stage changes; while the points scored since cannot have lifted the score to the next threshold,
they skip it without computing the score. A rule set without a planner walks the same ladder with
every condition whole.

A plan is brought up to date (attributes changed, points scored) when the ladder runs, so not while
the lead is ``SETTLED``: recycling, the only way out, drops it (``outcomes``).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable

from chalicelib.engine.engagement import engagement_at, totals
from chalicelib.engine.explain import transition_reason
from chalicelib.engine.fit import compute_fit
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rules.conditions import Context
from chalicelib.rules.plans import LeadPlan, QuietNote, StagePlan
from chalicelib.state import HISTORY, LeadState, Transition

# Stages no disqualifier or stage rule moves a lead out of (only sales feedback does).
SETTLED = frozenset({"disqualified", "sql", "opportunity", "customer"})
# A quiet plan's checks are skipped while its score bound stays this far under the next threshold:
# the bound is exact but the score is summed in floating point, so a hair under is not under.
_BOUND_MARGIN = 1e-6


def context(state: LeadState, rs: CompiledRuleset, t: float) -> Context:
    """The view route conditions evaluate against at ``t`` (the engagement score computed if read)."""
    if state.fit_version != rs.version:
        compute_fit(state, rs)
    return Context(state.attributes, None, state.fit, rs.grade_for(state.fit), lambda: engagement_at(state, rs, t),
                   False, state.stage, state.fast_track)


def record_transition(state: LeadState, rs: CompiledRuleset, to: str, at: float, reason: str, *,
                      event_id: str | None = None, manual: bool = False) -> Transition:
    """Move the lead to ``to`` and record why; a lead becoming an SQL is routed and given its SLA."""
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


def climb(state: LeadState, rs: CompiledRuleset, event: Event, t: float, changed: set[str] | None,
          gained: float) -> list[Transition]:
    """The ladder at time ``t``, after ``event``, for a lead not in a ``SETTLED`` stage with its fit
    current. ``changed``: the attributes the event changed (the plan is refreshed from their leaves);
    ``gained``: the positive points it scored (counted toward a quiet plan's next threshold)."""
    held = rs.caches.leads.get(state.lead_id)
    if held is not None:
        if held.attrs is not state.attributes or held.rs is not rs:
            held = None  # another state of the lead (a copy, loaded again), or a copy of the rule set
        elif gained:
            quiet = held.quiet
            if quiet is not None and quiet.headroom is not None:
                quiet.headroom += gained
    hand_raiser = event.type in rs.hand_raisers
    if held is None or changed or held.fit != state.fit:
        held = _make_plan(state, rs, held, changed)
    engagement: float | None = None
    if held is None:  # no planner for these rules: every condition whole
        plan, grade = rs.whole_plan, rs.grade_for(state.fit)
    else:
        plan, grade = held.plans[hand_raiser], held.grade
        if plan.idle:  # no disqualifier and no stage rule can fire for this lead, whatever the event
            return []
        if plan.monotone:
            quiet = held.quiet
            if quiet is not None and quiet.plan is plan and quiet.stage == state.stage and quiet.fast_track == state.fast_track:
                headroom = quiet.headroom
                if headroom is not None and (headroom == 0.0 or quiet.score + headroom + _BOUND_MARGIN < quiet.bound):
                    return []
                if plan.reads_engagement:
                    engagement = engagement_at(state, rs, t)
                if engagement is None or engagement <= quiet.score or engagement < quiet.bound:
                    return []  # every check failed at this stage with a score as good: they fail again
            elif plan.reads_engagement:
                engagement = engagement_at(state, rs, t)
    ctx: Context | None = None
    event_id = event.event_id
    for rule, residual in plan.disqualifiers:
        if not isinstance(residual, bool):  # True: always holds; constant False ones are not in the plan
            if ctx is None:
                ctx = _context(state, rs, t, event, hand_raiser, grade, plan, engagement)
            if not residual(ctx):
                continue
        state.disqualified_reason = rule.reason
        return [record_transition(state, rs, "disqualified", t, f"disqualified: {rule.reason}", event_id=event_id)]
    if state.stage == "recycled" and state.recycled_at is not None and t - state.recycled_at < rs.recycle_cooldown:
        return []
    out: list[Transition] = []
    lead_like = state.stage in ("lead", "recycled")
    if lead_like and plan.fast_track is not False:
        if ctx is None:
            ctx = _context(state, rs, t, event, hand_raiser, grade, plan, engagement)
        if plan.fast_track is True or plan.fast_track(ctx):
            state.fast_track = ctx.fast_track = True
            reason = f"fast track: {transition_reason(rs, 'fast_track', ctx, event)}"
            out.append(record_transition(state, rs, "sql", t, reason, event_id=event_id))
            return out
    if lead_like and plan.mql is not False:
        if ctx is None:
            ctx = _context(state, rs, t, event, hand_raiser, grade, plan, engagement)
        if plan.mql is True or plan.mql(ctx):
            out.append(record_transition(state, rs, "mql", t, transition_reason(rs, "mql", ctx, event),
                                         event_id=event_id))
            ctx.stage = "mql"
    if (state.stage == "mql" or not rs.sql_requires_mql) and plan.sql is not False:
        if ctx is None:
            ctx = _context(state, rs, t, event, hand_raiser, grade, plan, engagement)
        if plan.sql is True or plan.sql(ctx):
            out.append(record_transition(state, rs, "sql", t, transition_reason(rs, "sql", ctx, event),
                                         event_id=event_id))
    if not out and plan.monotone and held is not None:
        _note_quiet(state, rs, held, plan, engagement)
    return out


def _note_quiet(state: LeadState, rs: CompiledRuleset, held: LeadPlan, plan: StagePlan,
                engagement: float | None) -> None:
    """Every check failed: note at what score they fail again (see ``QuietNote``)."""
    if engagement is None:  # the checks do not read the score: they fail whatever it is
        score = bound = math.inf
    else:
        bounds = plan.engagement_bounds
        above = bisect.bisect_left(bounds, engagement)  # the first bound >= the score
        score, bound = engagement, bounds[above] if above < len(bounds) else math.inf
    headroom = 0.0 if all(acc is None or acc[0] >= 0 for acc in totals(state, rs)) else None
    held.quiet = QuietNote(plan, state.stage, state.fast_track, score, bound, headroom)


def _make_plan(state: LeadState, rs: CompiledRuleset, held: LeadPlan | None,
               changed: set[str] | None) -> LeadPlan | None:
    """The lead's disqualifier and stage checks with their attribute and hand_raiser leaves evaluated,
    kept in ``rs.caches.leads``; from ``held``, only the leaves of the ``changed`` attributes (and of
    the fit, if it changed) are evaluated again. None when the rule set has no planner for its checks."""
    planner = rs.caches.planner
    if planner is None or not planner.matches(rs):
        return None
    grade = rs.grade_for(state.fit)
    ctx = Context(state.attributes, None, state.fit, grade)
    if held is not None and changed:
        static = planner.static_values(ctx, held.static, changed | {"$fit"} if held.fit != state.fit else changed)
    else:
        static = planner.static_values(ctx)
    made = LeadPlan(rs, state.attributes, state.fit, grade, static, planner.plans_for(static))
    rs.caches.leads.keep(state.lead_id, made)
    return made


def _context(
    state: LeadState, rs: CompiledRuleset, t: float, event: Event, hand_raiser: bool, grade: str,
    plan: StagePlan, engagement: float | None,
) -> Context:
    """``context`` for a check of the plan: the engagement score is computed at once when the plan's
    checks read it (they usually do), else only if a reason needs it."""
    score: float | Callable[[], float]
    if engagement is not None:
        score = engagement
    elif plan.reads_engagement:
        score = engagement_at(state, rs, t)
    else:
        score = lambda: engagement_at(state, rs, t)  # noqa: E731
    return Context(state.attributes, event, state.fit, grade, score, hand_raiser, state.stage, state.fast_track)

