"""Redrive: alerts parked after their retries ran out are sent again, each once.

``baton handoff redrive`` runs it with the operator's AWS credentials, against the stage's
outbox table and dead-letter queue (the store, not the API: no Lambda role needs to read the
dead-letter queue, and a redrive of thousands must not fit in an API call's 29 seconds).

1. Every parked record becomes pending again, due now, with a fresh retry window: one
   conditional write each, so a second redrive (or two at once) finds nothing left to do.
2. The dead-letter queue's pointers to parked alerts are deleted, so the dead-letters alarm
   clears; a pointer whose alert is parked still (parked while this ran) is redriven first, and
   one whose alert is gone (its lead erased, or its record expired) is just deleted. An SNS
   event the consumer's Lambda gave up on (a store outage) is treated the same way: the alert's
   delivery record drives it. Anything else (re-score jobs) is left in the queue, visible again
   at once.

The delivery sweeper then posts the redriven alerts at their channels' pace; the claims keep
each to one post, however often it was parked, redriven or redelivered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.aws import client
from chalicelib.config import Settings
from chalicelib.outbox.items import PARKED_MESSAGE
from chalicelib.store.base import OutboxRepository

_VISIBILITY = 120  # long enough to finish a pass; what is left alone is made visible at once


@dataclass
class RedriveReport:
    redriven: int = 0  # parked alerts made pending again
    pointers_removed: int = 0  # dead-letter messages about alerts the outbox drives, or that are gone
    left: int = 0  # other dead-letter messages, untouched

    def to_dict(self) -> dict[str, int]:
        return {"redriven": self.redriven, "pointers_removed": self.pointers_removed, "left": self.left}


def alert_id(body: str) -> str | None:
    """The outbox id a dead-letter message is about: a parked pointer, or an SNS event the
    consumer's Lambda gave up on (its ``message_id`` attribute); None for anything else."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if message.get("type") == PARKED_MESSAGE:
        return str(message.get("message_id") or "") or None
    try:
        attributes = message["Records"][0]["Sns"]["MessageAttributes"]
        return str(attributes["message_id"]["Value"]) or None
    except (KeyError, IndexError, TypeError):
        return None


def dead_letter_url(settings: Settings) -> str:
    """``BATON_DLQ_URL``, else the stage's queue by name (``baton-<stage>-dlq``)."""
    if settings.dead_letter_queue_url:
        return settings.dead_letter_queue_url
    return str(client("sqs").get_queue_url(QueueName=f"baton-{settings.stage}-dlq")["QueueUrl"])


def redrive(outbox: OutboxRepository, now: float, dead_letter_url: str | None) -> RedriveReport:
    report = RedriveReport()
    seen: set[str] = set()
    while batch := [i for i in outbox.parked(limit=100) if i not in seen]:  # the index lags its writes
        seen.update(batch)
        report.redriven += sum(outbox.redrive(item_id, now) for item_id in batch)
    if dead_letter_url:
        _clear_pointers(outbox, now, dead_letter_url, report)
    return report


def _clear_pointers(outbox: OutboxRepository, now: float, url: str, report: RedriveReport) -> None:
    sqs = client("sqs")
    untouched: list[str] = []
    for message in _receive_all(sqs, url):
        item_id = alert_id(message["Body"])
        if item_id is None:
            untouched.append(message["ReceiptHandle"])
            continue
        record = outbox.delivery(item_id)
        if record is not None and record.status == "parked":
            report.redriven += outbox.redrive(record.id, now)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        report.pointers_removed += 1
    for receipt in untouched:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
    report.left = len(untouched)


def _receive_all(sqs: Any, url: str) -> Iterator[dict[str, Any]]:
    """Every message once: each stays hidden for the pass, so receiving again finds the next ones."""
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=_VISIBILITY,
                                  WaitTimeSeconds=1).get("Messages", [])
        if not got:
            return
        yield from got
