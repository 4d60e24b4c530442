"""`baton handoff redrive` on moto: parked alerts are sent again, each once; their dead-letter
pointers go; other dead-letter messages stay."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from chalicelib.errors import DeliveryFailed
from chalicelib.outbox.items import OutboxItem
from chalicelib.outbox.redrive import alert_id
from chalicelib.outbox.schedule import Backoff
from tests.handoff.slack_fakes import handoff_dict


class Slack:
    def __init__(self) -> None:
        self.down = True
        self.posts: list[str] = []

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> None:
        if self.down:
            raise DeliveryFailed("Slack incoming webhook failed: HTTP 503", details={"status": 503, "retryable": True})
        self.posts.append(json.dumps(blocks))


@pytest.fixture
def parked(moto_aws: dict[str, str]) -> tuple[Any, Slack, list[str]]:
    """Three SQL alerts parked in moto's outbox and dead-letter queue; Slack still down."""
    from chalicelib.handoff.delivery import Deliverer
    from chalicelib.queues import SqsQueue
    from chalicelib.store.dynamodb import DynamoDBOutbox

    outbox = DynamoDBOutbox(os.environ["BATON_OUTBOX_TABLE"])
    slack, clock = Slack(), [1_000.0]
    deliverer = Deliverer(outbox, lambda: slack, SqsQueue(os.environ["BATON_DLQ_URL"]),
                          Backoff(1, 1, retry_seconds=1), clock=lambda: clock[0], sleep=lambda s: None)
    ids = []
    for n in range(3):
        tid = f"t_{n}"
        outbox.put(OutboxItem(tid, "handoff", handoff_dict(transition_id=tid, lead_id=f"L{n}"), {}, clock[0]))
        outbox.mark_published(tid, clock[0])
        assert deliverer.attempt(tid) == "failed"
        clock[0] += 2
        assert deliverer.attempt(tid) == "parked"
        ids.append(tid)
    return deliverer, slack, ids


def _dlq() -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=os.environ["BATON_DLQ_URL"], MaxNumberOfMessages=10,
                                   VisibilityTimeout=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_redrive_sends_each_parked_alert_once_and_leaves_other_dead_letters(
    parked: tuple[Any, Slack, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    from baton.cli import main

    deliverer, slack, ids = parked
    boto3.client("sqs").send_message(QueueUrl=os.environ["BATON_DLQ_URL"],
                                     MessageBody=json.dumps({"kind": "page", "job_id": "j1"}))  # a re-score page
    assert sorted(m.get("message_id", "") for m in _dlq()) == ["", *ids]
    assert main(["handoff", "redrive", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"parked": 3}

    slack.down = False
    assert main(["handoff", "redrive"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"redriven": 3, "pointers_removed": 3, "left": 1}
    assert _dlq() == [{"kind": "page", "job_id": "j1"}], "the re-score job stays, visible"
    assert main(["handoff", "redrive"]) == 0, "a second redrive finds nothing"
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"redriven": 0, "pointers_removed": 0, "left": 1}

    deliverer.clock = time.time  # the CLI redrove them at the real time
    deliverer.sweep(0)
    deliverer.sweep(0)
    assert [sum(tid in post for post in slack.posts) for tid in ids] == [1, 1, 1]
    assert {deliverer.outbox.delivery(tid).status for tid in ids} == {"delivered"}


def test_a_pointer_of_an_alert_parked_again_redrives_it(parked: tuple[Any, Slack, list[str]]) -> None:
    from chalicelib.outbox.redrive import redrive

    deliverer, _, ids = parked
    report = redrive(deliverer.outbox, 5_000.0, None)  # the table only: pointers stay
    assert report.redriven == 3 and len(_dlq()) == 3
    assert deliverer.outbox.park(ids[0], 5_001.0, 1, "HTTP 503")  # failed again meanwhile
    report = redrive(deliverer.outbox, 5_002.0, os.environ["BATON_DLQ_URL"])
    assert report.to_dict() == {"redriven": 1, "pointers_removed": 3, "left": 0}
    assert deliverer.outbox.delivery(ids[0]).status == "pending"


def test_a_pointer_of_an_erased_alert_is_removed(parked: tuple[Any, Slack, list[str]]) -> None:
    from chalicelib.outbox.redrive import redrive

    deliverer, _, ids = parked
    deliverer.outbox.erase_lead("L1")
    report = redrive(deliverer.outbox, 5_000.0, os.environ["BATON_DLQ_URL"])
    assert report.to_dict() == {"redriven": 2, "pointers_removed": 3, "left": 0}
    assert _dlq() == [] and deliverer.outbox.delivery(ids[1]) is None


def test_alert_ids_of_dead_letters() -> None:
    pointer = {"type": "baton.delivery.parked", "message_id": "t_1", "attempts": 104}
    sns = {"Records": [{"Sns": {"Message": "{}", "MessageAttributes": {"message_id": {"Value": "t_2"}}}}]}
    assert alert_id(json.dumps(pointer)) == "t_1"
    assert alert_id(json.dumps(sns)) == "t_2"
    assert alert_id(json.dumps({"kind": "page"})) is None
    assert alert_id("not json") is None and alert_id("[1]") is None
