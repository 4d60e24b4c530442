"""The lead service: events in, scored state stored once, transitions into the outbox.

Per lead and per write: one read of the state, one conditional write of state + events + outbox.
Redelivered events are dropped (by the state's recent-id memory, or by the store's per-event
condition for older ones); a concurrent writer makes us re-read and re-apply, a bounded number of times.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.emails import normalize_email
from chalicelib.engine import apply_event, apply_outcome, explain, new_lead, set_email
from chalicelib.errors import ConcurrencyConflict, Conflict, DuplicateEvents, NotFound, Unavailable
from chalicelib.events import Event, iso
from chalicelib.handoff.body import outbox_items
from chalicelib.handoff.reminders import sql_transition
from chalicelib.observability import metric
from chalicelib.rescore import shadow_view
from chalicelib.rulesets import RulesetService
from chalicelib.state import LeadState, Transition, lead_id_for
from chalicelib.store.base import MAX_EVENTS_PER_COMMIT, Commit, LeadRepository

MAX_ATTEMPTS = 8
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

    def summary(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "stage": self.state.stage,
            "fit": self.fit,
            "grade": self.grade,
            "engagement": round(self.engagement, 2),
            "handed_to_sales": any(t.to_stage == "sql" for t in self.transitions),
            "transitions": [{"from": t.from_stage, "to": t.to_stage, "reason": t.reason} for t in self.transitions],
            "scored": len(self.scored),
            "duplicates": len(self.duplicates),
        }


def _chunks(events: Sequence[Event], size: int) -> list[Sequence[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)] or [()]


class LeadService:
    def __init__(
        self,
        leads: LeadRepository,
        rulesets: RulesetService,
        clock: Callable[[], float] = time.time,
        backoff: Callable[[int], None] | None = None,
    ) -> None:
        self.leads = leads
        self.rulesets = rulesets
        self.clock = clock
        self.backoff = backoff or _jittered_sleep

    # -- ingestion -------------------------------------------------------------------------------
    def ingest(self, events: Sequence[Event]) -> dict[str, Any]:
        """Score a batch. Events are grouped per lead: one read and one write per lead (per 90)."""
        per_lead: dict[str, tuple[str, list[Event]]] = {}
        anonymous: dict[str, list[Event]] = {}
        identifies: list[Event] = []
        links: dict[str, str | None] = {}
        for event in events:
            if event.email and event.anonymous_id:
                identifies.append(event)
            elif event.email:
                per_lead.setdefault(lead_id_for(event.email), (event.email, []))[1].append(event)
            elif event.anonymous_id:
                if event.anonymous_id not in links:
                    links[event.anonymous_id] = self.leads.linked_lead(event.anonymous_id)
                linked = links[event.anonymous_id]
                if linked is None:
                    anonymous.setdefault(event.anonymous_id, []).append(event)
                else:
                    per_lead.setdefault(linked, ("", []))[1].append(event)
        results = [self.identify(e) for e in identifies]
        for lead_id, (email, lead_events) in per_lead.items():
            results.append(self._apply(lead_id, email or None, lead_events))
        pending = sum(self.leads.save_anonymous(anon, evs) for anon, evs in anonymous.items())
        scored = sum(len(r.scored) for r in results)
        metric("EventsScored", scored)
        metric("EventsDuplicate", sum(len(r.duplicates) for r in results))
        for transition in (t for r in results for t in r.transitions):
            metric("Transitions", 1, stage=transition.to_stage)
            log.info("transition", extra={"lead_id": transition.lead_id, "to": transition.to_stage,
                                          "transition_id": transition.id})
        return {
            "leads": [r.summary() for r in results],
            "accepted": scored + pending,
            "duplicates": sum(len(r.duplicates) for r in results),
            "pending_identity": pending,
        }

    def identify(self, event: Event) -> LeadResult:
        """Link an anonymous visitor to an email; what they did anonymously now counts."""
        assert event.email and event.anonymous_id
        lead_id = lead_id_for(event.email)
        linked = self.leads.linked_lead(event.anonymous_id)
        if linked is not None and linked != lead_id:
            # Same browser, another person (a shared computer): keep the first link, score the event.
            return self._apply(lead_id, event.email, [event])
        earlier = [] if linked else self.leads.anonymous_events(event.anonymous_id)
        adopted = [_with_email(e, event.email) for e in earlier]
        return self._apply(
            lead_id, event.email, [*adopted, event],
            link=None if linked else event.anonymous_id,
            consumed=[(event.anonymous_id, e.event_id) for e in earlier],
        )

    def _apply(
        self,
        lead_id: str,
        email: str | None,
        events: Sequence[Event],
        *,
        link: str | None = None,
        consumed: Sequence[tuple[str, str]] = (),
    ) -> LeadResult:
        unique = list({e.event_id: e for e in reversed(events)}.values())[::-1]  # first delivery wins
        ordered = sorted(unique, key=lambda e: e.ts)  # stable: same-time events keep arrival order
        result: LeadResult | None = None
        for n, chunk in enumerate(_chunks(ordered, MAX_EVENTS_PER_COMMIT)):
            ids = {e.event_id for e in chunk}
            part = self._write(
                lead_id, email, chunk,
                link=link if n == 0 else None,
                consumed=[c for c in consumed if c[1] in ids],
            )
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
        link: str | None,
        consumed: Sequence[tuple[str, str]],
    ) -> LeadResult:
        known_dupes: set[str] = set()
        for attempt in range(MAX_ATTEMPTS):
            now = self.clock()
            rs = self.rulesets.active()
            stored = self.leads.get(lead_id)
            state = stored.state if stored else new_lead(lead_id, email)
            version = stored.version if stored else 0
            if email and state.email is None:
                set_email(state, email)
            fresh = [e for e in events if e.event_id not in known_dupes and not state.seen(e.event_id)]
            fresh_ids = {e.event_id for e in fresh}
            dupes = [e.event_id for e in events if e.event_id not in fresh_ids]
            transitions: list[Transition] = []
            for event in fresh:
                transitions += apply_event(state, event, rs, now)
            shadow_rs = self.rulesets.shadow()
            if shadow_rs is not None and fresh:
                _score_shadow(state, fresh, shadow_rs, now)
            if not fresh and not link and stored is not None:
                return self._result(state, rs, now, transitions, [], dupes)
            source = fresh[-1].source if fresh else "api"
            commit = Commit(
                state=state, expected_version=version, events=fresh,
                outbox=outbox_items(state, transitions, rs, source, now),
                link_anonymous=link, consumed_anonymous=consumed,
            )
            try:
                self.leads.commit(commit)
            except DuplicateEvents as exc:
                known_dupes.update(exc.event_ids)  # older redeliveries the state no longer remembers
                continue
            except ConcurrencyConflict:
                self.backoff(attempt)
                continue
            return self._result(state, rs, now, transitions, [e.event_id for e in fresh], dupes)
        raise Unavailable("too many concurrent updates to this lead; retry shortly", retry_after=1)

    def _result(
        self, state: LeadState, rs: Any, now: float, transitions: list[Transition], scored: list[str],
        dupes: list[str],
    ) -> LeadResult:
        explained = explain(state, rs, now)
        return LeadResult(
            state.lead_id, state, transitions, scored, dupes,
            engagement=explained["engagement"]["score"], fit=explained["fit"]["score"],
            grade=explained["fit"]["grade"],
        )

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
            transitions = apply_outcome(state, outcome, rs, now, reason)
            record = {
                "outcome": outcome, "reason": reason, "answers": answers or {}, "actor": actor, "source": source,
                "at": now, "stage_before": before, "stage_after": state.stage,
                "seconds_to_first_action": (now - handed_off_at) if first_action and handed_off_at else None,
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

    def erase(self, lead_id: str) -> dict[str, Any]:
        """Right to erasure: nothing about the lead remains (shadow scores live in its state)."""
        if self.leads.get(lead_id) is None:
            raise NotFound(f"no lead {lead_id}", details={"field": "lead_id"})
        return {"lead_id": lead_id, "erased_items": self.leads.erase(lead_id)}

    # -- reading ---------------------------------------------------------------------------------
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
        rs = self.rulesets.compiled(version) if version else self.rulesets.active()
        explained = explain(state, rs, now)
        events = self.leads.events(lead_id)[::-1]  # newest first
        page = events[cursor : cursor + limit]
        return {
            "lead_id": lead_id,
            "email": state.email,
            "attributes": state.attributes,
            "stage": state.stage,
            "stage_history": [{**h, "at": iso(h["at"])} for h in state.stage_history],
            "fit": explained["fit"]["score"],
            "grade": explained["fit"]["grade"],
            "engagement": round(explained["engagement"]["score"], 2),
            "engagement_at": iso(explained["engagement"]["at"]),
            "explanation": explained,
            "disqualified_reason": state.disqualified_reason,
            "handoff": {
                "handed_off_at": iso(state.handed_off_at), "route": state.route,
                "sla_deadline": iso(state.sla_deadline), "accepted_at": iso(state.accepted_at),
            },
            "ruleset_version": version,
            "first_seen": iso(state.first_seen),
            "event_count": state.event_count,
            "events": {
                "items": [{**e.to_dict(), "occurred_at": iso(e.ts)} for e in page],
                "total": len(events),
                "next_cursor": cursor + limit if cursor + limit < len(events) else None,
            },
            "outcomes": [{**o, "at": iso(o["at"])} for o in self.leads.outcomes(lead_id)],
        }


def _score_shadow(state: LeadState, events: Sequence[Event], rs: Any, now: float) -> None:
    """Score the same events under the pilot rule set, inside the same item: no extra round trip.

    A lead the shadow has not seen starts from its attributes; the shadow's re-score job replays
    its full history (``replayed``) so comparisons are fair.
    """
    version = rs.version
    view = shadow_view(state, version)
    replayed = bool(state.shadow and state.shadow.get("version") == version and state.shadow.get("replayed"))
    if view is None:
        view = new_lead(state.lead_id, state.email)
        view.attributes = dict(state.attributes)
    for event in events:
        apply_event(view, event, rs, now)  # transitions are recorded in the view, never announced
    state.shadow = {"version": version, "state": view.to_dict(), "replayed": replayed}


def _with_email(event: Event, email: str) -> Event:
    return Event(event.event_id, event.type, event.ts, email, event.anonymous_id, event.properties, event.traits,
                 event.source)


def _jittered_sleep(attempt: int) -> None:
    # Spread competing writers apart; bounded so a webhook sender never waits long.
    time.sleep(random.uniform(0, 0.01 * (2**attempt)))

