"""Slack delivery on a fake clock (nobody sleeps): each message posted once, at its channel's pace,
retried on the outbox's schedule through Slack outages, parked only after the retry window."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from slack_fakes import handoff_dict

from chalicelib.errors import DeliveryFailed
from chalicelib.handoff.delivery import Deliverer, deliver_sns_event, message_key, sns_attributes
from chalicelib.outbox.items import PARKED_MESSAGE, OutboxItem
from chalicelib.outbox.schedule import Backoff
from chalicelib.queues import InMemoryQueue
from chalicelib.store.memory import InMemoryOutbox

T0 = 1_800_000_000.0


class Clock:
    """Time that moves only when someone sleeps (or a test says so)."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.t += seconds


class Slack:
    """A notifier on the fake clock: down (HTTP 500) while ``down_until`` is ahead, else it records."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.down_until = 0.0
        self.answer: DeliveryFailed | None = None  # a scripted failure instead of 500
        self.posts: list[tuple[float, str, str]] = []
        self.calls = 0

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.answer is not None:
            raise self.answer
        if self.clock() < self.down_until:
            raise DeliveryFailed("Slack incoming webhook failed: HTTP 500", details={"status": 500, "retryable": True})
        self.posts.append((self.clock(), channel, json.dumps(blocks)))


class World:
    def __init__(self, backoff: Backoff | None = None) -> None:
        self.clock = Clock()
        self.slack = Slack(self.clock)
        self.outbox = InMemoryOutbox()
        self.dlq = InMemoryQueue()
        self.deliverer = Deliverer(self.outbox, lambda: self.slack, self.dlq, backoff or Backoff(),
                                   clock=self.clock, sleep=self.clock.sleep)
        self.made = 0

    def sql(self, channel: str = "#sales-emea", publish: bool = True) -> str:
        """A committed SQL alert, published (the consumer's first attempt is up to the test)."""
        self.made += 1
        tid = f"t_{self.made:04d}"
        body = handoff_dict(transition_id=tid, lead_id=f"L{self.made:04d}")
        body["route"] = {**body["route"], "channel": channel}
        self.outbox.put(OutboxItem(tid, "handoff", body, {"stage": "sql"}, self.clock()))
        if publish:
            self.outbox.mark_published(tid, self.clock() + 30)
        return tid

    def run_schedule(self, until: float, every: float = 60.0, budget: float = 55.0) -> None:
        """The delivery sweeper as EventBridge runs it: every minute, each run up to ``budget``."""
        start = self.clock()
        while self.clock() < until:
            self.deliverer.sweep(budget)
            start += every
            self.clock.t = max(self.clock(), start)

    def posted(self, tid: str) -> int:
        return sum(1 for _, _, blocks in self.slack.posts if tid in blocks)


def test_the_first_attempt_posts_and_a_redelivery_posts_nothing() -> None:
    world = World()
    tid = world.sql()
    assert world.deliverer.attempt(tid) == "posted"
    assert [world.deliverer.attempt(tid) for _ in range(2)] == ["skipped", "skipped"]
    record = world.outbox.delivery(tid)
    assert (record.status, record.attempts, record.item, record.delivered_at) == ("delivered", 1, None, T0)
    assert world.posted(tid) == 1 and world.outbox.due(T0 + 10**6) == []


def test_the_default_schedule_survives_a_two_minute_outage_without_compression() -> None:
    world = World()
    world.slack.down_until = T0 + 120
    tids = []
    for _ in range(5):  # SQLs made during the outage, 20 s apart; each consumer's first attempt fails
        tids.append(world.sql())
        assert world.deliverer.attempt(tids[-1]) == "failed"
        world.clock.sleep(20)
    assert world.outbox.delivery(tids[0]).next_attempt_at == T0 + 5, "first retry after 5 s"
    world.run_schedule(until=T0 + 600)
    assert [world.posted(t) for t in tids] == [1] * 5, "each once"
    assert all(at >= T0 + 120 for at, _, _ in world.slack.posts)
    assert max(at for at, _, _ in world.slack.posts) <= T0 + 120 + 160, "within one backoff of recovery"
    assert world.dlq.messages == []
    records = [world.outbox.delivery(t) for t in tids]
    assert {r.status for r in records} == {"delivered"} and all(r.attempts >= 4 for r in records)


def test_a_day_long_outage_keeps_retrying_then_parks_without_personal_data() -> None:
    world = World(Backoff(first_seconds=1, max_seconds=8, retry_seconds=60))
    world.slack.down_until = float("inf")
    tid = world.sql()
    world.deliverer.attempt(tid)
    world.run_schedule(until=T0 + 300, every=10, budget=8)
    record = world.outbox.delivery(tid)
    assert record.status == "parked" and record.last_error == "Slack incoming webhook failed: HTTP 500"
    assert world.slack.calls == record.attempts == len(Backoff(1, 8, 60).attempt_times())
    (pointer,) = world.dlq.messages
    assert pointer["type"] == PARKED_MESSAGE and pointer["message_id"] == tid and pointer["attempts"] == record.attempts
    assert "Jane" not in json.dumps(pointer) and "acme" not in json.dumps(pointer).lower()
    world.run_schedule(until=T0 + 600, every=10, budget=8)
    assert world.slack.calls == record.attempts, "parked: no more attempts"

    world.slack.down_until = 0.0  # Slack is back; an operator redrives
    assert world.outbox.redrive(tid, world.clock())
    world.deliverer.sweep(0)
    assert world.posted(tid) == 1 and world.outbox.delivery(tid).status == "delivered"


def test_a_permanent_failure_parks_at_once() -> None:
    world = World()
    world.slack.answer = DeliveryFailed("Slack chat.postMessage failed: HTTP 200 (channel_not_found)",
                                        details={"status": 200, "retryable": False, "error": "channel_not_found"})
    tid = world.sql()
    assert world.deliverer.attempt(tid) == "parked"
    assert world.outbox.delivery(tid).status == "parked" and len(world.dlq.messages) == 1


def test_a_message_that_cannot_be_rendered_is_parked_not_retried() -> None:
    world = World()
    world.outbox.put(OutboxItem("t_bad", "handoff", {"schema": "baton.handoff.v9"}, {}, T0))
    assert world.deliverer.attempt("t_bad") == "parked"
    assert world.slack.calls == 0 and world.dlq.messages[0]["error"].startswith("the message cannot be rendered")


def test_429_waits_its_retry_after_and_holds_the_channel() -> None:
    world = World()
    first, second, elsewhere = world.sql(), world.sql(), world.sql(channel="#sales-us")
    world.slack.answer = DeliveryFailed("Slack incoming webhook failed: HTTP 429 (rate_limited)",
                                        details={"status": 429, "retryable": True, "retry_after": 30.0})
    assert world.deliverer.attempt(first) == "failed"
    assert world.outbox.delivery(first).next_attempt_at == T0 + 30
    world.slack.answer = None
    assert world.deliverer.attempt(second) == "deferred", "the channel is held"
    assert world.outbox.delivery(second).next_attempt_at >= T0 + 30
    assert world.deliverer.attempt(elsewhere) == "posted", "other channels are not"
    world.run_schedule(until=T0 + 120)
    assert world.posted(first) == world.posted(second) == 1
    assert min(at for at, channel, _ in world.slack.posts if channel == "#sales-emea") >= T0 + 30


def test_a_burst_for_one_channel_is_posted_a_second_apart_each_once() -> None:
    world = World()
    tids = [world.sql() for _ in range(200)] + [world.sql(channel="#sales-us") for _ in range(20)]
    outcomes = []
    for tid in tids:  # every SNS message at once: 220 consumers started at T0
        world.clock.t = T0
        outcomes.append(world.deliverer.attempt(tid))
    assert outcomes.count("posted") == 6, "per channel: now, and the two slots within the inline wait"
    assert outcomes.count("deferred") == 214
    world.clock.t = T0
    world.run_schedule(until=T0 + 400)
    assert [world.posted(t) for t in tids] == [1] * 220
    for channel in ("#sales-emea", "#sales-us"):
        times = [at for at, c, _ in world.slack.posts if c == channel]
        assert all(b - a >= 1.0 for a, b in pairwise(times)), channel
    emea = [at for at, c, _ in world.slack.posts if c == "#sales-emea"]
    # A slot that falls between two sweeper runs (5 s a minute) is taken again at the back.
    assert 199 <= emea[-1] - emea[0] <= 199 * 60 / 55, "paced, not delayed further"


def test_an_attempt_that_died_mid_post_is_taken_over_after_the_lease() -> None:
    world = World()
    tid = world.sql()
    assert world.outbox.claim(f"slack:{tid}", 60, now=world.clock(), lease_seconds=600)  # then the Lambda died
    world.outbox.reschedule(tid, world.clock() + 5, 0)
    world.run_schedule(until=T0 + 300)
    assert world.posted(tid) == 0, "in flight, as far as anyone knows"
    world.run_schedule(until=T0 + 1_500)
    assert world.posted(tid) == 1 and world.outbox.delivery(tid).status == "delivered"


def test_a_post_whose_record_was_not_written_is_completed_not_posted_again() -> None:
    world = World()
    tid = world.sql()
    assert world.outbox.claim(f"slack:{tid}", 60, now=world.clock(), lease_seconds=600)
    world.outbox.mark_posted(f"slack:{tid}", world.clock())  # Slack had it; then the Lambda died
    world.run_schedule(until=T0 + 1_500)
    assert world.slack.calls == 0 and world.outbox.delivery(tid).status == "delivered"


def test_an_erased_leads_alert_is_not_posted() -> None:
    world = World()
    tid = world.sql()
    world.outbox.erase_lead("L0001")
    assert world.deliverer.attempt(tid) == "skipped" and world.slack.calls == 0


def test_a_lost_sns_delivery_is_picked_up_by_the_sweeper_after_the_grace() -> None:
    world = World()
    tid = world.sql()  # published, but the consumer never ran
    world.deliverer.sweep(0)
    assert world.posted(tid) == 0
    world.run_schedule(until=T0 + 61)
    assert world.posted(tid) == 1


def test_an_idle_sweep_returns_at_once() -> None:
    world = World()
    assert world.deliverer.sweep(50) == {} and world.clock() == T0


# -- the SNS consumer ---------------------------------------------------------------------------

def sns_event(body: dict[str, Any], **attributes: str) -> dict[str, Any]:
    """An SNS event as Lambda hands it to the consumer."""
    return {"Records": [{"EventSource": "aws:sns", "Sns": {
        "Type": "Notification", "MessageId": "m1", "Message": json.dumps(body),
        "MessageAttributes": {k: {"Type": "String", "Value": v} for k, v in attributes.items()},
    }}]}


def test_the_consumer_attempts_the_message_the_event_names() -> None:
    world = World()
    tid = world.sql()
    event = sns_event(handoff_dict(transition_id=tid), message_id=tid, kind="handoff", stage="sql")
    assert [deliver_sns_event(event, world.deliverer) for _ in range(3)] == ["posted", "skipped", "skipped"]
    ((_, channel, _),) = world.slack.posts
    assert channel == "#sales-emea"


def test_escalations_go_to_the_escalation_channel() -> None:
    world = World()
    body = {**handoff_dict(), "kind": "escalation", "overdue_hours": 3.5}
    body["route"] = {**body["route"], "escalation_channel": "#sales-leads"}
    world.outbox.put(OutboxItem("t1.escalation", "escalation", body, {"kind": "escalation"}, T0))
    assert world.deliverer.attempt("t1.escalation") == "posted"
    assert world.slack.posts[0][1] == "#sales-leads"


def test_without_a_message_id_the_transition_id_is_the_key() -> None:
    assert message_key(json.dumps(handoff_dict()), {}) == handoff_dict()["transition_id"]
    assert message_key("{}", {"message_id": "t9"}) == "t9"
    with pytest.raises(DeliveryFailed, match="neither a message_id"):
        message_key(json.dumps({"x": 1}), {})


def test_sns_attributes_are_read_as_strings() -> None:
    sns = sns_event({}, kind="digest", stage="digest")["Records"][0]["Sns"]
    assert sns_attributes(sns) == {"kind": "digest", "stage": "digest"}
    assert sns_attributes({"Message": "{}"}) == {}
    assert sns_attributes({"MessageAttributes": None}) == {}
