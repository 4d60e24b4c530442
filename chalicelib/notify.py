"""The SNS consumer side: handoff, reminder and digest messages become Slack messages, once each.

Also the other direction: a rep's button press in Slack becomes a sales outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from chalicelib.errors import DeliveryFailed, Unauthorized
from chalicelib.leads import LeadService
from chalicelib.observability import metric
from chalicelib.store.base import OutboxRepository

log = logging.getLogger(__name__)
CLAIM_TTL = 14 * 86400
# Slack action -> (sales outcome, reason when the rep gives none)
_OUTCOMES = {"accept": "accepted", "reject": "rejected", "recycle": "recycled"}


def render(message: str, kind: str) -> tuple[str, str, list[dict[str, Any]]]:
    """(channel, fallback text, blocks) for one SNS message body."""
    from chalicelib.slack.blocks import digest_blocks, handoff_blocks, reminder_blocks

    if kind == "digest":
        summary = json.loads(message)
        text, blocks = digest_blocks(summary)
        return str(summary.get("channel") or "#marketing-mql"), text, blocks
    from chalicelib.handoff_message import parse_handoff

    msg = parse_handoff(message)
    if kind in ("reminder", "escalation"):
        overdue = float(json.loads(message).get("overdue_hours") or 0.0)
        text, blocks = reminder_blocks(msg, kind, overdue)  # type: ignore[arg-type]
        channel = msg.route.escalation_channel if kind == "escalation" and msg.route.escalation_channel else None
        return channel or msg.route.channel, text, blocks
    text, blocks = handoff_blocks(msg)
    return msg.route.channel, text, blocks


def deliver(message: str, attributes: Mapping[str, str], outbox: OutboxRepository, notifier: Any) -> str:
    """Post one message to Slack unless it was posted before. Failures raise: SNS retries, then the DLQ."""
    kind = attributes.get("kind", "handoff")
    key = attributes.get("message_id") or _fallback_key(message)
    if not outbox.claim(f"slack:{key}", CLAIM_TTL):
        log.info("message %s already posted; skipped", key)
        return "duplicate"
    try:
        channel, text, blocks = render(message, kind)
        notifier.post(channel, text, blocks)
    except Exception:
        outbox.release(f"slack:{key}")  # let the retry (or a DLQ redrive) post it
        metric("SlackFailures", 1, kind=kind)
        raise
    metric("SlackPosted", 1, kind=kind)
    log.info("posted %s %s", kind, key)
    return "posted"


def _fallback_key(message: str) -> str:
    try:
        return str(json.loads(message)["transition_id"])
    except (ValueError, KeyError, TypeError):
        raise DeliveryFailed("message has neither a message_id attribute nor a transition_id") from None


def handle_interaction(
    raw_body: bytes, headers: Mapping[str, str], secrets: Any, leads: LeadService, notifier: Callable[[], Any],
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Accept / Reject / Recycle from the Slack alert: verify, record the outcome, update the message.

    Nothing is read or changed before the signature checks out.
    """
    from chalicelib.slack.blocks import outcome_blocks
    from chalicelib.slack.interactions import parse_interaction
    from chalicelib.slack.signature import verify_slack_request

    secret = secrets.get("slack/signing-secret")
    if not secret:
        raise Unauthorized("the Slack signing secret is not configured", details={"field": "X-Slack-Signature"})
    verify_slack_request(secret, headers, raw_body, clock())
    parsed = parse_interaction(raw_body)
    if parsed.ignored:
        return {"ignored": parsed.reason}
    outcome = _OUTCOMES[parsed.action]
    result = leads.record_outcome(
        parsed.lead_id, outcome, reason=parsed.reason, actor=f"slack:{parsed.user_id}", source="slack"
    )
    blocks = outcome_blocks(
        parsed.original_blocks, parsed.action, parsed.user_id, parsed.reason,
        datetime.fromtimestamp(clock(), tz=timezone.utc),
    )
    text = f"{outcome} by {parsed.user_name or parsed.user_id}"
    slack = notifier()
    if parsed.response_url:
        slack.respond(parsed.response_url, text, blocks, replace_original=True)
    elif parsed.channel_id and parsed.message_ts and slack.can_update:
        slack.update(parsed.channel_id, parsed.message_ts, text, blocks)
    return {"outcome": outcome, "stage": result["stage"]}
