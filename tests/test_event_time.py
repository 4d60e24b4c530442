"""Event time: a lead's scores are a function of the set of its events and outcomes, whatever order
they arrive in (issue 21). A late event replays the lead's stored history; stages stay forward-only.

The reference is the pure timeline's sorted replay (``timeline.rebuild``) and the backtest of the
same events; the service runs on the in-memory store (and once on DynamoDB, in moto).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.backtest import backtest
from chalicelib.engine import explain
from chalicelib.events import Event
from chalicelib.leads import LeadService
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rulesets import RulesetService
from chalicelib.state import LeadState, lead_id_for
from chalicelib.store.base import LeadRepository
from chalicelib.store.memory import InMemoryLeads, InMemoryRulesets
from chalicelib.timeline import Outcome, rebuild, store_order

T0 = 1_767_571_200.0
DAY = 86400.0
EMAILS = ("ana@acme.io", "bo@gmail.com", "cy@rivalscore.io", "dee@bigcorp.com")
ANA = lead_id_for("ana@acme.io")
VP = {"job_title": "VP Sales", "company_size": 250, "industry": "saas", "country": "us"}
TYPES = (
    "page_view", "page_view", "email_open", "email_click", "content_download", "webinar_attended", "demo_request",
    "meeting_booked", "meeting_canceled", "unsubscribe", "trial_signup", "form_submitted", "spam_report",
)
TRAITS = ({}, VP, {"job_title": "Student"}, {"job_title": "Marketing Manager", "company_size": "40"},
          {"job_title": "Founder", "company_size": 5000})
GAPS = (0.0, 1.0, 90.0, 3600.0, DAY, 3 * DAY, 12 * DAY)
DELAYS = (0.0, 0.0, 0.0, 30.0, 3600.0, 2 * DAY, 20 * DAY)  # most arrive at once; some late, some very


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def service_on(store: LeadRepository, clock: Clock) -> LeadService:
    return LeadService(store, RulesetService(InMemoryRulesets(), clock), clock)


# -- the property -----------------------------------------------------------------------------------

@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[Event], list[tuple[float, int, Any]]]:
    """A history (events with emails, sales outcomes at their times) and how it arrives: each event
    at its time plus a delay, some twice, in batches of what arrives together, shuffled."""
    t = T0
    events: list[Event] = []
    for i in range(draw(st.integers(1, 30))):
        t += draw(st.sampled_from(GAPS))
        typ = draw(st.sampled_from(TYPES))
        props: dict[str, Any] = {"path": draw(st.sampled_from(("/pricing", "/blog/x", "/")))} if typ == "page_view" else {}
        traits = draw(st.sampled_from(TRAITS)) if typ in ("form_submitted", "demo_request", "page_view") else {}
        events.append(Event(f"e{i:02d}", typ, t, draw(st.sampled_from(EMAILS)), None, props, traits, "test"))
    deliveries: list[tuple[float, int, Any]] = []
    for event in events:
        for _ in range(draw(st.sampled_from((1, 1, 1, 2)))):  # a sender's redelivery
            deliveries.append((event.ts + draw(st.sampled_from(DELAYS)), draw(st.integers(0, 3)), event))
    for _ in range(draw(st.integers(0, 3))):
        outcome = draw(st.sampled_from(("accepted", "recycled", "rejected", "won", "disqualified")))
        at = T0 + draw(st.sampled_from(GAPS)) * draw(st.integers(1, 8)) + 0.5
        deliveries.append((at, 0, Outcome(outcome, at, email=draw(st.sampled_from(EMAILS)))))
    # Arrival: by delivery time; what arrives in the same slot goes in one batch, in a shuffled order.
    deliveries.sort(key=lambda d: (d[0], d[1]))
    seed = draw(st.integers(0, 2**16))
    return events, [(at, seed, item) for at, _, item in deliveries]


def deliver(service: LeadService, clock: Clock, schedule: list[tuple[float, int, Any]]) -> None:
    batch: list[Event] = []
    shuffle = random.Random(schedule[0][1] if schedule else 0).shuffle

    def send() -> None:
        shuffle(batch)
        service.ingest(list(batch))
        batch.clear()

    for i, (at, _, item) in enumerate(schedule):
        clock.now = max(clock.now, at)
        if isinstance(item, Outcome):
            if batch:
                send()
            if service.leads.get(item.lead_key) is not None:  # the API refuses outcomes for unknown leads
                service.record_outcome(item.lead_key, item.outcome)
            continue
        batch.append(item)
        if len(batch) >= 4 or i + 1 == len(schedule) or schedule[i + 1][0] != at:
            send()


def view(state: LeadState, rs: CompiledRuleset, at: float) -> dict[str, Any]:
    """What must not depend on arrival: fit, engagement and the explanation's reasons."""
    explained = explain(state, rs, at)
    return {
        "fit": explained["fit"]["score"], "fit_rules": [r["rule"] for r in explained["fit"]["rules"]],
        "engagement": round(explained["engagement"]["score"], 6),
        "engagement_rules": {r["rule"]: round(r["points"], 6) for r in explained["engagement"]["rules"]},
        "attributes": state.attributes,
    }


