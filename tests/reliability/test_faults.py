"""Faults injected into the real code paths (in-process, ``chalice.test.Client`` on moto): SNS down
for a while, Slack down for a while or for good, DynamoDB throttling. Every time: nothing is lost,
nothing is announced or counted twice, and what cannot be delivered after a day of retries ends in
the dead-letter queue, from where ``baton handoff redrive`` sends it once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.errors import DeliveryFailed
from chalicelib.state import lead_id_for
from tests.handoff.slack_fakes import FakeSlack, Reply, serving_fake_slack
from tests.reliability.support import ADMIN_TOKEN, INGEST_TOKEN, Service, read_jsonl

pytestmark = pytest.mark.reliability

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DEMO = b"email=ada%40acme.io&first_name=Ada&job_title=CTO&company_size=300&industry=software&country=US"


# -- plumbing -----------------------------------------------------------------------------------

class Consumer:
    """A queue subscribed to the handoff topic, as the SNS -> Lambda subscription is in AWS."""

    def __init__(self, service: Service) -> None:
        import boto3

        self.service = service
        self.sqs, sns = boto3.client("sqs"), boto3.client("sns")
        self.topic = os.environ["BATON_HANDOFF_TOPIC_ARN"]
        self.url = self.sqs.create_queue(QueueName="handoff-consumer")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.subscription = sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn,
                                          ReturnSubscriptionArn=True)["SubscriptionArn"]  # fmt: skip

    def take(self) -> list[dict[str, Any]]:
        """Every SNS message delivered so far, as the Lambda event SNS would invoke the consumer with."""
        from devstack.workers import sns_event

        events = []
        while got := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            for message in got:
                events.append(sns_event(json.loads(message["Body"]), self.subscription))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return events


def tick(service: Service, name: str = "outbox_sweeper") -> Any:
    event = service.client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                    detail={}, resources=[])  # fmt: skip
    return service.client.lambda_.invoke(name, event).payload


def outbox(service: Service, kind: str = "handoff") -> list[dict[str, Any]]:
    items = service.ddb.scan(TableName=os.environ["BATON_OUTBOX_TABLE"])["Items"]
    return [i for i in items if i.get("kind", {}).get("S") == kind]


def claims(service: Service) -> list[str]:
    items = service.ddb.scan(TableName=os.environ["BATON_OUTBOX_TABLE"])["Items"]
    return [i["pk"]["S"] for i in items if i["pk"]["S"].startswith("CLAIM#")]


def make_sql(service: Service) -> str:
    response = service.request("POST", "/v1/forms/demo", FORM, DEMO)
    assert response.status_code == 200, response.body
    lead_id = lead_id_for("ada@acme.io")  # (a form's answer names no lead)
    assert lead(service, lead_id)["stage"] == "sql"
    return lead_id


def lead(service: Service, lead_id: str) -> dict[str, Any]:
    response = service.request("GET", f"/v1/leads/{lead_id}", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200, response.body
    return dict(response.json_body)


class FlakyPublisher:
    """The real SNS publisher behind an outage of ``failures`` publishes."""

    def __init__(self, failures: int) -> None:
        from chalicelib.outbox.relay import SnsPublisher

        self.failures = failures
        self.real = SnsPublisher(os.environ["BATON_HANDOFF_TOPIC_ARN"])
        self.attempts = 0

    def publish(self, item: Any) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise DeliveryFailed("SNS is down", details={"cause": "EndpointConnectionError"})
        self.real.publish(item)


@pytest.fixture
def fake_slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with serving_fake_slack(monkeypatch) as fake:
        yield fake


def slack_notifier(fake: FakeSlack, waits: list[float]) -> Any:
    from chalicelib.handoff.notifiers import WebhookNotifier
    from chalicelib.handoff.retry import RetryPolicy

    # As the app's notifier (bootstrap): a Retry-After over 2 s is left to the outbox's schedule.
    policy = RetryPolicy(max_retries=2, backoff_seconds=0.5, max_wait_seconds=2.0, sleep=waits.append)
    return WebhookNotifier(f"{fake.base}/services/T1/B1/x", retry=policy)


class Clock:
    """The deliverer's clock: it moves when the deliverer sleeps, or when a test says so."""

    def __init__(self) -> None:
        import time

        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def fake_time_delivery(backoff: Any = None) -> Clock:
    """The app's deliverer on a fake clock (the schedule in fake seconds: nobody waits)."""
    from chalicelib.bootstrap import container
    from chalicelib.handoff.delivery import Deliverer
    from chalicelib.outbox.schedule import Backoff

    c, clock = container(), Clock()
    c.extras["deliverer"] = Deliverer(c.outbox, c.notifier, c.dead_letters(), backoff or Backoff(),
                                      clock=clock, sleep=clock.sleep)
    return clock


