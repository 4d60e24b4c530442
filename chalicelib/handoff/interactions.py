"""Slack interactions: a rep's Accept / Recycle / Reject click becomes a sales outcome.

:func:`handle_interaction` is the route's one call: it verifies the signature on the raw body
(``signature.verify_slack_request``), parses it with :func:`parse_interaction` (pure: no I/O),
records the outcome and updates the Slack message. Slack posts
``application/x-www-form-urlencoded`` with one field, ``payload``, holding JSON.

Only ``block_actions`` carrying one of Baton's action ids is acted on; every other interaction
(view submissions, shortcuts, foreign buttons, a reject menu cleared back to empty) gives an
:class:`Ignored` result that the route simply acknowledges. A payload of the right type with
a wrong shape raises :class:`BadRequest` whose ``details["field"]`` is the JSON path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

from chalicelib.errors import BadRequest, Conflict, Unauthorized
from chalicelib.handoff.blocks import ACTION_IDS, REJECT_REASONS, outcome_blocks
from chalicelib.handoff.message import ID_MAX_LENGTH, ID_PATTERN
from chalicelib.handoff.signature import verify_slack_request
from chalicelib.json_body import load_json
from chalicelib.outbox.claims import CLAIM_TTL, DeliveryClaims

if TYPE_CHECKING:
    from chalicelib.leads import LeadService

MAX_BODY_BYTES = 256 * 1024
# Slack action -> sales outcome
_OUTCOMES = {"accept": "accepted", "reject": "rejected", "recycle": "recycled"}
_ID = re.compile(ID_PATTERN)
# Where Slack's response_url points (commercial and GovSlack): anything else would make Baton post
# the alert's contents to a host the request chose.
SLACK_RESPONSE_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")


@dataclass(frozen=True)
class Interaction:
    """A sales rep's decision on one handoff, with what is needed to answer in Slack."""

    action: Literal["accept", "recycle", "reject"]
    reason: str | None  # a REJECT_REASONS code, only for "reject"
    lead_id: str
    transition_id: str
    user_id: str
    user_name: str | None
    channel_id: str | None
    message_ts: str | None
    response_url: str | None
    original_blocks: list[dict[str, Any]] = field(default_factory=list)
    action_ts: str | None = None
    team_id: str | None = None
    ignored: Literal[False] = False


@dataclass(frozen=True)
class Ignored:
    """A well-formed interaction Baton has nothing to do with (answer 200 and move on)."""

    reason: str
    payload_type: str | None = None
    ignored: Literal[True] = True


InteractionResult = Interaction | Ignored


def _bad(path: str, problem: str) -> BadRequest:
    return BadRequest(f"invalid Slack interaction: {path} {problem}", details={"field": path})


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "must be an object")
    return value


