"""Replay history through the production engine, lead by lead.

``backtest(events, ruleset, outcomes)`` reads the history through the lead timeline
(``chalicelib.timeline``: routing, dedupe, anonymous-to-known adoption, the merge of events and
outcomes, replay), the same module the online service (``LeadService``) and the re-score read it
through, so a backtest and production agree lead for lead by construction. Events are taken in
time order (a stable sort); ``now`` for each event or outcome is its own time (the online clock,
when events are not from the future). An outcome for a lead that does not exist yet is skipped, as
the API would refuse it (counted in ``unmatched_outcomes``).

On top of the timeline's replay, each lead's report observes what the metrics need: peak scores at
the end of each burst of activity, the first-touch channel, the offers taken, the last outcome.

Leads are independent: each worker scans the history once (links and waiting visitors need the
whole stream), keeps every ``workers``-th lead's timeline and replays those. With ``workers > 1``
the workers are forked processes that inherit the history rather than receive it; the results, in
order of first appearance, do not depend on ``workers``.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from chalicelib.engine import engagement_at, new_lead
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset, compile_ruleset
from chalicelib.rules.model import FORM_EVENT_TYPES, RuleSet
from chalicelib.state import STAGE_ORDER, LeadState, Transition
from chalicelib.timeline import Outcome, Routed, Timeline, in_event_time, in_time_order, route, step

if TYPE_CHECKING:
    import pandas as pd

WEEK = 7 * 86400.0
PARALLEL_MIN_EVENTS = 20_000  # below this, forking costs more than it saves
# Events that carry an offer (a form id, an asset): what the per-offer metrics count.
OFFER_TYPES = frozenset({*FORM_EVENT_TYPES, "webinar_attended"})
NO_CHANNEL = ("(direct)", "(none)")
BURST_GAP = 1800.0  # seconds: events closer than this are one burst of activity for the peak score


@dataclass(slots=True)
class LeadReport:
    """One lead after the replay.

    ``mql_at`` / ``sql_at`` are the first times the *rules* moved the lead there (sales feedback such
    as "accepted" does not count: it reflects the old rules' history, not the rule set under test).
    ``max_score`` is the highest ``fit + engagement`` the lead had, evaluated where scores peak: at the
    end of each burst of activity (events under ``BURST_GAP`` apart) and before each sales outcome;
    ``max_engagement`` likewise for engagement alone. ``score_before_outcome`` is what ranking metrics
    (AUC) use: ``max_score`` as it stood just before the first sales outcome (all of it when there is
    none), and minus infinity for a lead the rules had disqualified by then (below every other).
    """

    lead_id: str
    email: str | None
    stage: str
    max_stage: str
    fit: float
    grade: str
    engagement: float
    max_engagement: float
    max_score: float
    score_before_outcome: float
    first_seen: float | None
    last_seen: float
    mql_at: float | None
    sql_at: float | None
    fast_track: bool
    disqualified_reason: str | None  # set when a disqualifier rule fired
    channel_source: str
    channel_medium: str
    offers: tuple[str, ...]
    outcome: str | None  # the last sales outcome applied
    outcome_at: float | None
    won: bool
    events: int  # events counted (redeliveries excluded)
    transitions: list[Transition] = field(default_factory=list)
    state: LeadState | None = None

    @property
    def channel(self) -> str:
        return f"{self.channel_source}/{self.channel_medium}"

    @property
    def reached_mql(self) -> bool:
        return self.mql_at is not None or self.sql_at is not None

    @property
    def reached_sql(self) -> bool:
        return self.sql_at is not None

    @property
    def reached_opportunity(self) -> bool:
        return STAGE_ORDER[self.max_stage] >= STAGE_ORDER["opportunity"]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Reports cross from the forked workers by pickle: as a flat tuple they pickle several times
        # faster than by the default slots state (a dict per object).
        return (LeadReport, _report_values(self))

    def to_row(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id, "email": self.email, "stage": self.stage, "max_stage": self.max_stage,
            "fit": self.fit, "grade": self.grade, "engagement": self.engagement,
            "max_engagement": self.max_engagement, "max_score": self.max_score,
            "score_before_outcome": self.score_before_outcome, "first_seen": self.first_seen,
            "last_seen": self.last_seen, "mql_at": self.mql_at, "sql_at": self.sql_at,
            "fast_track": self.fast_track, "disqualified_reason": self.disqualified_reason,
            "channel": self.channel, "channel_source": self.channel_source,
            "channel_medium": self.channel_medium, "offers": list(self.offers), "outcome": self.outcome,
            "outcome_at": self.outcome_at, "won": self.won, "events": self.events,
            "transitions": len(self.transitions),
        }


_report_values = attrgetter(*(f.name for f in fields(LeadReport)))  # every field, in order, as a tuple


@dataclass
class BacktestResult:
    leads: list[LeadReport]
    ruleset: CompiledRuleset
    events: int  # events read
    scored: int  # events counted for some lead
    duplicates: int
    pending_anonymous: int  # events of visitors never identified
    dropped: int  # events with neither email nor anonymous id
    outcomes_applied: int
    unmatched_outcomes: int
    start: float  # first event time (0 without events)
    end: float  # last event or outcome time
    seconds: float
    workers: int
    _index: dict[str, LeadReport] | None = field(default=None, repr=False)
    _timelines: dict[str, Timeline] | None = field(default=None, repr=False)
    _history: tuple[Sequence[Event], Sequence[Outcome]] | None = field(default=None, repr=False)

    def state(self, lead_id: str) -> LeadState | None:
        """A lead's final state: kept (``keep_states=True``) or replayed again, for that lead alone."""
        report = self.get(lead_id)
        if report is None:
            return None
        if report.state is None:
            if (self._timelines is None or lead_id not in self._timelines) and self._history is not None:
                with paused_gc():  # another worker replayed it: route the whole history here, once
                    self._timelines = route(*self._history).timelines
            if self._timelines is None or lead_id not in self._timelines:
                return None
            report.state = _replay_lead(lead_id, self._timelines[lead_id], self.ruleset, True).state
        return report.state

    @property
    def weeks(self) -> float:
        """The history's length in weeks (at least one day's worth, so rates stay finite)."""
        return max(self.end - self.start, 86400.0) / WEEK

    def get(self, lead_id: str) -> LeadReport | None:
        if self._index is None:
            self._index = {r.lead_id: r for r in self.leads}
        return self._index.get(lead_id)

    def __len__(self) -> int:
        return len(self.leads)

    def info(self) -> dict[str, Any]:
        return {
            "ruleset": self.ruleset.source.name, "ruleset_version": self.ruleset.version, "leads": len(self.leads),
            "events": self.events, "scored": self.scored, "duplicates": self.duplicates,
            "pending_anonymous": self.pending_anonymous, "dropped": self.dropped,
            "outcomes_applied": self.outcomes_applied, "unmatched_outcomes": self.unmatched_outcomes,
            "start": self.start, "end": self.end, "weeks": round(self.weeks, 3),
            "seconds": round(self.seconds, 3), "workers": self.workers,
        }

    def to_frame(self) -> "pd.DataFrame":
        """One row per lead (pandas is imported here, never at module import)."""
        import pandas as pd

        return pd.DataFrame([r.to_row() for r in self.leads])


@contextmanager
def paused_gc() -> Iterator[None]:
    """Collection off while millions of acyclic objects are built: each pass would only cost time.

    On the way out, what was built goes straight to the oldest generation (``freeze`` then
    ``unfreeze``: two list splices) instead of sitting in the youngest, where the next young
    collections would scan all of it before promoting it there anyway: 0.2 to 0.8 s after a
    million-event backtest, at whatever moment the next allocation came. Cyclic garbage among
    those objects is still found, by the next full collection. (Left alone when the process
    froze objects of its own: unfreezing would thaw them.)
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


# -- per-lead replay ---------------------------------------------------------------------------------


def _replay_lead(lead_id: str, timeline: Timeline, rs: CompiledRuleset, keep_state: bool) -> LeadReport:
    """The timeline's replay, one ``step`` per item, observed between steps (peaks before an item)."""
    state = new_lead(lead_id, timeline.email)
    transitions: list[Transition] = []
    scoring_types = rs.engagement_by_type
    offer_types = OFFER_TYPES
    offers: list[str] = []
    channel: tuple[str, str] | None = None
    channel_ts = math.inf
    max_engagement = max_score = -math.inf
    outcome: str | None = None
    outcome_at: float | None = None
    won = False
    outcomes = 0
    before_outcome: float | None = None
    pending = False  # the score may have risen since it was last evaluated
    last = -math.inf
    for item in in_event_time(timeline):
        if type(item) is not Event:  # an outcome (a type test is cheaper than isinstance, once per event)
            assert isinstance(item, Outcome)
            if pending:  # sales feedback may reset engagement: take the peak first
                engagement = engagement_at(state, rs, state.last_seen)
                max_engagement = max(max_engagement, engagement)
                max_score = max(max_score, engagement + state.fit)
                pending = False
            if before_outcome is None:
                before_outcome = _score_before(state, rs, max_score)
            found = step(state, item, rs)
            if found:
                transitions += found
            outcome, outcome_at = item.outcome, item.ts
            won = won or item.outcome == "won"
            outcomes += 1
            continue
        ts = item.ts
        if pending and ts - last > BURST_GAP:
            # The end of a burst of activity: the score peaks here, before it decays.
            engagement = engagement_at(state, rs, state.last_seen)
            if engagement > max_engagement:
                max_engagement = engagement
            if engagement + state.fit > max_score:
                max_score = engagement + state.fit
            pending = False
        last = ts
        found = step(state, item, rs)
        if found:
            transitions += found
        traits = item.traits
        if ts < channel_ts:  # the first touch (an adopted anonymous visit comes after later events)
            source = item.properties.get("utm_source") or (traits.get("utm_source") if traits else None)
            if source:
                channel_ts = ts
                medium = item.properties.get("utm_medium") or (traits.get("utm_medium") if traits else None)
                channel = (str(source), str(medium or "(none)"))
        typ = item.type
        if typ in offer_types:
            props = item.properties
            offer = props.get("offer") or props.get("form_id") or props.get("asset")
            if offer and offer not in offers:
                offers.append(str(offer))
        if not pending and (typ in scoring_types or traits):
            pending = True
    if pending:
        engagement = engagement_at(state, rs, state.last_seen)
        max_engagement = max(max_engagement, engagement)
        max_score = max(max_score, engagement + state.fit)
    count = len(timeline.items) - outcomes
    if before_outcome is None:
        before_outcome = _score_before(state, rs, max_score)
    return _report(state, rs, transitions, timeline.email, channel, offers, outcome, outcome_at, won, count,
                   max_engagement, max_score, before_outcome, keep_state)


def _score_before(state: LeadState, rs: CompiledRuleset, max_score: float) -> float:
    """The ranking score at this point: disqualified leads rank below every other."""
    if state.stage == "disqualified":
        return -math.inf
    return max_score if max_score > -math.inf else state.fit + engagement_at(state, rs, state.last_seen)


def _report(
    state: LeadState, rs: CompiledRuleset, transitions: list[Transition], email: str | None, channel: tuple[str, str] | None,
    offers: list[str], outcome: str | None, outcome_at: float | None, won: bool, count: int,
    max_engagement: float, max_score: float, score_before_outcome: float, keep_state: bool,
) -> LeadReport:
    mql_at = sql_at = None
    disqualified: str | None = None
    top = 0
    for t in transitions:
        rank = STAGE_ORDER[t.to_stage]
        if rank > top:
            top = rank
        if t.manual:
            continue
        if t.to_stage == "mql" and mql_at is None:
            mql_at = t.at
        elif t.to_stage == "sql" and sql_at is None:
            sql_at = t.at
        elif t.to_stage == "disqualified" and disqualified is None:
            disqualified = t.reason.removeprefix("disqualified: ")
    if channel is None:
        source = state.attributes.get("utm_source")
        channel = (str(source), str(state.attributes.get("utm_medium") or "(none)")) if source else NO_CHANNEL
    engagement = engagement_at(state, rs, state.last_seen)
    fit = state.fit
    if max_engagement == float("-inf"):
        max_engagement, max_score = engagement, engagement + fit
    return LeadReport(
        lead_id=state.lead_id, email=email, stage=state.stage, max_stage=_STAGE_AT[top], fit=fit,
        grade=rs.grade_for(fit), engagement=engagement, max_engagement=max_engagement, max_score=max_score,
        score_before_outcome=score_before_outcome, first_seen=state.first_seen, last_seen=state.last_seen,
        mql_at=mql_at, sql_at=sql_at,
        fast_track=any(t.fast_track for t in transitions), disqualified_reason=disqualified,
        channel_source=channel[0], channel_medium=channel[1], offers=tuple(offers), outcome=outcome,
        outcome_at=outcome_at, won=won, events=count, transitions=transitions,
        state=state if keep_state else None,
    )


_STAGE_AT = {0: "lead", 1: "mql", 2: "sql", 3: "opportunity", 4: "customer"}

# Set in the parent just before forking: children inherit the history instead of receiving it pickled.
_JOB: tuple[Sequence[Event], Sequence[Outcome], CompiledRuleset, int, bool, Routed | None] | None = None

_Share = tuple[list[LeadReport], Routed]


def _run_share(share: int) -> _Share:
    assert _JOB is not None
    events, outcomes, rs, workers, keep_state, whole = _JOB
    if whole is not None:  # routed already, every lead: this share's are every ``workers``-th
        timelines = whole.timelines
        return [_replay_lead(lead_id, timelines[lead_id], rs, keep_state)
                for lead_id in whole.order[share::workers]], whole
    routed = route(events, outcomes, share=share, workers=workers)
    if routed.unsorted:
        return [], routed
    timelines = routed.timelines
    reports = [_replay_lead(lead_id, timelines[lead_id], rs, keep_state) for lead_id in routed.order]
    return reports, routed


def _child_share(share: int) -> _Share:
    reports, routed = _run_share(share)
    # The parent needs neither the child's timelines nor its waiting visitors: they would only be pickled.
    if _JOB is not None and _JOB[5] is not None:
        return reports, Routed([], {}, {})  # (the parent has the whole routing)
    routed.timelines, routed.waiting = {}, {}
    return reports, routed


def _replay_all(
    events: Sequence[Event], outcomes: Sequence[Outcome], rs: CompiledRuleset, workers: int, keep_state: bool,
    whole: Routed | None = None,
) -> list[_Share]:
    global _JOB
    _JOB = (events, outcomes, rs, workers, keep_state, whole)
    try:
        if workers == 1:
            return [_run_share(0)]
        context = multiprocessing.get_context("fork")
        with context.Pool(workers - 1) as pool:
            others = pool.map_async(_child_share, range(1, workers), chunksize=1)
            mine = _run_share(0)
            return [mine, *others.get()]
    finally:
        _JOB = None


def _workers(requested: int, events: Sequence[Event]) -> int:
    if requested <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    # Leads are not counted yet; events are a fair proxy for whether forking pays.
    return requested if len(events) >= PARALLEL_MIN_EVENTS else 1


# -- entry point -------------------------------------------------------------------------------------


def _compiled(ruleset: RuleSet | CompiledRuleset, version: int | None) -> CompiledRuleset:
    if isinstance(ruleset, CompiledRuleset):
        return ruleset
    return compile_ruleset(ruleset, version)


def backtest(
    events: Iterable[Event],
    ruleset: RuleSet | CompiledRuleset,
    outcomes: Iterable[Outcome] | None = None,
    *,
    workers: int = 1,
    keep_states: bool = False,
    version: int | None = None,
    routed: Routed | None = None,
) -> BacktestResult:
    """Replay ``events`` (and sales ``outcomes``) through the engine under ``ruleset``.

    ``ruleset`` may be compiled already (e.g. ``RulesetService.active()``); a plain ``RuleSet`` is
    compiled as ``version``. Final ``LeadState``s are not kept unless ``keep_states`` (with workers
    they would travel between processes); ``result.state(lead_id)`` rebuilds one on demand.
    ``workers=2`` replays leads in two processes (fork); the result is the same as with one.
    ``routed``: these events (in time order) and outcomes routed already, whole (``route(events,
    outcomes)``, one share): replayed without routing them again (``baton rules suggest`` routed
    them to learn from).
    """
    started = time.perf_counter()
    rs = _compiled(ruleset, version)
    listed = events if isinstance(events, list) else list(events)
    ordered_outcomes = sorted(outcomes or (), key=attrgetter("ts"))
    n_workers = _workers(workers, listed)
    if routed is not None and (routed.unsorted or len(routed.order) != routed.leads):
        raise ValueError("routed must be a whole routing (one share) of events in time order")
    with paused_gc():
        shares = _replay_all(listed, ordered_outcomes, rs, n_workers, keep_states, routed)
        if shares[0][1].unsorted:  # (every share finds it, each after one comparison per event)
            listed = in_time_order(listed)
            shares = _replay_all(listed, ordered_outcomes, rs, n_workers, keep_states)
    stats = [routed] if routed is not None else [g for _, g in shares]  # (a whole routing counts every lead once)
    first = stats[0]
    reports: list[Any] = [None] * first.leads
    for share, (part, _) in enumerate(shares):
        reports[share::n_workers] = part
    end = max(listed[-1].ts if listed else 0.0, ordered_outcomes[-1].ts if ordered_outcomes else 0.0)
    return BacktestResult(
        leads=reports, ruleset=rs, events=len(listed), scored=sum(r.events for r in reports),
        duplicates=sum(g.duplicates for g in stats) + first.waiting_duplicates,
        pending_anonymous=first.pending_anonymous, dropped=first.dropped,
        outcomes_applied=sum(g.outcomes_applied for g in stats), unmatched_outcomes=first.unmatched_outcomes,
        start=listed[0].ts if listed else 0.0, end=end, seconds=time.perf_counter() - started, workers=n_workers,
        _timelines=first.timelines, _history=(listed, ordered_outcomes),
    )
