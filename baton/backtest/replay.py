"""Replay history through the production engine, lead by lead.

``backtest(events, ruleset, outcomes)`` gives each lead exactly the sequence of ``apply_event`` /
``apply_outcome`` calls the online service (``LeadService``) would have made had the same events
arrived one by one in time order, so a backtest and production agree lead for lead:

- events are taken in time order (a stable sort: events at the same instant keep their order);
- a lead is keyed by ``lead_id_for(email)``; an event without an email that names a ``lead_id``
  (imported history of leads known by a CRM key alone) goes to that lead; an event with none of
  email, lead id and anonymous id is dropped;
- an anonymous event waits (deduplicated by event id) until an identify event (email + anonymous
  id) links its visitor to a lead; the identify then applies the waiting events, oldest first (ties
  by event id, as the store returns them), and itself last. Once linked, the visitor's events go
  straight to the lead. A visitor already linked to another lead keeps that link (a shared
  computer): the identify counts for its own email only. Visitors never identified count nowhere;
- an event id a lead has already counted is a redelivery and changes nothing (the online store
  remembers every id, not only the state's recent ones);
- ``now`` for each event is the event's own time (the online clock, when events are not from the
  future); for an outcome it is the outcome's time;
- outcomes (sales feedback) are interleaved by time; at the same instant events come first. An
  outcome for a lead that does not exist yet is skipped, as the API would refuse it (counted in
  ``unmatched_outcomes``).

Leads are independent: each worker scans the history once (links and waiting visitors need the
whole stream), groups every ``workers``-th lead's events and outcomes into a timeline, and replays
those timelines. With ``workers > 1`` the workers are forked processes that inherit the history
rather than receive it; the results, in order of first appearance, do not depend on ``workers``.
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

from chalicelib.engine import apply_event, apply_outcome, engagement_at, new_lead
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset, compile_ruleset
from chalicelib.rules.model import FORM_EVENT_TYPES, RuleSet
from chalicelib.state import STAGE_ORDER, LeadState, Transition, lead_id_for

if TYPE_CHECKING:
    import pandas as pd

WEEK = 7 * 86400.0
PARALLEL_MIN_EVENTS = 20_000  # below this, forking costs more than it saves
# Events that carry an offer (a form id, an asset): what the per-offer metrics count.
OFFER_TYPES = frozenset({*FORM_EVENT_TYPES, "webinar_attended"})
NO_CHANNEL = ("(direct)", "(none)")
BURST_GAP = 1800.0  # seconds: events closer than this are one burst of activity for the peak score


@dataclass(frozen=True, slots=True)
class Outcome:
    """Sales feedback at a point in time, for a lead named by id or by email."""

    outcome: str  # one of chalicelib.engine.OUTCOMES
    ts: float
    lead_id: str | None = None
    email: str | None = None
    reason: str | None = None

    @property
    def lead_key(self) -> str:
        if self.lead_id:
            return self.lead_id
        if self.email:
            return lead_id_for(self.email)
        raise ValueError("an outcome needs a lead_id or an email")

    def to_dict(self) -> dict[str, Any]:
        return {"lead_id": self.lead_key, "email": self.email, "outcome": self.outcome, "ts": self.ts,
                "reason": self.reason}


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
    _lanes: dict[str, _Lane] | None = field(default=None, repr=False)
    _history: tuple[Sequence[Event], Sequence[Outcome]] | None = field(default=None, repr=False)

    def state(self, lead_id: str) -> LeadState | None:
        """A lead's final state: kept (``keep_states=True``) or replayed again, for that lead alone."""
        report = self.get(lead_id)
        if report is None:
            return None
        if report.state is None:
            if (self._lanes is None or lead_id not in self._lanes) and self._history is not None:
                with paused_gc():  # another worker replayed it: group the whole history here, once
                    self._lanes = _group(*self._history).lanes
            if self._lanes is None or lead_id not in self._lanes:
                return None
            report.state = _replay_lead(lead_id, self._lanes[lead_id], self.ruleset, True).state
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


# -- grouping ----------------------------------------------------------------------------------------


class _Lane:
    """One lead's timeline: events and outcomes in the order the online service would apply them."""

    __slots__ = ("email", "items", "lead_id")

    def __init__(self, lead_id: str, email: str | None) -> None:
        self.lead_id = lead_id
        self.email = email
        # Keyed by event id (one dict is both the order and the dedupe memory); outcomes by a tuple.
        self.items: dict[Any, Event | Outcome] = {}


# Stands for a lead another worker replays: its events are recognised and skipped.
_ELSEWHERE = _Lane("", "")


@dataclass
class _Grouped:
    """One worker's share of the leads (every ``workers``-th lead, by first appearance) and counts."""

    order: list[str]  # this share's lead ids, in order of first appearance
    lanes: dict[str, _Lane]
    leads: int = 0  # leads in all shares
    duplicates: int = 0  # redeliveries to this share's leads
    waiting_duplicates: int = 0  # redeliveries while a visitor was anonymous (the same in every share)
    pending_anonymous: int = 0
    dropped: int = 0
    outcomes_applied: int = 0  # to this share's leads
    unmatched_outcomes: int = 0
    unsorted: bool = False  # events were not in time order: nothing was grouped


