"""The SNS consumer: each message is posted to Slack once, a failed post is retried, nothing dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_fakes import handoff_dict

from chalicelib.errors import DeliveryFailed
from chalicelib.handoff.delivery import deliver, deliver_sns_event, sns_attributes
from chalicelib.store.memory import InMemoryOutbox


class Recorder:
    """A notifier that records posts; ``failures`` posts fail first."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.posts: list[tuple[str, str, list[dict[str, Any]]]] = []

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryFailed("Slack is down")
        self.posts.append((channel, text, blocks))


def sns_event(body: dict[str, Any], **attributes: str) -> dict[str, Any]:
    """An SNS event as Lambda hands it to the consumer."""
    return {"Records": [{"EventSource": "aws:sns", "Sns": {
        "Type": "Notification", "MessageId": "m1", "Message": json.dumps(body),
        "MessageAttributes": {k: {"Type": "String", "Value": v} for k, v in attributes.items()},
    }}]}


def test_a_redelivered_message_is_posted_once() -> None:
    claims, slack = InMemoryOutbox(), Recorder()
    event = sns_event(handoff_dict(), message_id="t1", kind="handoff", stage="sql")
    assert [deliver_sns_event(event, claims, slack) for _ in range(3)] == ["posted", "duplicate", "duplicate"]
    ((channel, text, _),) = slack.posts
    assert channel == handoff_dict()["route"]["channel"] and text.startswith("New SQL")


def test_a_failed_post_is_released_for_the_retry() -> None:
    claims, slack = InMemoryOutbox(), Recorder(failures=1)
    event = sns_event(handoff_dict(), message_id="t1")
    with pytest.raises(DeliveryFailed):
        deliver_sns_event(event, claims, slack)
    assert deliver_sns_event(event, claims, slack) == "posted"
    assert len(slack.posts) == 1


def test_escalations_go_to_the_escalation_channel() -> None:
    body = {**handoff_dict(), "kind": "escalation", "overdue_hours": 3.5}
    body["route"] = {**body["route"], "escalation_channel": "#sales-leads"}
    slack = Recorder()
    deliver_sns_event(sns_event(body, message_id="t1.escalation", kind="escalation"), InMemoryOutbox(), slack)
    assert slack.posts[0][0] == "#sales-leads"


def test_without_a_message_id_the_transition_id_is_the_key() -> None:
    claims, slack = InMemoryOutbox(), Recorder()
    message = json.dumps(handoff_dict())
    assert deliver(message, {}, claims, slack) == "posted"
    assert deliver(message, {"message_id": handoff_dict()["transition_id"]}, claims, slack) == "duplicate"
    with pytest.raises(DeliveryFailed, match="neither a message_id"):
        deliver(json.dumps({"x": 1}), {}, claims, slack)


def test_sns_attributes_are_read_as_strings() -> None:
    sns = sns_event({}, kind="digest", stage="digest")["Records"][0]["Sns"]
    assert sns_attributes(sns) == {"kind": "digest", "stage": "digest"}
    assert sns_attributes({"Message": "{}"}) == {}
    assert sns_attributes({"MessageAttributes": None}) == {}
