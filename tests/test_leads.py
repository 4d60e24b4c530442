"""The live service reads a batch through the lead timeline, with what its store knows of the visitors."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import leads
from chalicelib.events import Event
from chalicelib.handoff import body
from chalicelib.leads import LeadService
from chalicelib.rulesets import RulesetService
from chalicelib.state import lead_id_for
from chalicelib.store.base import Commit, VisitorLink
from chalicelib.store.memory import InMemoryLeads, InMemoryRulesets

T0 = 1_767_571_200.0
ANA, BO = lead_id_for("ana@acme.io"), lead_id_for("bo@acme.io")


class Transactions(InMemoryLeads):
    """The in-memory store, noting how many items each commit would be in one DynamoDB transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def commit(self, commit: Commit) -> int:
        self.sizes.append(1 + len(commit.events) + len(commit.outbox) + len(commit.outcomes)
                          + 2 * bool(commit.link_anonymous) + len(commit.consumed_anonymous))
        return super().commit(commit)


@pytest.fixture
def store() -> Transactions:
    return Transactions()


@pytest.fixture
def service(store: Transactions) -> LeadService:
    clock = lambda: T0 + 86400  # noqa: E731
    return LeadService(store, RulesetService(InMemoryRulesets(), clock), clock)


def view(event_id: str, t: float, email: str | None = None, visitor: str | None = None) -> Event:
    return Event(event_id, "page_view", T0 + t, email, visitor, {"path": "/pricing"})


def identify(event_id: str, t: float, email: str, visitor: str) -> Event:
    return Event(event_id, "identify", T0 + t, email, visitor, {}, {"job_title": "VP Sales"})


def stored_ids(store: InMemoryLeads, lead_id: str) -> list[str]:
    return [e.event_id for e in store.events(lead_id)]


def test_an_identify_adopts_the_visits_before_it_in_the_batch_and_takes_those_after(
    service: LeadService, store: Transactions
) -> None:
    answer = service.ingest([view("a3", 30, visitor="v1"), identify("i1", 20, "ana@acme.io", "v1"),
                             view("a1", 0, visitor="v1"), view("a2", 10, visitor="v1")])
    assert (answer["accepted"], answer["pending_identity"]) == (4, 0)
    assert stored_ids(store, ANA) == ["a1", "a2", "i1", "a3"]
    state = store.get(ANA).state  # type: ignore[union-attr]
    assert list(state.recent_ids) == ["a1", "a2", "i1", "a3"]  # applied in time order, adopted before the identify
    assert store.visitor_link("v1") == VisitorLink(ANA) and store.anonymous_events("v1") == []
    # Adopted visits are stored with the lead's email; a linked visitor's later ones as they came.
    assert [e.email for e in store.events(ANA)] == ["ana@acme.io", "ana@acme.io", "ana@acme.io", None]


def test_stored_visits_are_adopted_and_consumed_within_a_transaction_s_limits(
    service: LeadService, store: Transactions
) -> None:
    visits = [view(f"a{n:03d}", n, visitor="v1") for n in range(120)]
    assert service.ingest(visits)["pending_identity"] == 120
    result = service.identify(identify("i1", 500, "ana@acme.io", "v1"))
    assert len(result.scored) == 121 and result.state.event_count == 121
    assert max(store.sizes) <= 100 and len(store.sizes) == 3  # each adopted visit is a put and a delete
    assert store.anonymous_events("v1") == [] and store.visitor_link("v1") == VisitorLink(ANA)
    assert stored_ids(store, ANA)[-1] == "i1"


def test_a_visitor_brings_at_most_its_newest_waiting_events_to_its_lead(
    service: LeadService, store: Transactions
) -> None:
    # A bot's thousands of page views under one anonymous id: identifying it adopts the newest
    # MAX_ADOPTED in a bounded number of writes; the others wait unread until they expire.
    extra = 30
    visits = [view(f"a{n:04d}", n, visitor="v1") for n in range(leads.MAX_ADOPTED + extra)]
    for start in range(0, len(visits), 500):
        service.ingest(visits[start:start + 500])
    result = service.identify(identify("i1", 10_000, "ana@acme.io", "v1"))
    assert len(result.scored) == leads.MAX_ADOPTED + 1
    assert stored_ids(store, ANA)[0] == f"a{extra:04d}" and stored_ids(store, ANA)[-1] == "i1"
    assert len(store.sizes) == -(-leads.MAX_ADOPTED // 45) and max(store.sizes) <= 100
    assert [e.event_id for e in store.anonymous_events("v1")] == [f"a{n:04d}" for n in range(extra)]


def test_one_batch_may_link_two_visitors_to_one_lead(service: LeadService, store: Transactions) -> None:
    service.ingest([view("a1", 0, visitor="v1"), view("b1", 1, visitor="v2")])
    answer = service.ingest([identify("i1", 10, "ana@acme.io", "v1"), identify("i2", 11, "ana@acme.io", "v2")])
    assert [lead["lead_id"] for lead in answer["leads"]] == [ANA]
    assert answer["accepted"] == 4 and len(store.sizes) == 2  # one link per write
    assert (store.visitor_link("v1"), store.visitor_link("v2")) == (VisitorLink(ANA), VisitorLink(ANA))
    assert stored_ids(store, ANA) == ["a1", "b1", "i1", "i2"]


def test_a_shared_computer_keeps_its_first_link(service: LeadService, store: Transactions) -> None:
    service.ingest([view("a1", 0, visitor="v1"), identify("i1", 10, "ana@acme.io", "v1")])
    result = service.identify(identify("i2", 20, "bo@acme.io", "v1"))
    assert result.lead_id == BO and result.scored == ["i2"]
    assert store.visitor_link("v1") == VisitorLink(ANA)
    answer = service.ingest([view("a2", 30, visitor="v1")])
    assert [lead["lead_id"] for lead in answer["leads"]] == [ANA]


def test_redeliveries_within_a_batch_are_counted_not_scored(service: LeadService) -> None:
    answer = service.ingest([view("e1", 0, "ana@acme.io"), view("e1", 0, "ana@acme.io"),
                             view("a1", 0, visitor="v9"), view("a1", 0, visitor="v9")])
    assert (answer["accepted"], answer["duplicates"], answer["pending_identity"]) == (2, 2, 1)
    again = service.ingest([view("e1", 0, "ana@acme.io")])
    assert (again["accepted"], again["duplicates"]) == (0, 1)


def test_explain_runs_once_per_write(service: LeadService, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []

    def counted(state: Any, rs: Any, now: float) -> dict[str, Any]:
        calls.append(now)
        return explain(state, rs, now)

    explain = leads.explain
    monkeypatch.setattr(leads, "explain", counted)
    monkeypatch.setattr(body, "explain", counted)
    demo = Event("d1", "demo_request", T0, "ana@acme.io", None, {"form_id": "demo"},
                 {"job_title": "VP Sales", "company_size": 300, "country": "US"})
    result = service.ingest([demo])
    assert result["leads"][0]["handed_to_sales"]  # an SQL: its handoff message is in the same write
    assert len(calls) == 1
