"""How a lead's history is read: routing, dedupe, adoption, merge and replay (pure, no I/O).

The live service (``leads.LeadService``), the re-score (``rescore.replay``) and the backtest
(``baton.backtest``) read histories only through this module, so they agree by construction:

- **routing**: an event with an email belongs to the lead ``lead_id_for(email)``; one without an
  email that names a ``lead_id`` (imported history of leads known by a CRM key alone; live paths
  never set it) to that lead; one with only an anonymous id to the lead its visitor is linked to,
  else it waits; one with none of these is dropped;
- **adoption**: an identify (email + anonymous id) links its visitor to the email's lead; the
  visitor's waiting events then count, oldest first (ties by event id, as the store returns them),
  before the identify itself. The first *verified* link wins (a shared computer): a visitor linked
  by a verified source keeps that lead, and a later identify counts for its own email only. A link
  made by a public form (``attributes.verified``: anyone can post any visitor id with any address)
  holds only until a verified identify names the visitor, which re-points it (the events already
  counted stay where they counted); it never blocks or replaces a verified link. Visitors never
  identified count nowhere;
- **dedupe**: an event id a lead (or a waiting visitor) already has is a redelivery and changes
  nothing: the first delivery wins;
- **merge**: events in time order (stable: events at the same instant keep their order), sales
  outcomes interleaved by time, events first at the same instant;
- **replay**: ``apply_event`` / ``apply_outcome`` in that order, ``now`` being each item's own time
  (events arriving live are applied at the service's clock instead: ``apply``);
- **event time**: a lead's scores are a function of the set of its events and outcomes, whatever
  order they arrive in. Events newer than everything the lead has seen (``horizon``) are applied
  on top of its state; a late one (``is_late``) replays its whole stored history (``replay_late``).
  Stages stay forward-only: the further of the replayed stage and the one already announced.

``route`` reads a stream (a batch, or a whole history) into one ``Timeline`` per lead; ``merge``
orders one lead's stored history; ``replay`` applies a history to a state, one ``step`` per item
(the backtest takes its steps itself, to observe the state between them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from chalicelib.attributes import verified
from chalicelib.engine import apply_event, apply_outcome, new_lead, record_transition
from chalicelib.events import Event, iso
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.state import HISTORY, STAGE_ORDER, LeadState, Transition, lead_id_for

_ts = attrgetter("ts")


@dataclass(frozen=True, slots=True)
class Outcome:
    """Sales feedback at a point in time, for a lead named by id or by email."""

    outcome: str  # one of engine.OUTCOMES
    ts: float
    lead_id: str | None = None
    email: str | None = None
    reason: str | None = None
    actor: str | None = None  # who gave the feedback (the owner, when it accepts)

    @property
    def lead_key(self) -> str:
        if self.lead_id:
            return self.lead_id
        if self.email:
            return lead_id_for(self.email)
        raise ValueError("an outcome needs a lead_id or an email")

    @classmethod
    def from_record(cls, lead_id: str, record: Mapping[str, Any]) -> "Outcome":
        """An outcome as the lead store keeps it (``LeadService.record_outcome``)."""
        return cls(str(record["outcome"]), float(record["at"]), lead_id=lead_id, reason=record.get("reason"),
                   actor=record.get("actor"))

    def to_dict(self) -> dict[str, Any]:
        return {"lead_id": self.lead_key, "email": self.email, "outcome": self.outcome, "ts": self.ts,
                "reason": self.reason}


Item = Event | Outcome


class Timeline:
    """One lead's history in the order it is applied: each event once, outcomes in between."""

    __slots__ = ("adopted", "email", "items", "lead_id", "links")

    def __init__(self, lead_id: str, email: str | None) -> None:
        self.lead_id = lead_id
        self.email = email
        # Keyed by event id (one dict is both the order and the dedupe memory); outcomes by a tuple.
        self.items: dict[Any, Item] = {}
        # What a store must record with these events (filled only when it happens, so mostly None):
        self.links: dict[str, str] | None = None  # identify event id -> the visitor it linked here
        self.adopted: dict[str, dict[str, Event]] | None = None  # visitor -> its waiting events, by id


# Stands for a lead another worker replays: its events are recognised and skipped.
_ELSEWHERE = Timeline("", None)