def record(service: Service, item_id: str) -> dict[str, Any]:
    found = service.ddb.get_item(TableName=os.environ["BATON_OUTBOX_TABLE"], Key={"pk": {"S": item_id}})
    return dict(found.get("Item", {}))


# -- SNS ----------------------------------------------------------------------------------------

def test_sns_outage_keeps_the_handoff_in_the_outbox_then_it_is_published_and_posted_once(
    service: Service,
) -> None:
    from chalicelib.bootstrap import container

    consumer = Consumer(service)
    flaky = FlakyPublisher(failures=3)
    container().extras["publisher"] = flaky
    lead_id = make_sql(service)
    [pending] = outbox(service)
    for _ in range(3):
        assert tick(service) == {"sent": 0, "failed": 1}
        assert [i["pk"] for i in outbox(service)] == [pending["pk"]], "kept while SNS is down"
    assert consumer.take() == []
    assert tick(service) == {"sent": 1, "failed": 0}
    assert [i["queue"]["S"] for i in outbox(service)] == ["slack"], "published: now waiting for Slack"
    assert tick(service) == {"sent": 0, "failed": 0}
    published = consumer.take()
    assert len(published) == 1 and flaky.attempts == 4
    attributes = published[0]["Records"][0]["Sns"]["MessageAttributes"]
    transition = next(h for h in lead(service, lead_id)["stage_history"] if h["stage"] == "sql")["transition_id"]
    assert attributes["message_id"]["Value"] == pending["pk"]["S"] == transition
    for _ in range(3):  # SNS delivers at least once: the consumer posts once
        service.client.lambda_.invoke("slack_notifier", published[0])
    posts = read_jsonl(service.slack_file)
    assert [p["kind"] for p in posts] == ["post"] and lead_id in json.dumps(posts[0]["blocks"])
    delivered = record(service, pending["pk"]["S"])
    assert delivered["delivery"]["S"] == "delivered" and "body" not in delivered, "no personal data kept"


def test_a_relay_that_dies_between_publish_and_marking_publishes_again_and_slack_posts_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store.dynamodb import DynamoDBOutbox

    consumer = Consumer(service)
    make_sql(service)
    real_mark = DynamoDBOutbox.mark_published
    crashes = [RuntimeError("the Lambda timed out after publishing")]

    def crash_once(self: DynamoDBOutbox, item_id: str, first_attempt_at: float) -> None:
        if crashes:
            raise crashes.pop()
        real_mark(self, item_id, first_attempt_at)

    monkeypatch.setattr(DynamoDBOutbox, "mark_published", crash_once)
    with pytest.raises(RuntimeError):
        tick(service)
    assert outbox(service)[0]["queue"]["S"] == "relay", "not marked: the next sweep publishes it again"
    assert tick(service) == {"sent": 1, "failed": 0}
    published = consumer.take()
    assert len(published) == 2, "published twice"
    for event in published + published:
        service.client.lambda_.invoke("slack_notifier", event)
    assert [p["kind"] for p in read_jsonl(service.slack_file)] == ["post"], "announced once"


# -- Slack ----------------------------------------------------------------------------------------

def test_slack_outage_then_recovery_posts_the_alert_once(service: Service, fake_slack: FakeSlack) -> None:
    from chalicelib.bootstrap import container

    consumer = Consumer(service)
    waits: list[float] = []
    container().extras["notifier"] = slack_notifier(fake_slack, waits)
    clock = fake_time_delivery()
    start = clock()
    lead_id = make_sql(service)
    assert tick(service)["sent"] == 1
    [event] = consumer.take()
    fake_slack.then(Reply(500), Reply(502), Reply(500),  # the consumer's attempt: 1 try + 2 retries
                    Reply(429, "rate_limited", {"Retry-After": "7"}), Reply(200))  # fmt: skip
    service.client.lambda_.invoke("slack_notifier", event)  # no raise: no SNS/Lambda retry is spent
    [pending] = outbox(service)
    assert (pending["delivery"]["S"], pending["attempts"]["N"]) == ("pending", "1")
    assert float(pending["next_attempt_at"]["N"]) == start + 5, "the schedule's first retry"
    handoff = lead(service, lead_id)["handoff"]
    assert (handoff["status"], handoff["attempts"], handoff["delivered_at"]) == ("pending", 1, None)
    assert handoff["next_attempt_at"] and handoff["last_error"].startswith("Slack incoming webhook failed: HTTP 500")
    assert claims(service) == [], "the claim is released so the retry can post"
    tick(service, "delivery_sweeper")  # retry at +5 s: 429, Retry-After 7; at +12 s: posted
    service.client.lambda_.invoke("slack_notifier", event)  # a redelivery: nothing sent
    assert [r.path for r in fake_slack.requests] == ["/services/T1/B1/x"] * 5
    assert waits == [0.5, 1.0], "only the 5xx were retried in-process"
    delivered = record(service, pending["pk"]["S"])
    assert float(delivered["delivered_at"]["N"]) == start + 5 + 7, "Retry-After is honoured"
    handoff = lead(service, lead_id)["handoff"]
    assert (handoff["status"], handoff["attempts"], handoff["next_attempt_at"]) == ("delivered", 3, None)
    assert lead_id in json.dumps(fake_slack.requests[-1].json()["blocks"])
    assert len(claims(service)) == 1


