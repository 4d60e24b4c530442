"""One contract, two implementations: every test runs on the in-memory twin and on DynamoDB (moto)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.errors import ConcurrencyConflict, Conflict, DuplicateEvents, NotFound
from chalicelib.events import Event
from chalicelib.outbox.items import OutboxItem
from chalicelib.state import LeadState
from chalicelib.store.base import ActivePointer, Commit, VisitorLink


@pytest.fixture(params=["memory", "dynamodb"])
def repos(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if request.param == "memory":
        from chalicelib.store.memory import InMemoryLeads, InMemoryRulesets

        leads = InMemoryLeads()
        yield {"leads": leads, "outbox": leads.outbox, "rulesets": InMemoryRulesets()}
        return
    request.getfixturevalue("moto_aws")
    from chalicelib.store.dynamodb import DynamoDBLeads, DynamoDBOutbox, DynamoDBRulesets

    yield {
        "leads": DynamoDBLeads(os.environ["BATON_LEADS_TABLE"], os.environ["BATON_OUTBOX_TABLE"]),
        "outbox": DynamoDBOutbox(os.environ["BATON_OUTBOX_TABLE"]),
        "rulesets": DynamoDBRulesets(os.environ["BATON_RULESETS_TABLE"]),
    }


def _event(n: int, ts: float = 1000.0) -> Event:
    return Event(f"e{n}", "page_view", ts + n, "a@b.io", None, {"path": "/pricing"}, {}, "api")


def _outbox(item_id: str) -> OutboxItem:
    return OutboxItem(item_id, "handoff", {"x": 1}, {"stage": "sql"}, 5.0)


def test_new_lead_round_trip(repos: dict[str, Any]) -> None:
    leads = repos["leads"]
    assert leads.get("L1") is None
    state = LeadState("L1", email="a@b.io", stage="mql", last_seen=1.5)
    assert leads.commit(Commit(state, 0, [_event(1), _event(2)], [_outbox("t1")])) == 1
    stored = leads.get("L1")
    assert stored.version == 1 and stored.state.to_dict() == state.to_dict()
    assert [e.event_id for e in leads.events("L1")] == ["e1", "e2"]
    assert [i.id for i in repos["outbox"].pending()] == ["t1"]
    assert leads.lead_ids() == ["L1"]


def test_stale_version_is_a_conflict_and_writes_nothing(repos: dict[str, Any]) -> None:
    leads = repos["leads"]
    leads.commit(Commit(LeadState("L1"), 0))
    with pytest.raises(ConcurrencyConflict):
        leads.commit(Commit(LeadState("L1", stage="sql"), 0, [_event(9)]))
    assert leads.get("L1").state.stage == "lead"
    assert leads.events("L1") == []


def test_redelivered_event_is_reported_and_nothing_written(repos: dict[str, Any]) -> None:
    leads = repos["leads"]
    leads.commit(Commit(LeadState("L1"), 0, [_event(1)]))
    with pytest.raises(DuplicateEvents) as caught:
        leads.commit(Commit(LeadState("L1", stage="mql"), 1, [_event(2), _event(1)]))
    assert caught.value.event_ids == ["e1"]
    assert leads.get("L1").version == 1
    assert [e.event_id for e in leads.events("L1")] == ["e1"]


def test_outcomes_links_and_anonymous_events(repos: dict[str, Any]) -> None:
    leads = repos["leads"]
    anon = Event("a1", "page_view", 10.0, None, "anon-1", {}, {}, "api")
    assert leads.save_anonymous("anon-1", [anon, anon]) == 1
    assert leads.save_anonymous("anon-1", [anon]) == 0
    assert [e.event_id for e in leads.anonymous_events("anon-1")] == ["a1"]
    assert leads.visitor_link("anon-1") is None
    leads.commit(
        Commit(LeadState("L1"), 0, [anon], outcomes=[{"outcome": "won", "at": 7.0}],
               link_anonymous="anon-1", consumed_anonymous=[("anon-1", "a1")])
    )
    assert leads.visitor_link("anon-1") == VisitorLink("L1")
    assert leads.anonymous_events("anon-1") == []
    assert leads.outcomes("L1") == [{"outcome": "won", "at": 7.0}]


def test_history_reads_events_and_outcomes_together(repos: dict[str, Any]) -> None:
    """What a late event replays: the lead's events (time, then id) and outcomes, links left out."""
    leads = repos["leads"]
    events = [Event(i, "page_view", ts, "x@acme.io", None, {}, {}, "api") for i, ts in (("b", 5.0), ("a", 5.0), ("c", 1.0))]
    leads.commit(Commit(LeadState("L1"), 0, events, outcomes=[{"outcome": "won", "at": 7.0}], link_anonymous="v1"))
    leads.commit(Commit(LeadState("L1"), 1, outcomes=[{"outcome": "lost", "at": 9.0}]))
    leads.commit(Commit(LeadState("L2"), 0, [Event("z", "page_view", 2.0, "y@acme.io", None, {}, {}, "api")]))
    found, outcomes = leads.history("L1")
    assert [e.event_id for e in found] == ["c", "a", "b"]
    assert [o["outcome"] for o in outcomes] == ["won", "lost"]
    assert leads.history("L3") == ([], [])