@dataclass
class Routed:
    """A stream read into timelines (this share's leads, by first appearance), and what did not count."""

    order: list[str]  # lead ids, in order of first appearance
    timelines: dict[str, Timeline]
    waiting: dict[str, dict[str, Event]]  # visitors not identified yet -> their events by id
    leads: int = 0  # leads in all shares
    duplicates: int = 0  # redeliveries to this share's leads
    waiting_duplicates: int = 0  # redeliveries while a visitor waited (the same in every share)
    pending_anonymous: int = 0  # events still waiting at the end
    dropped: int = 0  # events with no email, lead id or anonymous id
    outcomes_applied: int = 0  # to this share's leads
    unmatched_outcomes: int = 0  # for leads that did not exist (yet)
    unsorted: bool = False  # events were not in time order: nothing was routed


def in_event_time(timeline: Timeline) -> Iterable[Item]:
    """A timeline's items in the order they apply: as routed, except that a visitor's events adopted
    at an identify count at their own time among the lead's other events, in the order the live
    service replays them (the store's: time, then event id; outcomes after events at one instant)."""
    if timeline.adopted is None:
        return timeline.items.values()
    return sorted(timeline.items.values(), key=_event_time)


def _event_time(item: Item) -> tuple[float, bool, str]:
    return (item.ts, False, item.event_id) if type(item) is Event else (item.ts, True, "")


def store_order(event: Event) -> tuple[float, str]:
    """The order a lead store returns a visitor's or a lead's events in."""
    return (event.ts, event.event_id)


def in_time_order(events: Iterable[Event]) -> list[Event]:
    """A stable sort by time: events at the same instant keep their order."""
    return sorted(events, key=_ts)


def route(
    events: Sequence[Event],
    outcomes: Sequence[Outcome] = (),
    *,
    links: Mapping[str, str] | None = None,
    unverified: Iterable[str] = (),
    waiting: Mapping[str, Iterable[Event]] | None = None,
    share: int = 0,
    workers: int = 1,
) -> Routed:
    """Read ``events`` and ``outcomes`` (each in time order) into their leads' timelines, in one scan.

    ``links`` (visitor -> lead id) and ``waiting`` (visitor -> events, oldest first) are what was
    known before the stream: the live service reads them from its store; a whole history starts
    with neither. ``unverified``: the visitors among ``links`` linked by a public form (a verified
    identify re-points them). An outcome for a lead not seen yet is not applied (the API refuses it).

    With ``workers > 1`` only every ``workers``-th lead by first appearance, from ``share``, gets a
    timeline: each worker scans the whole stream (links and waiting visitors need it) and keeps its
    own share. Events out of time order stop the scan (``unsorted``): sort them and route again.
    """
    known = links or {}
    by_email: dict[str, Timeline] = {}
    by_id: dict[str, Timeline] = {}
    order: list[str] = []
    linked: dict[str, Timeline] = {}  # visitors linked in this stream -> their lead's timeline
    weak = set(unverified)  # visitors whose link a public form made: a verified identify re-points them
    pending: dict[str, dict[str, Event]] = {}
    for visitor, stored in (waiting or {}).items():
        held = pending.setdefault(visitor, {})
        for event in stored:
            held.setdefault(event.event_id, event)
    duplicates = waiting_duplicates = dropped = 0
    n_out = len(outcomes)
    oi = 0
    next_out = outcomes[0].ts if n_out else math.inf
    routed = Routed(order, by_id, pending)
    elsewhere = _ELSEWHERE
    previous = -math.inf

    def timeline_for(lead_id: str, email: str | None) -> Timeline:
        found = by_id.get(lead_id)
        if found is None:
            if routed.leads % workers == share:
                found = Timeline(lead_id, email)
                order.append(lead_id)
            else:
                found = elsewhere
            routed.leads += 1
            by_id[lead_id] = found
        elif found.email is None and found is not elsewhere:
            found.email = email
        return found

    def take_outcome(index: int) -> None:
        outcome = outcomes[index]
        lane = by_id.get(outcome.lead_key)
        if lane is None:
            routed.unmatched_outcomes += 1  # the lead does not exist (yet): the API would refuse it
        elif lane is not elsewhere:
            lane.items[("outcome", index)] = outcome  # a tuple never equals an event id
            routed.outcomes_applied += 1

    for event in events:
        ts = event.ts
        if ts < previous:
            routed.unsorted = True  # the caller sorts and starts again
            return routed
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
                lane = by_email[email] = timeline_for(lead_id_for(email), email)
            anonymous = event.anonymous_id
            if anonymous and (
                (anonymous not in linked and anonymous not in known)
                or (anonymous in weak and verified(event.source))
            ):
                # An identify: the visitor's earlier events count now, before the identify itself.
                if verified(event.source):
                    weak.discard(anonymous)
                else:
                    weak.add(anonymous)
                linked[anonymous] = lane
                earlier = pending.pop(anonymous, None)
                if lane is not elsewhere:
                    if lane.links is None:
                        lane.links = {}
                    lane.links[event.event_id] = anonymous
                    if earlier:
                        if lane.adopted is None:
                            lane.adopted = {}
                        lane.adopted[anonymous] = earlier
                        items = lane.items
                        for waited in sorted(earlier.values(), key=store_order):
                            if waited.event_id in items:
                                duplicates += 1
                            else:
                                items[waited.event_id] = waited
            if lane is elsewhere:
                continue
        elif event.lead_id:
            lane = by_id.get(event.lead_id) or timeline_for(event.lead_id, None)
            if lane is elsewhere:
                continue
        elif event.anonymous_id:
            found = linked.get(event.anonymous_id)
            if found is None:
                if event.anonymous_id not in known:
                    bucket = pending.get(event.anonymous_id)
                    if bucket is None:
                        pending[event.anonymous_id] = {event.event_id: event}
                    elif event.event_id in bucket:
                        waiting_duplicates += 1
                    else:
                        bucket[event.event_id] = event
                    continue
                found = linked[event.anonymous_id] = timeline_for(known[event.anonymous_id], None)
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
    routed.duplicates = duplicates
    routed.waiting_duplicates = waiting_duplicates
    routed.dropped = dropped
    routed.pending_anonymous = sum(len(b) for b in pending.values())
    for lead_id in [k for k, v in by_id.items() if v is elsewhere]:
        del by_id[lead_id]
    return routed


