import hashlib
import hmac

import pytest

from chalicelib.errors import BadRequest, Unauthorized, ValidationFailed
from chalicelib.events import MEETING_BOOKED, MEETING_CANCELED
from chalicelib.sources.calendly import CalendlySource

from .support import NOW, payload, payload_json, request

KEY = "calendly-signing-key-for-tests"
source = CalendlySource()


def header(body: bytes, t: int = int(NOW), key: str = KEY) -> dict[str, str]:
    sig = hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Calendly-Webhook-Signature": f"t={t},v1={sig}"}


BODY = payload("calendly", "invitee_created_docs_sample.json")

# ------------------------------------------------------------------ verify


def test_valid_signature_passes():
    source.verify(request(BODY, header(BODY)), KEY, NOW)


def test_signature_within_three_minutes_passes():
    source.verify(request(BODY, header(BODY, t=int(NOW) - 179)), KEY, NOW)


def test_stale_timestamp_fails_even_with_a_valid_signature():
    with pytest.raises(Unauthorized, match="stale timestamp"):
        source.verify(request(BODY, header(BODY, t=int(NOW) - 181)), KEY, NOW)


def test_future_timestamp_fails():
    with pytest.raises(Unauthorized, match="in the future"):
        source.verify(request(BODY, header(BODY, t=int(NOW) + 600)), KEY, NOW)


def test_tampered_body_fails():
    with pytest.raises(Unauthorized, match="bad signature in Calendly-Webhook-Signature"):
        source.verify(request(BODY.replace(b"test@", b"evil@"), header(BODY)), KEY, NOW)


def test_timestamp_is_part_of_the_signed_content():
    good = header(BODY, t=int(NOW) - 10)["Calendly-Webhook-Signature"]
    moved = good.replace(f"t={int(NOW) - 10}", f"t={int(NOW)}")
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(BODY, {"Calendly-Webhook-Signature": moved}), KEY, NOW)


def test_wrong_key_fails():
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(BODY, header(BODY, key="other")), KEY, NOW)


def test_missing_header_fails():
    with pytest.raises(Unauthorized, match="missing Calendly-Webhook-Signature header"):
        source.verify(request(BODY), KEY, NOW)


@pytest.mark.parametrize("value", ["v1=abc", "t=123", "garbage", "t=abc,v1=def"])
def test_malformed_header_fails(value):
    with pytest.raises(Unauthorized, match="Calendly-Webhook-Signature"):
        source.verify(request(BODY, {"Calendly-Webhook-Signature": value}), KEY, NOW)


# ------------------------------------------------------------------ parse


def test_docs_sample_becomes_meeting_booked():
    result = source.parse(request(BODY), {})
    [event] = result.events
    uri = "https://calendly.com/scheduled_events/AAAAAAAAAAAAAAAA/invitees/AAAAAAAAAAAAAAAA"
    assert event.event_id == f"calendly:invitee.created:{uri}"
    assert event.type == MEETING_BOOKED
    assert event.ts == 1566656122.0  # envelope created_at 2019-08-24T14:15:22Z
    assert event.email == "test@example.com"
    assert event.traits == {
        "email": "test@example.com",
        "first_name": "John",
        "last_name": "Doe",
        "phone": "+1 404-555-1234",
        "utm_campaign": "string",
        "utm_source": "string",
        "utm_medium": "string",
        "utm_content": "string",
        "utm_term": "string",
    }
    props = event.properties
    assert props["event_name"] == "15 Minute Meeting"
    assert props["event_type_uri"] == "https://api.calendly.com/event_types/GBGBDCAADAEDCRZ2"
    assert props["event_uri"] == "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2"
    assert props["start_time"] == "2019-08-24T14:15:22Z" and props["start_ts"] == 1566656122.0
    assert props["questions_and_answers"] == [{"question": "string", "answer": "string"}]
    assert props["utm_source"] == "string"
    assert props["invitee_uri"] == uri


def test_canceled_maps_name_questions_and_reason():
    [event] = source.parse(request(payload("calendly", "invitee_canceled_demo.json")), {}).events
    assert event.type == MEETING_CANCELED
    assert event.event_id.startswith("calendly:invitee.canceled:https://api.calendly.com/")
    assert event.email == "grace.hopper@compilers.example"
    assert event.traits["first_name"] == "Grace"
    assert event.traits["last_name"] == "Brewster Hopper"
    assert event.traits["company"] == "Compilers Inc"
    assert event.traits["company_size"] == 51
    assert "phone" not in event.traits
    assert event.properties["cancel_reason"] == "Conflict with a board meeting"
    assert event.properties["canceler_type"] == "invitee"
    assert event.properties["rescheduled"] is False
    assert event.properties["utm_campaign"] == "spring-demo"
    assert "utm_term" not in event.properties


def test_created_and_canceled_of_one_invitee_have_distinct_ids():
    body = payload_json("calendly", "invitee_created_docs_sample.json")
    created = source.parse(request(body), {}).events[0]
    body["event"] = "invitee.canceled"
    canceled = source.parse(request(body), {}).events[0]
    assert created.event_id != canceled.event_id


def test_field_map_maps_booking_questions():
    body = payload_json("calendly", "invitee_canceled_demo.json")
    settings = {"field_map": {"What would you like to discuss": "discussion_topic"}}
    [event] = source.parse(request(body), settings).events
    assert event.traits["discussion_topic"] == "Pricing for 40 seats"


def test_field_map_to_a_custom_attribute_named_as_rules_read_it():
    body = payload_json("calendly", "invitee_canceled_demo.json")
    settings = {"field_map": {"What would you like to discuss": "custom.topic"}}
    [event] = source.parse(request(body), settings).events
    assert event.traits["topic"] == "Pricing for 40 seats" and "custom.topic" not in event.traits


def test_other_calendly_events_are_ignored():
    body = {
        **payload_json("calendly", "invitee_created_docs_sample.json"),
        "event": "invitee_no_show.created",
    }
    result = source.parse(request(body), {})
    assert result.events == [] and result.body == {"ok": True, "ignored": 1}


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b.pop("payload"), "payload"),
        (lambda b: b["payload"].pop("uri"), "payload.uri"),
        (lambda b: b["payload"].pop("email"), "payload.email"),
        (lambda b: b.update(created_at="2019-08-24 14:15:22"), "created_at"),
        (
            lambda b: b["payload"]["scheduled_event"].update(start_time="tomorrow"),
            "payload.scheduled_event.start_time",
        ),
        (lambda b: b["payload"].update(questions_and_answers={"q": 1}), "payload.questions_and_answers"),
        (lambda b: b["payload"].update(tracking=["x"]), "payload.tracking"),
        (lambda b: b.update(event=["invitee.created"]), "event"),
    ],
)
def test_wrong_shapes_name_the_path(mutate, field):
    body = payload_json("calendly", "invitee_created_docs_sample.json")
    mutate(body)
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == field


def test_not_json_is_bad_request():
    with pytest.raises(BadRequest):
        source.parse(request(b"\xff\xfe"), {})


def test_bad_answer_to_a_typed_question_names_its_position():
    body = payload_json("calendly", "invitee_canceled_demo.json")
    body["payload"]["questions_and_answers"] = [
        {"question": "", "answer": "x", "position": 0},
        {"question": "Company size", "answer": "lots", "position": 1},
    ]
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == "payload.questions_and_answers[1].answer"
