"""Slack delivery: every outbox message is posted once, at its channel's pace, and tried again on
the outbox's schedule until Slack acknowledges it.

Two callers. The SNS consumer (``slack_notifier``) makes the first attempt as soon as the relay
publishes a message. The delivery sweeper (``delivery_sweeper``, every minute, each run posting
what falls due for up to ``BATON_DELIVERY_SWEEP_SECONDS``) makes every later one. Neither
raises because Slack failed: the attempt is recorded on the message's delivery record
(``outbox.items.Delivery``), so a Slack outage of any length costs no SNS or Lambda retry and
nothing reaches the dead-letter queue before the schedule (``outbox.schedule``) is exhausted.
Only a store failure raises; the record is then unchanged and the sweeper tries it again.

One attempt:

1. read the record (consistently): only a *pending* one with its body is posted, so an erased
   lead's alert, or one delivered or parked meanwhile, is not;
2. render it (a message that cannot be rendered never will be: parked at once);
3. reserve the channel's send slot (``outbox.pacing``): a slot more than ``INLINE_WAIT`` away
   becomes the next attempt, without counting as one;
4. claim ``slack:<message id>`` (``outbox.claims``): held means posted, or in flight elsewhere;
5. post. Acknowledged: the claim is marked posted, then the record *delivered* (its body
   dropped); an attempt that finds the claim posted and the record pending completes that.
   Failed: the claim is released and the next attempt scheduled; a 429 waits its
   ``Retry-After`` and holds the whole channel that long; a failure Slack calls permanent (a
   4xx such as ``channel_not_found``), or one after the retry window, *parks* the message: a
   pointer (ids and the error, no personal data) goes to the dead-letter queue, and
   ``baton handoff redrive`` sends it again once the cause is fixed.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib.errors import BatonError, DeliveryFailed
from chalicelib.observability import metric
from chalicelib.outbox.claims import CLAIM_TTL, SEND_LEASE
from chalicelib.outbox.items import PARKED_MESSAGE, Delivery, OutboxItem
from chalicelib.outbox.pacing import INLINE_WAIT
from chalicelib.outbox.schedule import Backoff
from chalicelib.queues import Queue
from chalicelib.store.base import OutboxRepository

log = logging.getLogger(__name__)


def render(item: OutboxItem, told_at: float | None = None, lead_url: Callable[[str], str | None] | None = None
           ) -> tuple[str, str, list[dict[str, Any]]]:
    """(channel, fallback text, blocks) of one outbox message; an SQL alert posted at ``told_at``
    asks for a follow-up one SLA after that (the SLA runs from when sales is told). ``lead_url``
    gives the signed lead-page link an alert (and its reminders) carry, when there is one."""
    from chalicelib.handoff.blocks import digest_blocks, handoff_blocks, reminder_blocks

    if item.kind == "digest":
        text, blocks = digest_blocks(item.body)
        return str(item.body.get("channel") or "#marketing-mql"), text, blocks
    from chalicelib.handoff.message import parse_handoff

    msg = parse_handoff(json.dumps(item.body))
    if item.kind in ("reminder", "escalation"):
        overdue = float(item.body.get("overdue_hours") or 0.0)
        text, blocks = reminder_blocks(msg, item.kind, overdue,  # type: ignore[arg-type]
                                       lead_url(msg.lead_id) if lead_url else None)
        channel = msg.route.escalation_channel if item.kind == "escalation" and msg.route.escalation_channel else None
        return channel or msg.route.channel, text, blocks
    if told_at is not None and msg.sla_deadline is not None:
        deadline = datetime.fromtimestamp(told_at + msg.route.sla_hours * 3600, tz=timezone.utc)
        msg = msg.model_copy(update={"sla_deadline": deadline})
    text, blocks = handoff_blocks(msg, lead_url(msg.lead_id) if lead_url and msg.stage == "sql" else None)
    return msg.route.channel, text, blocks


@dataclass
class Deliverer:
    outbox: OutboxRepository
    notifier: Callable[[], Any]  # a SlackNotifier, built on first use
    dead_letters: Queue
    backoff: Backoff = field(default_factory=Backoff)
    pace_seconds: float = 1.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    lead_url: Callable[[str], str | None] | None = None  # signed lead-page links (``leadpage.links``)

    def attempt(self, item_id: str, *, due_only: bool = False) -> str:
        """One attempt at posting a message: ``posted``, ``deferred`` (to its channel's slot),
        ``failed`` (tried again later), ``parked``, or why nothing was done (``skipped``: not
        pending; ``not due``; ``in flight``: claimed elsewhere)."""
        record = self.outbox.delivery(item_id)
        if record is None or record.status != "pending" or record.item is None:
            return "skipped"
        now = self.clock()
        if due_only and record.next_attempt_at is not None and record.next_attempt_at > now:
            return "not due"  # the index lags a reschedule that was just written
        item = record.item
        try:
            channel, text, blocks = render(item, told_at=now, lead_url=self.lead_url)
        except (BatonError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            code = exc.code if isinstance(exc, BatonError) else "invalid"
            return self._park(record, record.attempts, f"the message cannot be rendered ({code})")
        if record.slot_at is not None and record.slot_at <= now < record.slot_at + self.pace_seconds:
            slot = record.slot_at  # its turn, reserved when it was deferred
        else:  # a slot missed by more than one interval is not used: late senders must not burst
            slot = self.outbox.reserve_slot(channel, now, self.pace_seconds)
        if slot - now > INLINE_WAIT:
            self.outbox.reschedule(item_id, slot, record.attempts, slot=True)
            metric("SlackDeferred", 1, kind=item.kind)
            return "deferred"
        if slot > now:
            self.sleep(slot - now)
        key = f"slack:{item_id}"
        if not self.outbox.claim(key, CLAIM_TTL, now=self.clock(), lease_seconds=SEND_LEASE):
            if self.outbox.posted(key):  # posted, then the sender died before recording it
                self.outbox.mark_delivered(item_id, self.clock(), record.attempts + 1)
                return "skipped"
            return "in flight"
        attempts = record.attempts + 1
        try:
            self.notifier().post(channel, text, blocks)
        except Exception as exc:  # every failure is recorded on the record; none is dropped
            self.outbox.release(key)
            return self._failed(record, attempts, channel, exc)
        self.outbox.mark_posted(key, self.clock())
        self.outbox.mark_delivered(item_id, self.clock(), attempts)
        metric("SlackPosted", 1, kind=item.kind)
        log.info("posted %s %s (attempt %d)", item.kind, item_id, attempts)
        return "posted"

    def _failed(self, record: Delivery, attempts: int, channel: str, exc: Exception) -> str:
        now = self.clock()
        kind = record.item.kind if record.item else "handoff"
        metric("SlackFailures", 1, kind=kind)
        if isinstance(exc, DeliveryFailed):
            details: Mapping[str, Any] = exc.details
            error = exc.message[:200]  # status and Slack's error code: never a URL or lead data
        else:
            log.exception("posting %s failed unexpectedly", record.id)
            details, error = {}, type(exc).__name__
        if details.get("retryable") is False:
            return self._park(record, attempts, error)
        retry_after = details.get("retry_after")
        if isinstance(retry_after, (int, float)):
            self.outbox.hold_channel(channel, now + retry_after)
        else:
            retry_after = None
        at = self.backoff.next_attempt(attempts, now, record.retry_from, retry_after)
        if at is None:
            return self._park(record, attempts, error)
        self.outbox.reschedule(record.id, at, attempts, error)
        log.warning("%s %s not posted (attempt %d: %s); next attempt in %.0f s", kind, record.id, attempts,
                    error, at - now)
        return "failed"

    def _park(self, record: Delivery, attempts: int, error: str) -> str:
        now = self.clock()
        item = record.item
        self.dead_letters.send({
            "type": PARKED_MESSAGE, "message_id": record.id, "kind": item.kind if item else None,
            "lead_id": item.lead_id if item else None, "attempts": attempts, "error": error,
            "created_at": record.created_at, "parked_at": now,
        })  # fmt: skip
        if self.outbox.park(record.id, now, attempts, error):
            metric("SlackParked", 1, kind=item.kind if item else "handoff")
            log.error("message %s parked in the dead-letter queue after %d attempts: %s", record.id, attempts, error)
        return "parked"

    def sweep(self, budget_seconds: float) -> dict[str, int]:
        """Attempt every pending message as it falls due, for up to ``budget_seconds``."""
        deadline = self.clock() + budget_seconds
        counts: Counter[str] = Counter()
        tried: set[tuple[float, str]] = set()  # a message comes back only with a new due time
        while True:
            now = self.clock()
            due = [d for d in self.outbox.due(max(now, deadline), limit=50) if d not in tried]
            ready = [d for d in due if d[0] <= now]
            for entry in ready:
                tried.add(entry)
                try:
                    counts[self.attempt(entry[1], due_only=True)] += 1
                except BatonError as exc:  # the store: this message waits for the next run
                    counts["error"] += 1
                    log.warning("delivery of %s not attempted: %s", entry[1], exc.code)
            if self.clock() >= deadline:
                break
            if ready:
                continue
            if not due:
                break
            self.sleep(min(due[0][0], deadline) - now)
        return dict(counts)


def message_key(message: str, attributes: Mapping[str, str]) -> str:
    """The outbox id an SNS message announces: its ``message_id`` attribute, else its transition id."""
    if attributes.get("message_id"):
        return attributes["message_id"]
    try:
        return str(json.loads(message)["transition_id"])
    except (ValueError, KeyError, TypeError):
        raise DeliveryFailed("message has neither a message_id attribute nor a transition_id") from None


def deliver_sns_event(event: Mapping[str, Any], deliverer: Deliverer) -> str:
    """The first attempt, for the SNS event Lambda hands the consumer (one record per event)."""
    sns = event["Records"][0]["Sns"]
    key = message_key(sns["Message"], sns_attributes(sns))
    outcome = deliverer.attempt(key)
    log.info("message %s: %s", key, outcome)
    return outcome


def sns_attributes(sns: Mapping[str, Any]) -> dict[str, str]:
    """The message attributes of an SNS record (``{name: {"Type", "Value"}}``) as ``{name: value}``."""
    return {name: value.get("Value", "") for name, value in (sns.get("MessageAttributes") or {}).items()}
