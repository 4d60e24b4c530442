"""Delivery records, claims and send slots: one contract, run on the in-memory twin and on DynamoDB (moto)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.outbox.items import OutboxItem
from chalicelib.state import LeadState
from chalicelib.store.base import Backlog, Commit


@pytest.fixture(params=["memory", "dynamodb"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """(leads, outbox) of one implementation."""
    if request.param == "memory":
        from chalicelib.store.memory import InMemoryLeads

        leads = InMemoryLeads()
        yield leads, leads.outbox
        return
    request.getfixturevalue("moto_aws")
    from chalicelib.store.dynamodb import DynamoDBLeads, DynamoDBOutbox

    yield (DynamoDBLeads(os.environ["BATON_LEADS_TABLE"], os.environ["BATON_OUTBOX_TABLE"]),
           DynamoDBOutbox(os.environ["BATON_OUTBOX_TABLE"]))


@pytest.fixture
def outbox(stores: tuple[Any, Any]) -> Any:
    return stores[1]


def _item(item_id: str, created_at: float = 100.0, lead_id: str = "L1", kind: str = "handoff") -> OutboxItem:
    return OutboxItem(item_id, kind, {"lead_id": lead_id, "lead": {"first_name": "Ada"}}, {"stage": "sql"}, created_at)


def test_a_committed_message_is_pending_until_published_then_due(outbox: Any) -> None:
    outbox.put(_item("t1"))
    record = outbox.delivery("t1")
    assert (record.status, record.published, record.attempts, record.next_attempt_at) == ("pending", False, 0, None)
    assert record.item == _item("t1") and record.retry_from == 100.0
    assert outbox.due(10_000.0) == []
    outbox.mark_published("t1", 130.0)
    assert outbox.pending() == []
    assert outbox.delivery("t1").published is True
    assert outbox.due(129.0) == [] and outbox.due(130.0) == [(130.0, "t1")]
    assert outbox.delivery("nope") is None


def test_publishing_never_overwrites_what_an_attempt_recorded(outbox: Any) -> None:
    outbox.put(_item("t1"))
    assert outbox.reschedule("t1", 140.0, 1, "Slack incoming webhook failed: HTTP 500")  # the consumer was first
    outbox.mark_published("t1", 130.0)
    record = outbox.delivery("t1")
    assert (record.attempts, record.next_attempt_at, record.last_error) == (
        1, 140.0, "Slack incoming webhook failed: HTTP 500")
    assert outbox.pending() == [], "it left the relay's queue with the attempt"


def test_due_lists_the_soonest_first_up_to_a_limit(outbox: Any) -> None:
    for n, at in enumerate([300.0, 100.0, 200.0]):
        outbox.put(_item(f"t{n}"))
        outbox.mark_published(f"t{n}", at)
    assert outbox.due(250.0) == [(100.0, "t1"), (200.0, "t2")]
    assert outbox.due(1_000.0, limit=1) == [(100.0, "t1")]


def test_delivered_drops_the_body_leaves_the_queues_and_marks_the_claim_posted(outbox: Any) -> None:
    outbox.put(_item("t1"))
    outbox.mark_published("t1", 130.0)
    assert outbox.claim("slack:t1", 60, now=131.0, lease_seconds=600)
    assert not outbox.posted("slack:t1")
    outbox.mark_posted("slack:t1", 132.0)
    assert outbox.posted("slack:t1") and not outbox.posted("slack:t2")
    outbox.mark_delivered("t1", 132.0, attempts=1)
    record = outbox.delivery("t1")
    assert (record.status, record.item, record.attempts, record.delivered_at) == ("delivered", None, 1, 132.0)
    assert record.summary()["next_attempt_at"] is None
    assert outbox.due(10_000.0) == []
    assert not outbox.reschedule("t1", 200.0, 2) and not outbox.park("t1", 200.0, 2, "x")
    # posted: never taken over, however old
    assert not outbox.claim("slack:t1", 60, now=10_000.0, lease_seconds=600)


def test_a_stale_claim_that_never_posted_is_taken_over(outbox: Any) -> None:
    assert outbox.claim("slack:t1", 60, now=100.0, lease_seconds=600)
    assert not outbox.claim("slack:t1", 60, now=650.0, lease_seconds=600), "still within the lease"
    assert not outbox.claim("slack:t1", 60, now=800.0), "without a lease: never"
    assert outbox.claim("slack:t1", 60, now=800.0, lease_seconds=600), "the holder died mid-attempt"
    assert not outbox.claim("slack:t1", 60, now=801.0, lease_seconds=600)


def test_parked_then_redriven_once(outbox: Any) -> None:
    outbox.put(_item("t1"))
    outbox.mark_published("t1", 130.0)
    assert outbox.reschedule("t1", 200.0, 3, "HTTP 500")
    assert outbox.park("t1", 300.0, 4, "HTTP 500")
    assert not outbox.park("t1", 301.0, 4, "HTTP 500"), "parked once"
    record = outbox.delivery("t1")
    assert (record.status, record.attempts, record.last_error, record.item) == ("parked", 4, "HTTP 500", _item("t1"))
    assert outbox.due(10_000.0) == [] and outbox.parked() == ["t1"]
    assert outbox.backlog() == Backlog(unpublished=0, undelivered=0, parked=1, oldest_created_at=None)
    assert outbox.redrive("t1", 900.0)
    assert not outbox.redrive("t1", 901.0), "a second redrive does nothing"
    record = outbox.delivery("t1")
    assert (record.status, record.attempts, record.next_attempt_at, record.retry_from) == ("pending", 0, 900.0, 900.0)
    assert outbox.parked() == [] and outbox.due(900.0) == [(900.0, "t1")]


def test_backlog_counts_and_the_oldest_waiting_message(outbox: Any) -> None:
    assert outbox.backlog() == Backlog(0, 0, 0, None)
    outbox.put(_item("t1", created_at=50.0))
    outbox.put(_item("t2", created_at=80.0))
    outbox.put(_item("t3", created_at=90.0))
    outbox.mark_published("t1", 60.0)
    outbox.mark_published("t3", 95.0)
    outbox.mark_delivered("t3", 96.0, 1)
    assert outbox.backlog() == Backlog(unpublished=1, undelivered=1, parked=0, oldest_created_at=50.0)


def test_send_slots_space_a_channel_and_leave_others_alone(outbox: Any) -> None:
    assert [outbox.reserve_slot("#sales", 100.0, 1.0) for _ in range(3)] == [100.0, 101.0, 102.0]
    assert outbox.reserve_slot("#marketing", 100.0, 1.0) == 100.0
    assert outbox.reserve_slot("#sales", 102.5, 1.0) == 103.0, "the queue is still ahead"
    assert outbox.reserve_slot("#sales", 500.0, 1.0) == 500.0, "an idle channel is free at once"
    outbox.hold_channel("#sales", 530.0)  # Slack said Retry-After 30
    outbox.hold_channel("#sales", 520.0)  # a shorter hold never shortens it
    assert outbox.reserve_slot("#sales", 501.0, 1.0) == 530.0


def test_erasure_removes_the_leads_records_and_its_lines_in_pending_digests(stores: tuple[Any, Any]) -> None:
    leads, outbox = stores
    leads.commit(Commit(LeadState("L1"), 0, outbox=[_item("t1", lead_id="L1")]))
    outbox.put(_item("t2", lead_id="L1"))
    outbox.mark_published("t2", 130.0)
    outbox.mark_delivered("t2", 131.0, 1)  # a delivered record names the lead too
    outbox.put(_item("t3", lead_id="L2"))
    digest = {"ruleset_version": 2, "total": 2, "channel": "#marketing", "transitions": [
        {"lead_id": "L1", "name": "Ada Lovelace", "company": "Acme", "from_stage": "lead", "stage": "mql"},
        {"lead_id": "L2", "name": "Grace Hopper", "company": "Navy", "from_stage": "lead", "stage": "mql"}]}
    outbox.put(OutboxItem("digest.j1", "digest", digest, {"kind": "digest"}, 100.0))
    assert leads.erase("L1", 100.0) == 1 + 3  # the state (now its tombstone); t1, t2 and the digest's line
    assert outbox.delivery("t1") is None and outbox.delivery("t2") is None
    assert outbox.delivery("t3") is not None
    rewritten = outbox.delivery("digest.j1").item.body
    assert [t["lead_id"] for t in rewritten["transitions"]] == ["L2"] and "Ada" not in str(rewritten)
    assert rewritten["total"] == 2