def assert_event_time(store: LeadRepository, service: LeadService, events: list[Event], at: float) -> int:
    """Every lead equals the sorted replay of its events and outcomes, and the backtest of them;
    the stage is the replay's, or one the service had already announced. Returns the leads checked."""
    rs = service.rulesets.active()
    outcomes: list[Outcome] = []
    checked = 0
    for email in dict.fromkeys(e.email for e in events):
        assert email is not None
        lead_id = lead_id_for(email)
        stored = store.get(lead_id)
        assert stored is not None
        state = stored.state
        mine = sorted({e.event_id: e for e in reversed(events) if e.email == email}.values(), key=store_order)
        feedback = [Outcome.from_record(lead_id, r) for r in store.outcomes(lead_id)]
        outcomes += feedback
        expected, _ = rebuild(lead_id, email, mine, feedback, rs)
        assert view(state, rs, at) == view(expected, rs, at), email
        assert state.event_count == len(mine) == len(store.events(lead_id))
        announced = {h["stage"] for h in state.stage_history}
        assert state.stage == expected.stage or state.stage in announced, (state.stage, expected.stage)
        if not any("revised" in h for h in state.stage_history):  # nothing announced was revised
            assert (state.stage, state.disqualified_reason) == (expected.stage, expected.disqualified_reason)
        checked += 1
    distinct = sorted({e.event_id: e for e in reversed(events)}.values(), key=store_order)
    result = backtest(distinct, rs, sorted(outcomes, key=lambda o: o.ts))
    for report in result.leads:
        final = result.state(report.lead_id)
        stored = store.get(report.lead_id)
        assert final is not None and stored is not None
        assert view(final, rs, at) == view(stored.state, rs, at)
    return checked


def sql_alerts(store: InMemoryLeads) -> list[str]:
    """The SQL alerts the lead writes put in the outbox (one per transition id, or a conflict)."""
    return [i.id for i in store.outbox.pending(10_000) if i.kind == "handoff" and i.body["stage"] == "sql"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals())
def test_shuffled_duplicated_and_delayed_arrival_scores_like_the_sorted_replay_and_the_backtest(
    history: tuple[list[Event], list[tuple[float, int, Any]]],
) -> None:
    events, schedule = history
    store, clock = InMemoryLeads(), Clock(T0)
    service = service_on(store, clock)
    deliver(service, clock, schedule)
    assert_event_time(store, service, events, clock.now + DAY)
    alerts = sql_alerts(store)
    assert len(alerts) == len(set(alerts)), "an SQL alerted twice"


def test_shuffled_arrival_on_dynamodb_scores_like_the_sorted_replay(moto_aws: dict[str, str]) -> None:
    from chalicelib.store.dynamodb import DynamoDBLeads

    rng = random.Random(21)
    events: list[Event] = []
    for i in range(60):
        email = EMAILS[i % 3]
        typ = rng.choice(TYPES)
        traits = rng.choice(TRAITS) if typ in ("form_submitted", "demo_request") else {}
        events.append(Event(f"m{i:02d}", typ, T0 + i * 3 * 3600, email, None, {"path": "/pricing"}, traits, "test"))
    arriving = events + rng.sample(events, 15)  # redeliveries
    rng.shuffle(arriving)
    store = DynamoDBLeads(moto_aws["LeadsTableName"], moto_aws["OutboxTableName"])
    clock = Clock(T0 + 10 * DAY)
    service = service_on(store, clock)
    for n in range(0, len(arriving), 3):
        service.ingest(arriving[n : n + 3])
    assert assert_event_time(store, service, events, clock.now + DAY) == 3


# -- the late path, step by step --------------------------------------------------------------------

@pytest.fixture
def store() -> InMemoryLeads:
    return InMemoryLeads()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 30 * DAY)


