"""The handoff message contract (docs/handoff-message.md)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from slack_fakes import handoff_dict

from chalicelib.errors import BadRequest
from chalicelib.handoff.message import SCHEMA_V1, HandoffMessage, parse_handoff


def _bad(data: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_handoff(json.dumps(data) if not isinstance(data, str) else data)
    return caught.value


def test_parses_the_documented_example() -> None:
    msg = parse_handoff(json.dumps(handoff_dict()))
    assert msg.schema_ == SCHEMA_V1
    assert msg.stage == "sql"
    assert msg.route.channel == "#sales-emea"
    assert msg.route.sla_hours == 4
    assert msg.sla_deadline == datetime(2026, 11, 23, 14, tzinfo=timezone.utc)
    assert msg.lead.company_size == 120
    assert msg.scores.engagement == 72.5
    assert msg.reasons[0].kind == "fit"
    assert msg.display_name == "Jane Doe"


def test_round_trips_through_json_with_the_schema_key() -> None:
    msg = parse_handoff(json.dumps(handoff_dict()))
    data = json.loads(msg.to_json())
    assert data["schema"] == SCHEMA_V1
    assert "schema_" not in data
    assert parse_handoff(msg.to_json()) == msg
    assert msg.to_dict() == data


def test_producers_can_build_it_by_field_name() -> None:
    data = handoff_dict()
    data.pop("schema")
    msg = HandoffMessage(**data)
    assert json.loads(msg.to_json())["schema"] == SCHEMA_V1


def test_optional_parts_may_be_null_or_missing() -> None:
    data = handoff_dict(sla_deadline=None, reasons=[], key_events=[])
    data["route"]["escalation_channel"] = None
    data["lead"] = {"email": "x@y.example"}
    msg = parse_handoff(json.dumps(data))
    assert msg.sla_deadline is None
    assert msg.lead.company is None
    assert msg.display_name == "x@y.example"


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    msg = parse_handoff(json.dumps(handoff_dict(added_later={"x": 1})))
    assert msg.lead_id.startswith("L")


def test_naive_timestamps_are_utc() -> None:
    msg = parse_handoff(json.dumps(handoff_dict(occurred_at="2026-11-23T10:00:00")))
    assert msg.occurred_at == datetime(2026, 11, 23, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("transition_id"), "transition_id"),
        (lambda d: d.update(stage="opportunity"), "stage"),
        (lambda d: d.update(lead_id="L" * 57), "lead_id"),
        (lambda d: d.update(lead_id="L 1"), "lead_id"),
        (lambda d: d.update(ruleset_version=-1), "ruleset_version"),
        (lambda d: d["route"].pop("channel"), "route.channel"),
        (lambda d: d["route"].update(sla_hours=-1), "route.sla_hours"),
        (lambda d: d["scores"].update(fit="high"), "scores.fit"),
        (lambda d: d["reasons"][1].update(kind="decay"), "reasons[1].kind"),
        (lambda d: d["key_events"][0].update(at="yesterday"), "key_events[0].at"),
        (lambda d: d["lead"].update(company_size=-5), "lead.company_size"),
    ],
)
def test_bad_input_names_the_field(mutate: Any, field: str) -> None:
    data = handoff_dict()
    mutate(data)
    err = _bad(data)
    assert err.details["field"] == field
    assert field in err.message


def test_another_schema_version_is_refused_by_name() -> None:
    err = _bad(handoff_dict(schema="baton.handoff.v2"))
    assert err.details["field"] == "schema"
    assert "baton.handoff.v1" in err.message


def test_not_json_and_not_an_object() -> None:
    assert _bad("{not json").message == "handoff message is not valid JSON"
    assert _bad([]).details["field"] == "body"


def test_error_details_never_echo_personal_data() -> None:
    data = handoff_dict()
    data["lead"]["email"] = {"secret": "jane.doe@acme.example"}
    err = _bad(data)
    assert err.details["field"] == "lead.email"
    assert "jane.doe" not in json.dumps(err.to_dict())


def test_long_display_texts_are_cut_not_refused() -> None:
    data = handoff_dict(reason="r" * 5000)
    data["lead"]["company"] = "c" * 5000
    data["key_events"][0]["label"] = "Viewed " + "/x" * 1000
    msg = parse_handoff(json.dumps(data))
    assert len(msg.reason) == 1000 and len(msg.lead.company or "") == 300
    assert len(msg.key_events[0].label) == 300
    data["route"]["channel"] = "#" + "c" * 300
    assert _bad(data).details["field"] == "route.channel"
