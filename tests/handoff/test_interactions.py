"""Parsing block_actions requests, on payloads recorded in Slack's documented shape."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_fakes import PAYLOADS

from chalicelib.errors import BadRequest
from chalicelib.handoff.blocks import handoff_blocks, outcome_blocks
from chalicelib.handoff.interactions import Ignored, Interaction, parse_interaction
from chalicelib.handoff.message import HandoffMessage

LEAD = "L01JD5Q4X2Y3Z4A5B6C7D8E9F0"
TRANSITION = "t_01JD5Q7Z8K3M4N5P6R7S8T9V0W"


def recorded(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / f"block_actions_{name}.json").read_text())
    return payload


def form(payload: Any) -> bytes:
    """The request body exactly as Slack sends it: urlencoded, one ``payload`` field."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return urlencode({"payload": text}).encode()


def bad(body: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_interaction(body)
    return caught.value


def test_accept_click() -> None:
    payload = recorded("accept")
    result = parse_interaction(form(payload))
    assert isinstance(result, Interaction)
    assert result.ignored is False
    assert (result.action, result.reason) == ("accept", None)
    assert (result.lead_id, result.transition_id) == (LEAD, TRANSITION)
    assert (result.user_id, result.user_name) == ("U061F7AUR", "riley.sales")
    assert (result.channel_id, result.message_ts) == ("C0LAN2Q65", "1795428001.000200")
    assert result.response_url == payload["response_url"]
    assert result.original_blocks == payload["message"]["blocks"]
    assert (result.action_ts, result.team_id) == ("1795428123.456789", "T0CAG2FKG")


def test_reject_takes_the_selected_reason() -> None:
    result = parse_interaction(form(recorded("reject")))
    assert isinstance(result, Interaction)
    assert (result.action, result.reason, result.lead_id) == ("reject", "not_fit", LEAD)


def test_recycle_click() -> None:
    payload = recorded("accept")
    payload["actions"][0].update(action_id="baton_recycle", text={"type": "plain_text", "text": "Recycle"})
    result = parse_interaction(form(payload))
    assert isinstance(result, Interaction) and result.action == "recycle"


def test_clearing_the_reject_menu_is_ignored() -> None:
    payload = recorded("reject")
    payload["actions"][0]["selected_option"] = None
    result = parse_interaction(form(payload))
    assert isinstance(result, Ignored) and result.ignored is True
    assert "without a reason" in result.reason


@pytest.mark.parametrize("kind", ["view_submission", "shortcut", "message_action", "view_closed"])
def test_other_interaction_types_are_ignored(kind: str) -> None:
    result = parse_interaction(form({"type": kind, "user": {"id": "U1"}, "view": {"id": "V1"}}))
    assert isinstance(result, Ignored)
    assert result.payload_type == kind


def test_buttons_of_other_apps_are_ignored() -> None:
    payload = recorded("accept")
    payload["actions"][0]["action_id"] = "someone_elses_button"
    assert isinstance(parse_interaction(form(payload)), Ignored)


def test_missing_optional_context_is_tolerated() -> None:
    payload = recorded("accept")
    for key in ("channel", "message", "team", "response_url"):
        payload.pop(key)
    result = parse_interaction(form(payload))
    assert isinstance(result, Interaction)
    assert result.channel_id == "C0LAN2Q65"  # from the container
    assert result.original_blocks == [] and result.response_url is None


def _broken(path: list[Any], value: Any, name: str = "accept") -> bytes:
    payload = recorded(name)
    target = payload
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return form(payload)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "payload"),
        (b"token=abc", "payload"),
        (b"payload=%7Bnot+json", "payload"),
        (b"payload=%ff%fe", "payload"),
        (form([1, 2]), "payload"),
        (_broken(["actions"], []), "payload.actions"),
        (_broken(["actions"], KeyError), "payload.actions"),
        (_broken(["actions", 0], "click"), "payload.actions[0]"),
        (_broken(["actions", 0, "value"], "not json"), "payload.actions[0].value"),
        (_broken(["actions", 0, "value"], KeyError), "payload.actions[0].value"),
        (_broken(["actions", 0, "value"], '{"l":"L1"}'), "payload.actions[0].value.t"),
        (_broken(["actions", 0, "value"], '{"l":"L 1","t":"t1"}'), "payload.actions[0].value.l"),
        (
            _broken(["actions", 0, "selected_option", "value"], '{"l":"L1","t":"t1","r":"bored"}', "reject"),
            "payload.actions[0].selected_option.value.r",
        ),
        (
            _broken(["actions", 0, "selected_option"], "not_fit", "reject"),
            "payload.actions[0].selected_option",
        ),
        (_broken(["user"], KeyError), "payload.user"),
        (_broken(["user", "id"], ""), "payload.user.id"),
        (_broken(["message", "blocks"], "nope"), "payload.message.blocks"),
        (_broken(["container"], "C1"), "payload.container"),
    ],
)
def test_bad_shapes_name_the_path(body: bytes, field: str) -> None:
    err = bad(body)
    assert err.details["field"] == field
    assert field in err.message


def test_oversized_body_is_refused() -> None:
    assert bad(b"payload=" + b"x" * (300 * 1024)).details["field"] == "payload"


def test_round_trip_message_click_outcome(handoff: HandoffMessage) -> None:
    _, blocks = handoff_blocks(handoff)
    actions = blocks[-1]
    option = actions["elements"][2]["options"][3]
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ABC", "username": "sam"},
        "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
        "message": {"ts": "1.2", "blocks": blocks},
        "response_url": "https://hooks.slack.com/actions/T1/2/3",
        "actions": [
            {
                "type": "static_select",
                "action_id": "baton_reject",
                "block_id": "baton_actions",
                "selected_option": option,
                "action_ts": "1.3",
            }
        ],
    }
    result = parse_interaction(form(payload))
    assert isinstance(result, Interaction)
    assert (result.action, result.reason) == ("reject", "wrong_contact")
    assert (result.lead_id, result.transition_id) == (handoff.lead_id, handoff.transition_id)
    updated = outcome_blocks(
        result.original_blocks, result.action, result.user_id, result.reason, handoff.occurred_at
    )
    assert "Rejected by <@U0ABC>" in updated[-1]["elements"][0]["text"]
    assert "Wrong contact" in updated[-1]["elements"][0]["text"]
