"""The lead service: events in, scored state stored once, transitions into the outbox.

A batch is read through the lead timeline (``chalicelib.timeline``: routing, dedupe, adoption of
anonymous visits, time order), with what the store knows of its visitors (links, waiting events).
Per lead and per write: one read of the state, one conditional write of state + events + outbox.
Scores follow event time: an event older than the newest event or outcome the lead has seen (a
late one) costs one more read, the lead's stored history, which is replayed with it
(``timeline.replay_late``: stages forward-only, a changed past noted in the stage history), up to
``MAX_REPLAYED`` events; a longer history takes late events in arrival order.
Redelivered events are dropped (by the timeline within the batch, by the state's recent-id memory,
or by the store's per-event condition for older ones); a concurrent writer makes us re-read and
re-apply, a bounded number of times.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib import shadow
from chalicelib.attributes import coerce_traits, verified
from chalicelib.display import shown_score
from chalicelib.emails import normalize_email
from chalicelib.engine import apply_outcome, explain, explanation_answer, new_lead, set_email
from chalicelib.errors import ConcurrencyConflict, Conflict, DuplicateEvents, NotFound, Unavailable
from chalicelib.events import Event, iso
from chalicelib.form_limit import FormRateLimit
from chalicelib.handoff.body import outbox_items
from chalicelib.handoff.reminders import sla_overdue, sql_transition
from chalicelib.lead_list import LeadQuery, encode_cursor, row
from chalicelib.observability import metric
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rulesets import RulesetService
from chalicelib.state import LeadState, Transition, lead_id_for
from chalicelib.store.base import (
    MAX_EVENTS_PER_COMMIT,
    Commit,
    Erased,
    LeadRepository,
    OutboxRepository,
    StoredLead,
)
from chalicelib.timeline import (
    Outcome,
    Routed,
    Timeline,
    apply,
    in_time_order,
    is_late,
    replay_late,
    route,
    store_order,
)

MAX_ATTEMPTS = 8
# The waiting events a visitor brings to its lead when identified: its newest. A bot (or a script
# calling analytics.track) can pile up any number under one anonymous id; adopting them all would be
# one write per 45 of them in the identify's request, past any timeout. The rest expire unread.
MAX_ADOPTED = 500
# The longest history a late event replays. Each late event reads the whole of it, and a sender can
# grow one lead's history and then date every event in the past: measured on the local stack, a late
# event for a lead of 10,000 events took 3.2-4.5 s, growing with the history, to the Lambda's timeout
# and the vendor's retries. A lead past this takes late events in arrival order, as it takes the rest.
MAX_REPLAYED = 1000
log = logging.getLogger(__name__)


@dataclass
class LeadResult:
    lead_id: str
    state: LeadState
    transitions: list[Transition] = field(default_factory=list)
    scored: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    engagement: float = 0.0
    fit: float = 0.0
    grade: str = "D"

    @property
    def duplicate(self) -> bool:
        """Every event of this request was counted before: nothing changed, the stage is as it was."""
        return bool(self.duplicates) and not self.scored

    def summary(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "stage": self.state.stage,
            "fit": shown_score(self.fit),
            "grade": self.grade,
            "engagement": shown_score(self.engagement),
            "duplicate": self.duplicate,
            # A duplicate handed nothing to anyone, whatever the lead's stage: null, not a false that
            # reads "not with sales" for a lead that is.
            "handed_to_sales": None if self.duplicate else any(t.to_stage == "sql" for t in self.transitions),
            "transitions": [{"from": t.from_stage, "to": t.to_stage, "reason": t.reason} for t in self.transitions],
            "scored": len(self.scored),
            "duplicates": len(self.duplicates),
        }


class LeadService:
    def __init__(
        self,
        leads: LeadRepository,
        rulesets: RulesetService,
        clock: Callable[[], float] = time.time,
        backoff: Callable[[int], None] | None = None,
        deliveries: OutboxRepository | None = None,  # where the SQL alerts stand with Slack
        form_limit: FormRateLimit | None = None,  # public form posts per address
    ) -> None:
        self.leads = leads
        self.rulesets = rulesets
        self.clock = clock
        self.backoff = backoff or _jittered_sleep
        self.deliveries = deliveries
        self.form_limit = form_limit

    # -- ingestion -------------------------------------------------------------------------------
    def ingest(self, events: Sequence[Event]) -> dict[str, Any]:
        """Score a batch: one read and one write per lead (per 90 events)."""
        routed, results = self._score(self._typed(events))
        waiting = routed.waiting.items()  # visitors not identified yet: their events wait in the store
        pending = sum(self.leads.save_anonymous(visitor, list(held.values())) for visitor, held in waiting)
        scored = sum(len(r.scored) for r in results)
        duplicates = sum(len(r.duplicates) for r in results) + routed.duplicates + routed.waiting_duplicates
        metric("EventsScored", scored)
        metric("EventsDuplicate", duplicates)
        for transition in (t for r in results for t in r.transitions):
            metric("Transitions", 1, stage=transition.to_stage)
            log.info("transition", extra={"lead_id": transition.lead_id, "to": transition.to_stage,
                                          "transition_id": transition.id})
        return {
            "leads": [r.summary() for r in results],
            "accepted": scored + pending,
            "duplicates": duplicates,
            "pending_identity": pending,
        }

    def identify(self, event: Event) -> LeadResult:
        """Link an anonymous visitor to an email; what they did anonymously now counts."""
        assert event.email and event.anonymous_id
        _, (result,) = self._score(self._typed([event]))
        return result

    def _typed(self, events: Sequence[Event]) -> Sequence[Event]:
        """The events with the custom attributes the active rule set declares coerced to their types,
        whichever path they came by (the API and forms did it already, naming their fields; vendor
        webhooks meet the declarations here). Undeclared custom attributes stay as sent."""
        declared = self.rulesets.active().declared
        if not declared:
            return events
        return [replace(e, traits=coerce_traits(dict(e.traits), declared, "traits"))
                if any(k in declared for k in e.traits) else e for e in events]

    def _score(self, events: Sequence[Event]) -> tuple[Routed, list[LeadResult]]:
        ordered = in_time_order(events)
        links, unverified, stored = self._visitors(ordered)
        routed = route(ordered, links=links, unverified=unverified, waiting=stored)
        results = [self._apply(routed.timelines[lead_id], stored) for lead_id in routed.order]
        return routed, results

    def _visitors(self, events: Sequence[Event]) -> tuple[dict[str, str], set[str], dict[str, list[Event]]]:
        """What the store knows of the batch's visitors: their links (and which of them a public form
        made), and the waiting events of those identified now (an anonymous event alone costs one
        read, as before)."""
        identified = {e.anonymous_id for e in events if e.email and e.anonymous_id}
        links: dict[str, str] = {}
        unverified: set[str] = set()
        stored: dict[str, list[Event]] = {}
        for visitor in dict.fromkeys(e.anonymous_id for e in events if e.anonymous_id):
            link = self.leads.visitor_link(visitor)
            if link is not None:
                links[visitor] = link.lead_id
                if not link.verified:
                    unverified.add(visitor)
            elif visitor in identified:
                waiting = self.leads.anonymous_events(visitor)  # (in time order)
                if len(waiting) > MAX_ADOPTED:
                    metric("AnonymousEventsLeftOut", len(waiting) - MAX_ADOPTED)
                stored[visitor] = waiting[-MAX_ADOPTED:]
        return links, unverified, stored

    def _apply(self, timeline: Timeline, stored: Mapping[str, Sequence[Event]]) -> LeadResult:
        result: LeadResult | None = None
        for events, link, consumed in _writes(timeline, stored):
            part = self._write(timeline.lead_id, timeline.email, events, link=link, consumed=consumed)
            if result is None:
                result = part
            else:
                result.state = part.state
                result.transitions += part.transitions
                result.scored += part.scored
                result.duplicates += part.duplicates
                result.engagement, result.fit, result.grade = part.engagement, part.fit, part.grade
        assert result is not None
        return result

    def _write(
        self,
        lead_id: str,
        email: str | None,
        events: Sequence[Event],
        *,
        link: Event | None,
        consumed: Sequence[tuple[str, str]],
    ) -> LeadResult:
        known_dupes: set[str] = set()
        for attempt in range(MAX_ATTEMPTS):
            now = self.clock()
            rs = self.rulesets.active()
            found = self.leads.load(lead_id)
            stored = found if isinstance(found, StoredLead) else None
            state = stored.state if stored else new_lead(lead_id, email)
            version = stored.version if stored else 0
            if isinstance(found, Erased):
                state.erased_at = found.at
            if email and state.email is None:
                set_email(state, email)
            fresh = sorted((e for e in events if e.event_id not in known_dupes and not state.seen(e.event_id)
                            and not state.predates_erasure(e.ts)), key=store_order)
            if self.form_limit is not None:
                self.form_limit.admit(state, fresh, now)  # (before anything is applied or stored)
            late = stored is not None and bool(fresh) and is_late(state, fresh[0])
            if late and state.event_count <= MAX_REPLAYED:
                state, transitions, fresh = self._replay_late(state, fresh, rs, now)
            else:
                if late:
                    metric("LateEventsInArrivalOrder", len(fresh))
                transitions = apply(state, fresh, rs, now)
            fresh_ids = {e.event_id for e in fresh}
            dupes = [e.event_id for e in events if e.event_id not in fresh_ids]
            shadow_rs = self.rulesets.shadow()
            if shadow_rs is not None and fresh:
                shadow.score(state, fresh, shadow_rs, now)
            explained = explain(state, rs, now)  # once per write: the answer and the handoff messages share it
            # Nothing new; for an erased lead, nothing at all: only what predates its erasure came.
            if not fresh and (isinstance(found, Erased) or (not link and not consumed and stored is not None)):
                return _result(state, transitions, [], dupes, explained)
            source = fresh[-1].source if fresh else "api"
            commit = Commit(
                state=state, expected_version=version, events=fresh,
                outbox=outbox_items(state, transitions, rs, source, now, explained),
                link_anonymous=link.anonymous_id if link else None,
                link_verified=link is None or verified(link.source), consumed_anonymous=consumed,
            )
            try:
                self.leads.commit(commit)
            except DuplicateEvents as exc:
                known_dupes.update(exc.event_ids)  # older redeliveries the state no longer remembers
                continue
            except ConcurrencyConflict:
                self.backoff(attempt)
                continue
            return _result(state, transitions, [e.event_id for e in fresh], dupes, explained)
        raise Unavailable("too many concurrent updates to this lead; retry shortly", retry_after=1)

    def _replay_late(self, state: LeadState, fresh: list[Event], rs: CompiledRuleset, now: float
                     ) -> tuple[LeadState, list[Transition], list[Event]]:
        """Events older than what the lead has seen: its stored history, with them, replayed in event
        time (one more read); returns the state, the transitions to announce and the events that were
        new (a redelivery the state no longer remembers is in the history already)."""
        events, records = self.leads.history(state.lead_id)
        held = {e.event_id for e in events}
        fresh = [e for e in fresh if e.event_id not in held]
        if not fresh:
            return state, [], fresh
        metric("LateEvents", len(fresh))
        outcomes = [Outcome.from_record(state.lead_id, r) for r in records if r.get("outcome")]
        replayed, transitions = replay_late(state, [*events, *fresh], outcomes, fresh[0], rs, now)
        return replayed, transitions, fresh

    # -- sales feedback --------------------------------------------------------------------------
    def record_outcome(
        self, lead_id: str, outcome: str, *, reason: str | None = None, answers: dict[str, Any] | None = None,
        actor: str | None = None, source: str = "api", about: str | None = None,
    ) -> dict[str, Any]:
        """Sales feedback. ``about``: the SQL transition the decision was made on (a Slack alert's);
        unless it is the lead's latest hand-off, nothing is recorded (``Conflict``)."""
        for attempt in range(MAX_ATTEMPTS):
            now = self.clock()
            rs = self.rulesets.active()
            stored = self.leads.get(lead_id)
            if stored is None:
                raise NotFound(f"no lead {lead_id}", details={"field": "lead_id"})
            state = stored.state
            handoff = sql_transition(state) if about is not None else None
            if about is not None and (handoff is None or handoff.id != about):
                raise Conflict("this alert is out of date: the lead was handed off again since, or never by it")
            before = state.stage
            first_action = state.accepted_at is None and state.handed_off_at is not None
            handed_off_at = state.handed_off_at
            transitions = apply_outcome(state, outcome, rs, now, reason, actor)
            record = {
                "outcome": outcome, "reason": reason, "answers": answers or {}, "actor": actor, "source": source,
                "at": now, "stage_before": before, "stage_after": state.stage,
                "seconds_to_first_action": round(now - handed_off_at, 1) if first_action and handed_off_at else None,
            }
            try:
                self.leads.commit(Commit(state=state, expected_version=stored.version, outcomes=[record]))
            except ConcurrencyConflict:
                self.backoff(attempt)
                continue
            return {
                "lead_id": lead_id, "outcome": outcome, "stage": state.stage, "previous_stage": before,
                "changed": bool(transitions), "seconds_to_first_action": record["seconds_to_first_action"],
            }
        raise Unavailable("too many concurrent updates to this lead; retry shortly", retry_after=1)

    # -- reading ---------------------------------------------------------------------------------
    def list_leads(self, query: LeadQuery) -> dict[str, Any]:
        """A page of a lead list (``lead_list``); ``next_cursor`` is None on the last page."""
        now = self.clock()
        rows: list[dict[str, Any]] = []
        after, more = query.after, True
        while len(rows) < query.limit and more:
            found, after = self.leads.list_leads(replace(query, after=after, limit=query.limit - len(rows)), now)
            more = after is not None
            for entry in found:
                if query.awaiting == "overdue" and "sla_reminders" not in entry:
                    # Past the stored deadline, but the clock runs from when Slack delivered the alert.
                    stored = self.leads.get(entry["lead_id"])
                    if stored is None or not sla_overdue(stored.state, self._rules_of(stored.state), self.deliveries,
                                                         now):
                        continue
                rows.append(row(entry["lead_id"], entry))
        return {"leads": rows, "next_cursor": encode_cursor(after) if after else None}

    def _rules_of(self, state: LeadState) -> CompiledRuleset:
        version = state.ruleset_version
        return self.rulesets.compiled(version) if version else self.rulesets.active()

    def get_by_email(self, email: Any, *, limit: int = 20, cursor: int = 0) -> dict[str, Any]:
        """The lead an address belongs to (leads are keyed by a digest of the normalised address)."""
        lead_id = lead_id_for(normalize_email(email, "email"))
        return self.get(lead_id, limit=limit, cursor=cursor, missing=NotFound("no lead with that email",
                                                                              details={"field": "email"}))

    def get(self, lead_id: str, *, limit: int = 20, cursor: int = 0, missing: NotFound | None = None
            ) -> dict[str, Any]:
        stored = self.leads.get(lead_id)
        if stored is None:
            raise missing or NotFound(f"no lead {lead_id}", details={"field": "lead_id"})
        state = stored.state
        now = self.clock()
        version = state.ruleset_version
        explained = explain(state, self._rules_of(state), now)
        events = self.leads.events(lead_id)[::-1]  # newest first
        page = events[cursor : cursor + limit]
        return {
            "lead_id": lead_id,
            "email": state.email,
            "attributes": state.attributes,
            "attribute_sources": {k: {"source": source, "at": iso(at)}
                                  for k, (source, at) in state.attribute_sources.items()},
            "stage": state.stage,
            "stage_history": [_history_entry(h) for h in state.stage_history],
            "fit": explained["fit"]["score"],
            "grade": explained["fit"]["grade"],
            "engagement": shown_score(explained["engagement"]["score"]),
            "engagement_at": iso(explained["engagement"]["at"]),
            "explanation": explanation_answer(explained),
            "disqualified_reason": state.disqualified_reason,
            "handoff": {
                "handed_off_at": iso(state.handed_off_at), "route": state.route,
                "sla_deadline": iso(state.sla_deadline), "accepted_at": iso(state.accepted_at),
                **alert_status(state, self.deliveries),
            },
            "ruleset_version": version,
            "first_seen": iso(state.first_seen),
            "event_count": state.event_count,
            "events": {
                "items": [{**_without_ts(e.to_dict()), "occurred_at": iso(e.ts)} for e in page],
                "total": len(events),
                "next_cursor": cursor + limit if cursor + limit < len(events) else None,
            },
            "outcomes": [{**o, "at": iso(o["at"])} for o in self.leads.outcomes(lead_id)],
        }


def _without_ts(event: dict[str, Any]) -> dict[str, Any]:
    event.pop("ts")  # (epoch seconds: the answer says occurred_at)
    return event


def _result(
    state: LeadState, transitions: list[Transition], scored: list[str], dupes: list[str], explained: dict[str, Any]
) -> LeadResult:
    return LeadResult(
        state.lead_id, state, transitions, scored, dupes,
        engagement=explained["engagement"]["score"], fit=explained["fit"]["score"],
        grade=explained["fit"]["grade"],
    )


def _history_entry(entry: dict[str, Any]) -> dict[str, Any]:
    out = {**entry, "at": iso(entry["at"])}
    if "revised" in entry:  # a late event's note: the transitions as the event-time replay has them
        out["revised"] = [{**r, "at": iso(r["at"])} for r in entry["revised"]]
    return out


def alert_status(state: LeadState, deliveries: OutboxRepository | None) -> dict[str, Any]:
    """Where the lead's SQL alert stands: ``status`` pending | delivered | parked, ``attempts``,
    ``next_attempt_at`` (all null without an alert, or once its record expired after 30 days)."""
    from chalicelib.handoff.reminders import sql_transition

    transition = sql_transition(state)
    record = deliveries.delivery(transition.id) if transition and deliveries else None
    summary = record.summary() if record else dict.fromkeys(("status", "attempts", "next_attempt_at",
                                                             "delivered_at", "last_error"))
    return {k: iso(v) if k.endswith("_at") else v for k, v in summary.items()}


def _writes(
    timeline: Timeline, stored: Mapping[str, Sequence[Event]]
) -> Iterator[tuple[list[Event], Event | None, list[tuple[str, str]]]]:
    """A lead's events in writes: each within a transaction's item budget, with at most one new link
    (the identify that made it).

    A link goes with the write holding the identify that made it (after the events it adopts), so a
    failure in between leaves the visitor unlinked and its waiting events stored: a redelivered
    identify adopts them again. An adopted event is stored under the lead with its email, and its
    waiting copy is deleted in the same write (two items).
    """
    links = timeline.links or {}
    adopted = {event_id: visitor for visitor, held in (timeline.adopted or {}).items() for event_id in held}
    waited = {(visitor, e.event_id) for visitor, events in stored.items() for e in events}
    events: list[Event] = []
    consumed: list[tuple[str, str]] = []
    link: Event | None = None
    size = 0
    for item in timeline.items.values():
        assert isinstance(item, Event)  # a batch carries no outcomes
        visitor = adopted.get(item.event_id)
        waiting_copy = (visitor, item.event_id) if visitor is not None and (visitor, item.event_id) in waited else None
        linking = links.get(item.event_id)
        cost = 2 if waiting_copy else 1
        if events and (size + cost > MAX_EVENTS_PER_COMMIT or (linking and link)):
            yield events, link, consumed
            events, consumed, link, size = [], [], None, 0
        if visitor is not None and timeline.email and item.email != timeline.email:
            item = replace(item, email=timeline.email)
        events.append(item)
        size += cost
        if waiting_copy:
            consumed.append(waiting_copy)
        if linking:
            link = item
    yield events, link, consumed


def _jittered_sleep(attempt: int) -> None:
    # Spread competing writers apart; bounded so a webhook sender never waits long.
    time.sleep(random.uniform(0, 0.01 * (2**attempt)))