class NoWaitSqs:
    """The real SQS client, recording any visibility change (a redelivery the local stack asks for)."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        self.visibility: list[int] = []

    def change_message_visibility(self, **kwargs: Any) -> Any:
        self.visibility.append(kwargs["VisibilityTimeout"])
        return self.sqs.change_message_visibility(**{**kwargs, "VisibilityTimeout": 0})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)


def test_slack_down_for_good_is_retried_for_the_window_then_parked_and_redriven_once(
    service: Service, fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    import app as app_module
    from baton.cli import main
    from chalicelib.bootstrap import container
    from chalicelib.outbox.schedule import Backoff
    from devstack import workers

    consumer = Consumer(service)
    container().extras["notifier"] = slack_notifier(fake_slack, [])
    backoff = Backoff(first_seconds=1, max_seconds=4, retry_seconds=60)  # a day, compressed to a minute
    clock = fake_time_delivery(backoff)
    lead_id = make_sql(service)
    assert tick(service)["sent"] == 1
    clock.t = float(outbox(service)[0]["created_at"]["N"])  # the retry window starts at the commit
    fake_slack.then(Reply(500))  # for good
    # The local stack's SNS worker, as Lambda's SNS trigger: the failed first attempt is recorded,
    # and the message is settled, not retried (the old path spent its 5 receives, then the DLQ).
    handlers = workers.discover(app_module).sns
    sqs = NoWaitSqs(consumer.sqs)
    queues = workers.Queues(sqs, os.environ["BATON_DLQ_URL"])
    workers.sns_step(queues, consumer.url, handlers, {workers.short_name(consumer.topic): consumer.subscription})
    assert sqs.visibility == [] and consumer.take() == []
    committed = clock()
    for minute in range(3):  # the delivery sweeper every (fake) minute, each run for up to 55 s
        clock.t = committed + 60 * minute
        tick(service, "delivery_sweeper")
    [parked] = outbox(service)
    # The schedule's last retries (59 s, then 63 s) fall between two runs: the next run, at
    # 60 s, makes the attempt that ends the window.
    attempts = len(backoff.attempt_times()) - 1
    assert (parked["delivery"]["S"], parked["attempts"]["N"]) == ("parked", str(attempts))
    assert lead(service, lead_id)["handoff"]["status"] == "parked"
    assert float(parked["parked_at"]["N"]) >= committed + backoff.retry_seconds
    assert len(fake_slack.requests) == attempts * 3, "each attempt: 1 try + 2 in-process retries"
    dlq = consumer.sqs.receive_message(QueueUrl=os.environ["BATON_DLQ_URL"], MaxNumberOfMessages=10,
                                       VisibilityTimeout=0).get("Messages", [])  # fmt: skip
    assert len(dlq) == 1, "never a silent drop"
    assert json.loads(dlq[0]["Body"])["message_id"] == parked["pk"]["S"]
    assert "Ada" not in dlq[0]["Body"] and "acme" not in dlq[0]["Body"], "ids, no personal data"
    assert claims(service) == [] and read_jsonl(service.slack_file) == []
    tick(service, "delivery_sweeper")
    assert len(fake_slack.requests) == attempts * 3, "parked: not tried again"

    # Slack is back: an operator redrives, twice by mistake; the alert is posted once.
    fake_slack.then(Reply(200))
    assert main(["handoff", "redrive"]) == 0 and main(["handoff", "redrive"]) == 0
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert reports == [{"redriven": 1, "pointers_removed": 1, "left": 0},
                       {"redriven": 0, "pointers_removed": 0, "left": 0}]
    clock.t = max(clock.t, __import__("time").time())  # redriven at the real time
    tick(service, "delivery_sweeper")
    tick(service, "delivery_sweeper")
    ok = fake_slack.requests[attempts * 3 :]
    assert len(ok) == 1 and lead_id in json.dumps(ok[0].json()["blocks"])
    assert record(service, parked["pk"]["S"])["delivery"]["S"] == "delivered"


# -- DynamoDB throttling ------------------------------------------------------------------------

class Throttle:
    """DynamoDB (moto) answers the first ``times`` calls of one operation with a throttling error,
    a real HTTP 400 with the error type, before doing anything; counts every call it receives."""

    ACTIONS = {"TransactWriteItems": "transact_write_items", "GetItem": "get_item"}

    def __init__(self, monkeypatch: pytest.MonkeyPatch, operation: str, times: int,
                 code: str = "ProvisionedThroughputExceededException") -> None:  # fmt: skip
        from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
        from moto.dynamodb.responses import DynamoHandler

        self.times, self.attempts = times, 0
        action = self.ACTIONS[operation]
        real = getattr(DynamoHandler, action)

        def throttled(handler: Any) -> Any:
            self.attempts += 1
            if self.attempts <= self.times:
                raise DynamodbException(ERROR_TYPE_PREFIX + code, message="Throughput exceeds the current capacity")
            return real(handler)

        monkeypatch.setattr(DynamoHandler, action, throttled)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's standard retries, without their real sleeps (the delays asked are recorded)."""
    from botocore.retries.standard import ExponentialBackoff

    asked: list[float] = []
    real = ExponentialBackoff.delay_amount

    def record(self: ExponentialBackoff, context: Any) -> float:
        asked.append(real(self, context))
        return 0.0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", record)
    return asked