@pytest.fixture
def service(store: InMemoryLeads, clock: Clock) -> LeadService:
    return service_on(store, clock)


def calls_for(store: InMemoryLeads, do: Callable[[], Any]) -> int:
    before = store.calls
    do()
    return store.calls - before


def ev(event_id: str, days: float, typ: str = "page_view", traits: dict[str, Any] | None = None) -> Event:
    return Event(event_id, typ, T0 + days * DAY, "ana@acme.io", None, {"path": "/pricing"}, traits or {}, "api")


def test_in_order_events_cost_two_calls_and_late_ones_three(service: LeadService, store: InMemoryLeads) -> None:
    assert calls_for(store, lambda: service.ingest([ev("a", 1, traits=VP)])) == 2
    assert calls_for(store, lambda: service.ingest([ev("b", 3)])) == 2  # newer: applied on top
    assert calls_for(store, lambda: service.ingest([ev("c", 2, "trial_signup")])) == 3  # late: history read
    assert calls_for(store, lambda: service.ingest([ev("d", 3)])) == 3  # the same instant as the newest
    assert [e.event_id for e in store.events(ANA)] == ["a", "c", "b", "d"]


def test_a_late_event_scores_as_if_it_had_come_in_order(service: LeadService, store: InMemoryLeads) -> None:
    history = [ev("a", 1, traits=VP), ev("b", 2, "webinar_attended"), ev("c", 3, "webinar_attended"),
               ev("d", 4, "webinar_attended"), ev("e", 5, "email_click")]
    for event in (history[0], history[4], history[3], history[1], history[2]):  # caps count in event time
        service.ingest([event])
    stored = store.get(ANA)
    assert stored is not None
    rs = service.rulesets.active()
    expected, _ = rebuild(ANA, "ana@acme.io", history, [], rs)
    assert view(stored.state, rs, T0 + 9 * DAY) == view(expected, rs, T0 + 9 * DAY)


def test_a_redelivered_late_event_changes_nothing(service: LeadService, store: InMemoryLeads) -> None:
    service.ingest([ev("a", 1, traits=VP)])
    service.ingest([ev("b", 2, "trial_signup")])
    for n in range(600):  # push "a" out of the state's recent-id memory
        service.ingest([ev(f"v{n}", 3 + n / 1000)])
    before = store.get(ANA)
    assert before is not None and not before.state.seen("a")
    answer: dict[str, Any] = {}
    assert calls_for(store, lambda: answer.update(service.ingest([ev("a", 1, traits=VP)]))) == 2  # no write
    assert (answer["accepted"], answer["duplicates"]) == (0, 1)
    after = store.get(ANA)
    assert after is not None and after.version == before.version and after.state == before.state


def test_a_late_event_never_takes_back_an_announced_sql_and_notes_the_revision(
    service: LeadService, store: InMemoryLeads, clock: Clock
) -> None:
    service.ingest([ev("demo", 10, "demo_request", VP)])  # an A-grade hand-raiser: fast-tracked, alerted
    first = store.get(ANA)
    assert first is not None and first.state.stage == "sql" and len(sql_alerts(store)) == 1
    # A form filled days before says "student": in event time the lead was disqualified first.
    answer = service.ingest([ev("early", 5, "form_submitted", {"job_title": "Student"})])
    assert answer["leads"][0]["transitions"] == []
    state = store.get(ANA).state  # type: ignore[union-attr]
    assert state.stage == "sql", "stages already announced stand"
    assert state.handed_off_at == first.state.handed_off_at and state.route == first.state.route
    note = state.stage_history[-1]
    assert "transition_id" not in note and note["stage"] == "sql"
    assert note["revised"] == [{"stage": "disqualified", "at": T0 + 5 * DAY}]
    assert "late event early" in note["reason"] and "changed past transitions" in note["reason"]
    assert len(sql_alerts(store)) == 1, "no new alert"
    # The SQL alert the buttons act on is still the first transition, not the note.
    from chalicelib.handoff.reminders import sql_transition

    found = sql_transition(state)
    assert found is not None and found.id == first.state.stage_history[-1]["transition_id"]
    # Another late event that leaves the revision as it is adds no second note.
    clock.now += 60
    service.ingest([ev("early2", 6)])
    assert sum("revised" in h for h in store.get(ANA).state.stage_history) == 1  # type: ignore[union-attr]
    body = service.get(ANA)
    assert body["stage_history"][-1]["revised"] == [{"stage": "disqualified", "at": "2026-01-10T00:00:00Z"}]