def test_sla_due_lists_unaccepted_sqls_past_deadline(repos: dict[str, Any]) -> None:
    leads = repos["leads"]
    leads.commit(Commit(LeadState("L1", stage="sql", sla_deadline=100.0), 0))
    leads.commit(Commit(LeadState("L2", stage="sql", sla_deadline=300.0), 0))
    leads.commit(Commit(LeadState("L3", stage="sql", sla_deadline=50.0, accepted_at=60.0), 0))
    assert leads.sla_due(200.0) == ["L1"]
    assert leads.sla_due(400.0) == ["L1", "L2"]


def test_outbox_claims_are_exclusive(repos: dict[str, Any]) -> None:
    outbox = repos["outbox"]
    assert outbox.claim("t1", 60) is True
    assert outbox.claim("t1", 60) is False
    outbox.release("t1")
    assert outbox.claim("t1", 60) is True
    outbox.put(_outbox("x1"))
    outbox.put(_outbox("x1"))
    assert [i.id for i in outbox.pending()] == ["x1"]
    outbox.mark_published("x1", 10.0)
    assert outbox.pending() == []


def test_ruleset_versions_and_atomic_publish(repos: dict[str, Any]) -> None:
    rulesets = repos["rulesets"]
    v1 = rulesets.create("a", {"name": "a"}, "c1", 1.0)
    v2 = rulesets.create("b", {"name": "b"}, "c2", 2.0)
    assert (v1.version, v2.version) == (1, 2)
    assert [v.name for v in rulesets.versions()] == ["a", "b"]
    empty = rulesets.active()
    assert empty.version is None
    rulesets.set_active(empty, 1, (), 3.0)
    with pytest.raises(Conflict):  # a second publisher that read the same pointer loses
        rulesets.set_active(empty, 2, (), 4.0)
    current = rulesets.active()
    assert current.version == 1
    rulesets.set_active(current, 2, (1,), 5.0)
    assert rulesets.active() == ActivePointer(2, (1,), 5.0)
    with pytest.raises(NotFound):
        rulesets.set_active(rulesets.active(), 99, (1, 2), 6.0)


def test_erase_removes_everything_about_a_lead(repos: dict[str, Any]) -> None:
    leads = repos["leads"]
    leads.commit(Commit(LeadState("L1"), 0, [_event(1)], [OutboxItem("t9", "handoff", {"lead_id": "L1"}, {}, 1.0)],
                        outcomes=[{"outcome": "won", "at": 2.0}], link_anonymous="anon-1"))
    leads.commit(Commit(LeadState("L2"), 0, [_event(2)]))
    assert leads.erase("L1", 100.0) == 6  # state (now its tombstone), event, outcome, link + reverse link, outbox message
    assert leads.get("L1") is None and leads.events("L1") == [] and leads.outcomes("L1") == []
    assert leads.visitor_link("anon-1") is None
    assert repos["outbox"].pending() == []
    assert leads.get("L2") is not None