def _demo_event(n: int = 0) -> bytes:
    traits = {"job_title": "CTO", "company_size": 300, "industry": "software"}
    return json.dumps({"event_id": f"demo-{n}", "type": "demo_request", "email": f"grace{n}@acme.io",
                       "traits": traits}).encode()  # fmt: skip


INGEST = {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"}


def _send_like_a_sender(service: Service, body: bytes, attempts: int = 5) -> tuple[Any, list[Any]]:
    """POST until accepted; a 503 must say when to retry (we do not really wait)."""
    answers = []
    for _ in range(attempts):
        response = service.request("POST", "/v1/events", INGEST, body)
        answers.append(response)
        assert response.status_code in (202, 503), response.body
        if response.status_code == 202:
            return response, answers
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json_body["error"]["code"] == "unavailable"
    raise AssertionError(f"not accepted after {attempts} attempts")


def _stored_once(service: Service, email: str) -> None:
    from chalicelib.state import lead_id_for

    found = lead(service, lead_id_for(email))
    assert found["event_count"] == 1 and found["events"]["total"] == 1 and found["stage"] == "sql"
    assert len(outbox(service)) == 1, "one handoff for one transition"


@pytest.mark.parametrize("operation", ["TransactWriteItems", "GetItem"])
def test_brief_throttling_is_absorbed_by_botocore_retries(
    service: Service, no_backoff: list[float], monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    throttle = Throttle(monkeypatch, operation, times=2)
    response, answers = _send_like_a_sender(service, _demo_event())
    assert len(answers) == 1 and response.json_body["accepted"] == 1, response.json_body
    assert throttle.attempts >= 3 and len(no_backoff) >= 2, "retried by botocore, with back-off"
    _stored_once(service, "grace0@acme.io")


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_long_throttling_is_a_503_with_retry_after_and_the_senders_retry_counts_once(
    service: Service, no_backoff: list[float], monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    throttle = Throttle(monkeypatch, "TransactWriteItems", times=6, code=code)  # botocore tries 4 times
    response, answers = _send_like_a_sender(service, _demo_event())
    assert [a.status_code for a in answers] == [503, 202]
    assert throttle.attempts == 7
    assert response.json_body["accepted"] == 1 and response.json_body["duplicates"] == 0
    _stored_once(service, "grace0@acme.io")


def test_a_write_that_succeeded_but_whose_answer_was_lost_is_not_counted_twice(service: Service) -> None:
    from botocore.exceptions import ClientError

    lost = [1]

    def lose_the_answer(**_: Any) -> None:
        if lost:
            lost.pop()
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "connection reset"}},
                              "TransactWriteItems")  # fmt: skip

    service.ddb.meta.events.register("after-call.dynamodb.TransactWriteItems", lose_the_answer)
    response, answers = _send_like_a_sender(service, _demo_event())
    assert [a.status_code for a in answers] == [503, 202]
    assert response.json_body["accepted"] == 0 and response.json_body["duplicates"] == 1
    _stored_once(service, "grace0@acme.io")


def test_a_rejected_write_under_throttling_stores_nothing(
    service: Service, no_backoff: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = service.known()
    Throttle(monkeypatch, "TransactWriteItems", times=100)
    response = service.request("POST", "/v1/events", INGEST, _demo_event())
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert set(response.json_body["error"]) == {"code", "message", "details"}
    assert service.snapshot() == before