def test_a_late_event_that_qualifies_the_lead_is_announced_once(service: LeadService, store: InMemoryLeads) -> None:
    service.ingest([ev("a", 1, "page_view", VP)])
    service.ingest([ev("b", 5, "page_view")])
    assert store.get(ANA).state.stage == "lead"  # type: ignore[union-attr]
    answer = service.ingest([ev("demo", 2, "demo_request")])  # late, and a hand-raiser
    lead = answer["leads"][0]
    assert lead["stage"] == "sql" and lead["handed_to_sales"]
    state = store.get(ANA).state  # type: ignore[union-attr]
    # Nothing announced was revised: the replay stands as in-order arrival would have made it.
    assert not any("revised" in h for h in state.stage_history)
    assert [(h["stage"], h["at"]) for h in state.stage_history] == [("sql", T0 + 2 * DAY)]
    assert len(sql_alerts(store)) == 1
    service.ingest([ev("demo", 2, "demo_request")])  # redelivered
    assert len(sql_alerts(store)) == 1


def test_an_event_dated_before_a_recycle_counts_before_it(
    service: LeadService, store: InMemoryLeads, clock: Clock
) -> None:
    service.ingest([ev("demo", 1, "demo_request", VP)])
    clock.now = T0 + 3 * DAY
    service.record_outcome(ANA, "recycled")
    recycled = store.get(ANA)
    assert recycled is not None and recycled.state.engagement_by_rule == {}
    clock.now = T0 + 4 * DAY
    assert calls_for(store, lambda: service.ingest([ev("trial", 2, "trial_signup")])) == 3
    state = store.get(ANA).state  # type: ignore[union-attr]
    assert state.stage == "recycled" and state.engagement_by_rule == {}, "the recycle reset it, in event time"


def test_a_late_event_after_an_erasure_keeps_the_tombstone(service: LeadService, store: InMemoryLeads) -> None:
    service.ingest([ev("old", 1, traits=VP)])
    store.erase(ANA, T0 + 2 * DAY)
    service.ingest([ev("new", 6)])  # a new signup after the erasure
    service.ingest([ev("late", 4)])  # late (replays), and after the erasure: it counts
    service.ingest([ev("before", 1.5)])  # dated before the erasure: dropped
    state = store.get(ANA).state  # type: ignore[union-attr]
    assert state.erased_at == T0 + 2 * DAY
    assert [e.event_id for e in store.events(ANA)] == ["late", "new"]
    assert state.event_count == 2


def test_a_history_past_the_replay_bound_takes_late_events_in_arrival_order(
    service: LeadService, store: InMemoryLeads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender can grow one lead's history and date every further event in the past: each would
    read and replay all of it. Past ``MAX_REPLAYED`` events a late event is applied as it comes
    (no history read), still scored, still stored once, and counted in a metric."""
    from chalicelib import leads

    counted: list[tuple[str, float]] = []
    monkeypatch.setattr(leads, "MAX_REPLAYED", 4)
    monkeypatch.setattr(leads, "metric", lambda name, value, *a, **k: counted.append((name, value)))
    for n in range(4):
        service.ingest([ev(f"v{n}", 5 + n, traits=VP if n == 0 else None)])
    assert calls_for(store, lambda: service.ingest([ev("late1", 1)])) == 3, "at the bound: replayed"
    assert ("LateEvents", 1) in counted and store.get(ANA).state.event_count == 5  # type: ignore[union-attr]
    before = service.get(ANA)["engagement"]
    assert calls_for(store, lambda: service.ingest([ev("late2", 2, "webinar_attended")])) == 2, "past it: no read"
    state = store.get(ANA).state  # type: ignore[union-attr]
    assert service.get(ANA)["engagement"] > before
    assert state.event_count == 6 and state.last_seen == T0 + 8 * DAY
    assert ("LateEventsInArrivalOrder", 1) in counted
    assert [e.event_id for e in store.events(ANA)][:2] == ["late1", "late2"]  # stored in event time all the same
    for n in range(600):  # push "late2" out of the state's recent-id memory
        service.ingest([ev(f"w{n}", 9 + n / 1000)])
    settled = store.get(ANA)
    assert settled is not None and not settled.state.seen("late2")
    answer = service.ingest([ev("late2", 2, "webinar_attended")])  # a redelivery: the store stops it
    assert (answer["accepted"], answer["duplicates"]) == (0, 1)
    after = store.get(ANA)
    assert after is not None and after.version == settled.version