def test_an_erased_lead_leaves_a_tombstone_that_a_new_lead_replaces(repos: dict[str, Any]) -> None:
    from chalicelib.store.base import Erased

    leads = repos["leads"]
    leads.commit(Commit(LeadState("L1", email="a@b.io"), 0, [_event(1)]))
    leads.erase("L1", 500.0)
    assert leads.get("L1") is None  # readers see no lead ...
    assert leads.load("L1") == Erased(500.0)  # ... writers see when it was erased, in the same read
    assert "L1" not in leads.lead_ids()
    assert leads.commit(Commit(LeadState("L1", erased_at=500.0), 0, [_event(9, ts=600.0)])) == 1
    found = leads.load("L1")
    assert found.version == 1 and found.state.erased_at == 500.0
    assert leads.lead_ids() == ["L1"]
    with pytest.raises(ConcurrencyConflict):  # a second writer that read the tombstone loses
        leads.commit(Commit(LeadState("L1"), 0, [_event(10, ts=700.0)]))


def _listed(n: int, stage: str, at: float, **fields: Any) -> LeadState:
    history = [{"stage": stage, "at": at, "reason": "r", "transition_id": f"t{n}", "ruleset_version": 1}]
    return LeadState(f"L{n:024x}", email=f"p{n}@acme.io", stage=stage, stage_history=history, first_seen=at,
                     **fields)


def test_lists_by_stage_newest_first_filtered_and_paged(repos: dict[str, Any]) -> None:
    from chalicelib.lead_list import LeadQuery

    leads = repos["leads"]
    states = [
        _listed(1, "sql", 100.0, route="emea", handed_off_at=100.0, sla_deadline=200.0),
        _listed(2, "sql", 300.0, route="emea", handed_off_at=300.0, sla_deadline=400.0, accepted_at=350.0,
                owner="slack:U1"),
        _listed(3, "sql", 500.0, route="enterprise", handed_off_at=500.0, sla_reminders=2),
        _listed(4, "mql", 600.0),
        LeadState(f"L{5:024x}", stage="lead", first_seen=50.0),
    ]
    for state in states:
        leads.commit(Commit(state, 0))
    ids = lambda found: [e["lead_id"][-1] for e in found[0]]  # noqa: E731
    assert ids(leads.list_leads(LeadQuery("sql"), 1000.0)) == ["3", "2", "1"]
    assert ids(leads.list_leads(LeadQuery("lead"), 1000.0)) == ["5"]
    assert ids(leads.list_leads(LeadQuery("sql", route="emea"), 1000.0)) == ["2", "1"]
    assert ids(leads.list_leads(LeadQuery("sql", owner="slack:U1"), 1000.0)) == ["2"]
    assert ids(leads.list_leads(LeadQuery("sql", since=300.0), 1000.0)) == ["3", "2"]
    assert ids(leads.list_leads(LeadQuery("sql", awaiting="sales"), 1000.0)) == ["3", "1"]
    # Overdue candidates: reminded already, or past the stored deadline.
    assert ids(leads.list_leads(LeadQuery("sql", awaiting="overdue"), 150.0)) == ["3"]
    assert ids(leads.list_leads(LeadQuery("sql", awaiting="overdue"), 250.0)) == ["3", "1"]
    (entry,), position = leads.list_leads(LeadQuery("sql", limit=1), 1000.0)
    assert entry == {"lead_id": f"L{3:024x}", "stage": "sql", "stage_at": 500.0, "email": "p3@acme.io",
                     "route": "enterprise", "handed_off_at": 500.0, "sla_reminders": 2}
    rest, end = leads.list_leads(LeadQuery("sql", limit=2, after=position), 1000.0)
    assert [e["lead_id"][-1] for e in rest] == ["2", "1"] and end is None