def merge(events: Iterable[Event], outcomes: Iterable[Outcome] = ()) -> list[Item]:
    """Events and outcomes in the order they apply: by time (stable), events first at the same instant."""
    ordered: list[Item] = []
    pending = sorted(outcomes, key=_ts)
    j, n = 0, len(pending)
    for event in in_time_order(events):
        while j < n and pending[j].ts < event.ts:
            ordered.append(pending[j])
            j += 1
        ordered.append(event)
    ordered += pending[j:]
    return ordered


def step(state: LeadState, item: Item, rs: CompiledRuleset) -> list[Transition]:
    """One step of a replay: ``item`` applied to ``state`` at its own time; the transitions it caused."""
    if type(item) is Event:  # (cheaper than isinstance: a backtest takes a million steps)
        return apply_event(state, item, rs, item.ts)
    assert isinstance(item, Outcome)
    return apply_outcome(state, item.outcome, rs, item.ts, item.reason, item.actor)


def replay(state: LeadState, items: Iterable[Item], rs: CompiledRuleset) -> list[Transition]:
    """Apply a history to ``state`` in order, each item at its own time; the transitions it caused."""
    transitions: list[Transition] = []
    for item in items:
        found = step(state, item, rs)
        if found:
            transitions += found
    return transitions


def apply(state: LeadState, events: Iterable[Event], rs: CompiledRuleset, now: float) -> list[Transition]:
    """Apply events as they arrive, at the live service's clock ``now`` (an event dated beyond it,
    plus the allowed skew, counts at that limit); the transitions they caused."""
    transitions: list[Transition] = []
    for event in events:
        found = apply_event(state, event, rs, now)
        if found:
            transitions += found
    return transitions


# -- event time ----------------------------------------------------------------------------------

def horizon(state: LeadState) -> float:
    """The time up to which the lead's history is settled: its newest event or sales outcome."""
    last_outcome = state.last_outcome_at
    return state.last_seen if last_outcome is None or last_outcome < state.last_seen else last_outcome


def is_late(state: LeadState, event: Event) -> bool:
    """Does ``event`` belong before what the lead has already seen? One at the very instant of the
    newest counts too: events at one instant apply in event-id order, which only the store knows."""
    return event.ts <= horizon(state)


def rebuild(lead_id: str, email: str | None, events: Iterable[Event], outcomes: Iterable[Outcome],
            rs: CompiledRuleset) -> tuple[LeadState, list[Transition]]:
    """A lead built from nothing by its whole history in event time; the transitions on the way."""
    state = new_lead(lead_id, email)
    return state, replay(state, merge(events, outcomes), rs)


