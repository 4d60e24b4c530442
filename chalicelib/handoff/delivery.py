"""The SNS consumer: handoff, reminder, escalation and digest messages become Slack messages, once each.

Failures raise: Lambda retries the SNS event, then parks it in the dead-letter queue. A message
is never dropped here, and a redelivered one is never posted twice (``outbox.claims``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import DeliveryFailed
from chalicelib.observability import metric
from chalicelib.outbox.claims import DeliveryClaims, deliver_once

log = logging.getLogger(__name__)


def render(message: str, kind: str) -> tuple[str, str, list[dict[str, Any]]]:
    """(channel, fallback text, blocks) for one SNS message body."""
    from chalicelib.handoff.blocks import digest_blocks, handoff_blocks, reminder_blocks

    if kind == "digest":
        summary = json.loads(message)
        text, blocks = digest_blocks(summary)
        return str(summary.get("channel") or "#marketing-mql"), text, blocks
    from chalicelib.handoff.message import parse_handoff

    msg = parse_handoff(message)
    if kind in ("reminder", "escalation"):
        overdue = float(json.loads(message).get("overdue_hours") or 0.0)
        text, blocks = reminder_blocks(msg, kind, overdue)  # type: ignore[arg-type]
        channel = msg.route.escalation_channel if kind == "escalation" and msg.route.escalation_channel else None
        return channel or msg.route.channel, text, blocks
    text, blocks = handoff_blocks(msg)
    return msg.route.channel, text, blocks


def deliver(message: str, attributes: Mapping[str, str], claims: DeliveryClaims, notifier: Any) -> str:
    """Post one message to Slack unless it was posted before. Failures raise: SNS retries, then the DLQ."""
    kind = attributes.get("kind", "handoff")
    key = attributes.get("message_id") or _fallback_key(message)

    def post() -> None:
        try:
            channel, text, blocks = render(message, kind)
            notifier.post(channel, text, blocks)
        except Exception:
            metric("SlackFailures", 1, kind=kind)
            raise

    if not deliver_once(claims, f"slack:{key}", post):  # a failed post is released for the retry
        log.info("message %s already posted; skipped", key)
        return "duplicate"
    metric("SlackPosted", 1, kind=kind)
    log.info("posted %s %s", kind, key)
    return "posted"


def deliver_sns_event(event: Mapping[str, Any], claims: DeliveryClaims, notifier: Any) -> str:
    """:func:`deliver` for the SNS event Lambda hands the consumer (one record per event)."""
    sns = event["Records"][0]["Sns"]
    return deliver(sns["Message"], sns_attributes(sns), claims, notifier)


def sns_attributes(sns: Mapping[str, Any]) -> dict[str, str]:
    """The message attributes of an SNS record (``{name: {"Type", "Value"}}``) as ``{name: value}``."""
    return {name: value.get("Value", "") for name, value in (sns.get("MessageAttributes") or {}).items()}


def _fallback_key(message: str) -> str:
    try:
        return str(json.loads(message)["transition_id"])
    except (ValueError, KeyError, TypeError):
        raise DeliveryFailed("message has neither a message_id attribute nor a transition_id") from None
