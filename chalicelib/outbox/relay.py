"""The outbox relay: messages committed with the lead state are published to SNS after commit.

Publish, then delete. A crash in between publishes again on the next sweep; consumers dedupe by
the message id, so each transition is announced once. A message that cannot be published stays in
the outbox (never dropped) and the sweep retries it; the ``handoffs stuck`` alarm watches its age.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.errors import DeliveryFailed
from chalicelib.observability import metric
from chalicelib.outbox.items import OutboxItem
from chalicelib.store.base import OutboxRepository

log = logging.getLogger(__name__)


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
    pending = outbox.pending(limit)
    # What the "handoffs stuck" alarm watches: how many wait, and for how long the oldest has.
    metric("OutboxPending", len(pending))
    oldest = min((item.created_at for item in pending), default=None)
    metric("OutboxOldestAgeSeconds", max(0.0, (now or time.time()) - oldest) if oldest else 0.0, "Seconds")
    for item in pending:
        try:
            publisher.publish(item)
        except DeliveryFailed as exc:
            failed += 1
            log.warning("outbox message %s not published yet: %s", item.id, exc.details.get("cause"))
            continue
        outbox.delete(item.id)
        sent += 1
    metric("HandoffsPublished", sent)
    metric("PublishFailures", failed)
    return {"sent": sent, "failed": failed}