# What a lead's journey owns (what sales was told and did), as opposed to what scoring recomputes.
JOURNEY = (
    "stage", "stage_history", "transitions_count", "handed_off_at", "route", "sla_deadline", "sla_reminders",
    "accepted_at", "owner", "recycled_at", "disqualified_reason", "fast_track", "shadow",
)
# Set outside the rules (the shadow pilot, the re-score, an erasure's tombstone, the public form
# limit): a replay cannot make them.
_KEPT = ("shadow", "rescored_version", "erased_at", "form_window")
_SLA = ("sla_deadline", "sla_reminders")
_PRE_SALES = frozenset({"lead", "recycled", "mql"})


def forward_only(old: LeadState, replayed: LeadState, rs: CompiledRuleset, now: float, why: str
                 ) -> tuple[LeadState, list[Transition]]:
    """The lead with the scores of ``replayed`` and the journey of ``old``, moved on to the replayed
    stage when that is further (or disqualified, from before sales): stages never move back, and a
    stage already announced is not announced again. A move is recorded at ``now``, because ``why``."""
    state = replayed.copy()
    for name in (*JOURNEY, *_KEPT):
        setattr(state, name, getattr(old, name))
    state.attributes = {**old.attributes, **replayed.attributes}
    state.attribute_sources = {**old.attribute_sources, **replayed.attribute_sources}
    state.ruleset_version = rs.version
    reason = replayed.stage_history[-1]["reason"] if replayed.stage_history else ""
    transitions: list[Transition] = []
    if old.stage in _PRE_SALES:
        if replayed.stage == "disqualified":
            state.disqualified_reason = replayed.disqualified_reason
            transitions.append(record_transition(state, rs, "disqualified", now, f"{why}: {reason}"))
        elif replayed.stage != "recycled" and STAGE_ORDER[replayed.stage] > STAGE_ORDER[old.stage]:
            state.fast_track = replayed.fast_track
            transitions.append(record_transition(state, rs, replayed.stage, now, f"{why}: {reason}"))
    return state, transitions


def replay_late(old: LeadState, events: Sequence[Event], outcomes: Sequence[Outcome], late: Event,
                rs: CompiledRuleset, now: float) -> tuple[LeadState, list[Transition]]:
    """The lead after ``late`` arrived: its whole history (``events`` include ``late``) replayed in
    event time, and the transitions to announce.

    When the transitions already recorded are the replay's first ones, the replay is what in-order
    arrival would have made: it stands, and its further transitions are announced. Otherwise the
    late event changed a past transition: the journey stays (``forward_only``) and the lead's stage
    history gets a note with the transitions as the replay has them (once per revision)."""
    replayed, steps = rebuild(old.lead_id, old.email, sorted(events, key=store_order), outcomes, rs)
    for name in _KEPT:
        setattr(replayed, name, getattr(old, name))
    count = old.transitions_count
    recorded = [(h["transition_id"], h["at"]) for h in old.stage_history if "transition_id" in h]
    if len(steps) >= count and [(t.id, t.at) for t in steps[count - len(recorded) : count]] == recorded:
        fresh = steps[count:]
        if not fresh and (replayed.route == old.route or old.sla_reminders):
            # Once handed off, the deadline is the reminder job's (it moves it to when the alert was
            # delivered, and on after each reminder). A replay that routes the lead elsewhere before any
            # reminder gives it the new route's deadline, as in-order arrival would have: a lead found
            # to be enterprise is due sooner.
            for name in _SLA:
                setattr(replayed, name, getattr(old, name))
        return replayed, fresh
    state, transitions = forward_only(old, replayed, rs, now, f"late event {late.event_id}")
    revised = [{"stage": t.to_stage, "at": t.at} for t in steps][-HISTORY:]
    noted = next((h["revised"] for h in reversed(old.stage_history) if "revised" in h), None)
    if noted != revised:
        state.stage_history.append({
            "stage": state.stage, "at": now, "ruleset_version": rs.version, "revised": revised,
            "reason": f"late event {late.event_id} (occurred {iso(late.ts)}) changed past transitions; "
                      "stages already announced stand",
        })
        del state.stage_history[:-HISTORY]
    return state, transitions