def _group(events: Sequence[Event], outcomes: Sequence[Outcome], share: int = 0, workers: int = 1) -> _Grouped:
    """Route events (sorted by time) and outcomes (sorted) to this share's leads, as the online service would.

    Every worker scans the whole history (links and buffers need it) but keeps only its own leads.
    """
    by_email: dict[str, _Lane] = {}
    by_id: dict[str, _Lane] = {}
    order: list[str] = []
    links: dict[str, _Lane] = {}  # anonymous id -> its lead's lane
    waiting: dict[str, dict[str, Event]] = {}  # anonymous id -> events by id, first delivery kept
    duplicates = waiting_duplicates = dropped = leads = 0
    n_out = len(outcomes)
    oi = 0
    next_out = outcomes[0].ts if n_out else math.inf
    grouped = _Grouped(order, by_id)
    elsewhere = _ELSEWHERE
    previous = -math.inf

    def take_outcome(index: int) -> None:
        outcome = outcomes[index]
        lane = by_id.get(outcome.lead_key)
        if lane is None:
            grouped.unmatched_outcomes += 1  # the lead does not exist (yet): the API would refuse it
        elif lane is not elsewhere:
            lane.items[("outcome", index)] = outcome  # a tuple never equals an event id
            grouped.outcomes_applied += 1

    for event in events:
        ts = event.ts
        if ts < previous:
            grouped.unsorted = True  # the caller sorts and starts again
            return grouped
        previous = ts
        if next_out < ts:  # outcomes strictly earlier than this event; ties go after events
            while next_out < ts:
                take_outcome(oi)
                oi += 1
                next_out = outcomes[oi].ts if oi < n_out else math.inf
        email = event.email
        if email:
            lane = by_email.get(email)
            if lane is None:
                lead_id = lead_id_for(email)
                if leads % workers == share:
                    lane = _Lane(lead_id, email)
                    order.append(lead_id)
                else:
                    lane = elsewhere
                leads += 1
                by_email[email] = by_id[lead_id] = lane
            anonymous = event.anonymous_id
            if anonymous and anonymous not in links:
                # An identify: the visitor's earlier events count now, before the identify itself.
                links[anonymous] = lane
                earlier = waiting.pop(anonymous, None)
                if earlier and lane is not elsewhere:
                    items = lane.items
                    for adopted in sorted(earlier.values(), key=_store_order):
                        if adopted.event_id in items:
                            duplicates += 1
                        else:
                            items[adopted.event_id] = adopted
            if lane is elsewhere:
                continue
        elif event.lead_id:
            # A lead known by id alone (imported history without an email): routed by that id.
            lane = by_id.get(event.lead_id)
            if lane is None:
                lane = _Lane(event.lead_id, None) if leads % workers == share else elsewhere
                if lane is not elsewhere:
                    order.append(event.lead_id)
                leads += 1
                by_id[event.lead_id] = lane
            if lane is elsewhere:
                continue
        elif event.anonymous_id:
            found = links.get(event.anonymous_id)
            if found is None:
                bucket = waiting.get(event.anonymous_id)
                if bucket is None:
                    waiting[event.anonymous_id] = {event.event_id: event}
                elif event.event_id in bucket:
                    waiting_duplicates += 1
                else:
                    bucket[event.event_id] = event
                continue
            if found is elsewhere:
                continue
            lane = found
        else:
            dropped += 1
            continue
        items = lane.items
        if event.event_id in items:
            duplicates += 1
        else:
            items[event.event_id] = event
    while oi < n_out:
        take_outcome(oi)
        oi += 1
    grouped.leads = leads
    grouped.duplicates = duplicates
    grouped.waiting_duplicates = waiting_duplicates
    grouped.dropped = dropped
    grouped.pending_anonymous = sum(len(b) for b in waiting.values())
    for lead_id in [k for k, v in by_id.items() if v is elsewhere]:
        del by_id[lead_id]
    return grouped


def _store_order(event: Event) -> tuple[float, str]:
    return (event.ts, event.event_id)


# -- per-lead replay ---------------------------------------------------------------------------------


def _replay_lead(lead_id: str, lane: _Lane, rs: CompiledRuleset, keep_state: bool) -> LeadReport:
    state = new_lead(lead_id, lane.email)
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
    for item in lane.items.values():
        if isinstance(item, Outcome):
            if pending:  # sales feedback may reset engagement: take the peak first
                engagement = engagement_at(state, rs, state.clock)
                max_engagement = max(max_engagement, engagement)
                max_score = max(max_score, engagement + state.fit)
                pending = False
            if before_outcome is None:
                before_outcome = _score_before(state, rs, max_score)
            found = apply_outcome(state, item.outcome, rs, item.ts, item.reason)
            if found:
                transitions += found
            outcome, outcome_at = item.outcome, item.ts
            won = won or item.outcome == "won"
            outcomes += 1
            continue
        ts = item.ts
        if pending and ts - last > BURST_GAP:
            # The end of a burst of activity: the score peaks here, before it decays.
            engagement = engagement_at(state, rs, state.clock)
            if engagement > max_engagement:
                max_engagement = engagement
            if engagement + state.fit > max_score:
                max_score = engagement + state.fit
            pending = False
        last = ts
        found = apply_event(state, item, rs, ts)
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
        engagement = engagement_at(state, rs, state.clock)
        max_engagement = max(max_engagement, engagement)
        max_score = max(max_score, engagement + state.fit)
    count = len(lane.items) - outcomes
    if before_outcome is None:
        before_outcome = _score_before(state, rs, max_score)
    return _report(state, rs, transitions, lane.email, channel, offers, outcome, outcome_at, won, count,
                   max_engagement, max_score, before_outcome, keep_state)