def _opt_str(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(path, "must be a string")
    return value


def _req_str(value: Any, path: str) -> str:
    text = _opt_str(value, path)
    if not text:
        raise _bad(path, "is required")
    return text


def _slack_url(value: Any, path: str) -> str | None:
    """A ``response_url`` Baton will post the rep's answer to: Slack's own hosts, over https only."""
    url = _opt_str(value, path)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme != "https" or parts.hostname not in SLACK_RESPONSE_HOSTS or "@" in parts.netloc:
        raise _bad(path, f"must be a Slack URL (https://{SLACK_RESPONSE_HOSTS[0]}/...)")
    return url


def _load_payload(raw_body: bytes) -> dict[str, Any]:
    if len(raw_body) > MAX_BODY_BYTES:
        raise _bad("payload", "is too large")
    try:
        form = parse_qs(raw_body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise _bad("payload", "is not a UTF-8 form body") from None
    values = form.get("payload")
    if not values or not values[0]:
        raise _bad("payload", "form field is missing")
    return _obj(load_json(values[0], "payload"), "payload")


def _decode_value(raw: Any, path: str, with_reason: bool) -> tuple[str, str, str | None]:
    value = _obj(load_json(_req_str(raw, path), path), path)
    ids = []
    for key in ("l", "t"):
        item = value.get(key)
        if not isinstance(item, str) or len(item) > ID_MAX_LENGTH or not _ID.match(item):
            raise _bad(f"{path}.{key}", "must be an id")
        ids.append(item)
    reason = None
    if with_reason:
        reason = value.get("r")
        if reason not in REJECT_REASONS:
            raise _bad(f"{path}.r", f"must be one of {', '.join(REJECT_REASONS)}")
    return ids[0], ids[1], reason


def parse_interaction(raw_body: bytes) -> InteractionResult:
    """The decision in a ``block_actions`` request body, or :class:`Ignored`."""
    payload = _load_payload(raw_body)
    kind = payload.get("type")
    if kind != "block_actions":
        return Ignored(f"interaction type {kind!r} is not handled", payload_type=str(kind) if kind else None)

    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise _bad("payload.actions", "must be a non-empty list")
    # One click, one action: Slack sends a single element for buttons and selects.
    act = _obj(actions[0], "payload.actions[0]")
    action_id = act.get("action_id")
    if action_id not in ACTION_IDS:
        return Ignored(f"action {action_id!r} is not Baton's", payload_type=kind)
    action = ACTION_IDS[action_id]

    if action == "reject":
        selected = act.get("selected_option")
        if selected is None:
            # Slack sends null when a rep clears the menu: no decision was made.
            return Ignored("reject menu cleared without a reason", payload_type=kind)
        selected = _obj(selected, "payload.actions[0].selected_option")
        lead_id, transition_id, reason = _decode_value(
            selected.get("value"), "payload.actions[0].selected_option.value", with_reason=True
        )
    else:
        lead_id, transition_id, reason = _decode_value(act.get("value"), "payload.actions[0].value", False)

    user = _obj(payload.get("user"), "payload.user")
    container = payload.get("container")
    container = _obj(container, "payload.container") if container is not None else {}
    channel = payload.get("channel")
    channel = _obj(channel, "payload.channel") if channel is not None else {}
    message = payload.get("message")
    message = _obj(message, "payload.message") if message is not None else {}
    team = payload.get("team")
    team = _obj(team, "payload.team") if team is not None else {}

    blocks = message.get("blocks", [])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise _bad("payload.message.blocks", "must be a list of objects")

    return Interaction(
        action=action,
        reason=reason,
        lead_id=lead_id,
        transition_id=transition_id,
        user_id=_req_str(user.get("id"), "payload.user.id"),
        user_name=_opt_str(user.get("username") or user.get("name"), "payload.user.username"),
        channel_id=_opt_str(channel.get("id") or container.get("channel_id"), "payload.channel.id"),
        message_ts=_opt_str(container.get("message_ts") or message.get("ts"), "payload.container.message_ts"),
        response_url=_slack_url(payload.get("response_url"), "payload.response_url"),
        original_blocks=blocks,
        action_ts=_opt_str(act.get("action_ts"), "payload.actions[0].action_ts"),
        team_id=_opt_str(team.get("id"), "payload.team.id"),
    )


def handle_interaction(
    raw_body: bytes, headers: Mapping[str, str], secrets: Any, leads: LeadService, claims: DeliveryClaims,
    notifier: Callable[[], Any], clock: Callable[[], float],
) -> dict[str, Any]:
    """Accept / Reject / Recycle from the Slack alert: verify, record the outcome, update the message.

    Nothing is read or changed before the signature checks out. One decision per alert and action:
    a double click, or the same signed request replayed within Slack's five minutes, records one
    outcome. The decision applies to the hand-off the alert was about, never to a later one.
    """
    secret = secrets.get("slack/signing-secret")
    if not secret:
        raise Unauthorized("the Slack signing secret is not configured", details={"field": "X-Slack-Signature"})
    verify_slack_request(secret, headers, raw_body, clock())
    parsed = parse_interaction(raw_body)
    if parsed.ignored:
        return {"ignored": parsed.reason}
    outcome = _OUTCOMES[parsed.action]
    key = f"slack-decision:{parsed.transition_id}:{parsed.action}"
    if not claims.claim(key, CLAIM_TTL):
        return {"ignored": f"this alert was already {outcome}", "duplicate": True}
    try:
        result = leads.record_outcome(
            parsed.lead_id, outcome, reason=parsed.reason, actor=f"slack:{parsed.user_id}", source="slack",
            about=parsed.transition_id,
        )
    except Conflict as exc:  # the alert is out of date: the lead was handed off again, or never by it
        return {"ignored": exc.message}
    except Exception:
        claims.release(key)  # not recorded: a retry of the click may record it
        raise
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
