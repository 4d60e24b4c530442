"""The outbox relay: messages committed with the lead state are published to SNS after commit.

Publish, then mark published: the item stays in the outbox as its delivery record until Slack
acknowledges it (``handoff.delivery``). A crash in between publishes again on the next sweep;
consumers dedupe by the message id, so each transition is announced once. A message that cannot
be published stays unpublished (never dropped) and the sweep retries it. The sweep also reports
the backlog; the ``handoffs stuck`` alarm watches the age of the oldest message not yet published
or not yet acknowledged by Slack.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.errors import DeliveryFailed
from chalicelib.observability import metric
from chalicelib.outbox.items import OutboxItem
from chalicelib.store.base import Backlog, OutboxRepository

log = logging.getLogger(__name__)
# The SNS consumer makes the first attempt at once; the delivery sweeper tries a published message
# itself only if that attempt left no trace this long after publishing (a lost SNS delivery).
FIRST_ATTEMPT_GRACE = 30.0


class Publisher(Protocol):
    def publish(self, item: OutboxItem) -> None: ...


class SnsPublisher:
    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def publish(self, item: OutboxItem) -> None:
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in item.attributes.items() if v}
        attributes["message_id"] = {"DataType": "String", "StringValue": item.id}
        try:
            client("sns").publish(
                TopicArn=self.topic_arn,
                Message=json.dumps(item.body, separators=(",", ":")),
                MessageAttributes=attributes,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryFailed("publishing to the handoff topic failed", details={"cause": type(exc).__name__}) from None


def relay(outbox: OutboxRepository, publisher: Publisher, limit: int = 100, now: float | None = None
          ) -> dict[str, int]:
    sent = failed = 0
    now = time.time() if now is None else now
    for item in outbox.pending(limit):
        try:
            publisher.publish(item)
        except DeliveryFailed as exc:
            failed += 1
            log.warning("outbox message %s not published yet: %s", item.id, exc.details.get("cause"))
            continue
        outbox.mark_published(item.id, now + FIRST_ATTEMPT_GRACE)
        sent += 1
    metric("HandoffsPublished", sent)
    metric("PublishFailures", failed)
    return {"sent": sent, "failed": failed}


def new_message(record: Mapping[str, Any]) -> bool:
    """Whether an outbox stream record is a message to publish (not a delivery update, claim or slot)."""
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    return record.get("eventName") == "INSERT" and "body" in image


def report_backlog(outbox: OutboxRepository, now: float | None = None) -> Backlog:
    """What the "handoffs stuck" alarm watches: how many wait, and for how long the oldest has."""
    backlog = outbox.backlog()
    now = time.time() if now is None else now
    metric("OutboxPending", backlog.unpublished)
    metric("DeliveriesPending", backlog.undelivered)
    metric("DeliveriesParked", backlog.parked)
    oldest = backlog.oldest_created_at
    metric("OutboxOldestAgeSeconds", max(0.0, now - oldest) if oldest is not None else 0.0, "Seconds")
    return backlog