def _score_before(state: LeadState, rs: CompiledRuleset, max_score: float) -> float:
    """The ranking score at this point: disqualified leads rank below every other."""
    if state.stage == "disqualified":
        return -math.inf
    return max_score if max_score > -math.inf else state.fit + engagement_at(state, rs, state.clock)


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
    engagement = engagement_at(state, rs, state.clock)
    fit = state.fit
    if max_engagement == float("-inf"):
        max_engagement, max_score = engagement, engagement + fit
    return LeadReport(
        lead_id=state.lead_id, email=email, stage=state.stage, max_stage=_STAGE_AT[top], fit=fit,
        grade=rs.grade_for(fit), engagement=engagement, max_engagement=max_engagement, max_score=max_score,
        score_before_outcome=score_before_outcome, first_seen=state.first_seen, last_seen=state.clock, mql_at=mql_at, sql_at=sql_at,
        fast_track=any(t.fast_track for t in transitions), disqualified_reason=disqualified,
        channel_source=channel[0], channel_medium=channel[1], offers=tuple(offers), outcome=outcome,
        outcome_at=outcome_at, won=won, events=count, transitions=transitions,
        state=state if keep_state else None,
    )


_STAGE_AT = {0: "lead", 1: "mql", 2: "sql", 3: "opportunity", 4: "customer"}

# Set in the parent just before forking: children inherit the history instead of receiving it pickled.
_JOB: tuple[Sequence[Event], Sequence[Outcome], CompiledRuleset, int, bool] | None = None

_Share = tuple[list[LeadReport], _Grouped]


def _run_share(share: int) -> _Share:
    assert _JOB is not None
    events, outcomes, rs, workers, keep_state = _JOB
    grouped = _group(events, outcomes, share, workers)
    if grouped.unsorted:
        return [], grouped
    lanes = grouped.lanes
    reports = [_replay_lead(lead_id, lanes[lead_id], rs, keep_state) for lead_id in grouped.order]
    return reports, grouped


def _child_share(share: int) -> _Share:
    reports, grouped = _run_share(share)
    grouped.lanes = {}  # the parent does not need the child's timelines; they would only be pickled
    return reports, grouped


def _replay_all(
    events: Sequence[Event], outcomes: Sequence[Outcome], rs: CompiledRuleset, workers: int, keep_state: bool
) -> list[_Share]:
    global _JOB
    _JOB = (events, outcomes, rs, workers, keep_state)
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
) -> BacktestResult:
    """Replay ``events`` (and sales ``outcomes``) through the engine under ``ruleset``.

    ``ruleset`` may be compiled already (e.g. ``RulesetService.active()``); a plain ``RuleSet`` is
    compiled as ``version``. Final ``LeadState``s are not kept unless ``keep_states`` (with workers
    they would travel between processes); ``result.state(lead_id)`` rebuilds one on demand.
    ``workers=2`` replays leads in two processes (fork); the result is the same as with one.
    """
    started = time.perf_counter()
    rs = _compiled(ruleset, version)
    listed = events if isinstance(events, list) else list(events)
    ordered_outcomes = sorted(outcomes or (), key=attrgetter("ts"))
    n_workers = _workers(workers, listed)
    with paused_gc():
        shares = _replay_all(listed, ordered_outcomes, rs, n_workers, keep_states)
        if shares[0][1].unsorted:  # (every share finds it, each after one comparison per event)
            listed = sorted(listed, key=attrgetter("ts"))
            shares = _replay_all(listed, ordered_outcomes, rs, n_workers, keep_states)
    first = shares[0][1]
    reports: list[Any] = [None] * first.leads
    for share, (part, _) in enumerate(shares):
        reports[share::n_workers] = part
    end = max(listed[-1].ts if listed else 0.0, ordered_outcomes[-1].ts if ordered_outcomes else 0.0)
    return BacktestResult(
        leads=reports, ruleset=rs, events=len(listed), scored=sum(r.events for r in reports),
        duplicates=sum(g.duplicates for _, g in shares) + first.waiting_duplicates,
        pending_anonymous=first.pending_anonymous, dropped=first.dropped,
        outcomes_applied=sum(g.outcomes_applied for _, g in shares), unmatched_outcomes=first.unmatched_outcomes,
        start=listed[0].ts if listed else 0.0, end=end, seconds=time.perf_counter() - started, workers=n_workers,
        _lanes=first.lanes, _history=(listed, ordered_outcomes),
    )
