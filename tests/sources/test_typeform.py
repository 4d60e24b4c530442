import base64
import hashlib
import hmac
import json

import pytest

from chalicelib.errors import BadRequest, Unauthorized, ValidationFailed
from chalicelib.events import DEMO_REQUEST, FORM_SUBMITTED
from chalicelib.sources.typeform import TypeformSource

from .support import NOW, payload, payload_json, request

SECRET = "typeform-test-secret"
source = TypeformSource()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# ------------------------------------------------------------------ verify


def test_valid_signature_passes():
    body = payload("typeform", "form_response_docs_example.json")
    source.verify(request(body, {"Typeform-Signature": sign(body)}), SECRET, NOW)


def test_signature_of_other_body_fails():
    body = payload("typeform", "form_response_docs_example.json")
    with pytest.raises(Unauthorized, match="bad signature in Typeform-Signature"):
        source.verify(request(body + b" ", {"Typeform-Signature": sign(body)}), SECRET, NOW)


def test_wrong_secret_fails():
    body = payload("typeform", "form_response_docs_example.json")
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(body, {"Typeform-Signature": sign(body, "other")}), SECRET, NOW)


def test_missing_header_fails():
    with pytest.raises(Unauthorized, match="missing Typeform-Signature header"):
        source.verify(request(b"{}"), SECRET, NOW)


def test_hex_digest_or_other_scheme_is_refused():
    body = b"{}"
    hexsig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(body, {"Typeform-Signature": hexsig}), SECRET, NOW)
    with pytest.raises(Unauthorized, match="expected 'sha256="):
        source.verify(request(body, {"Typeform-Signature": "sha1=abc"}), SECRET, NOW)


def test_non_ascii_signature_header_is_a_bad_signature_not_a_crash():
    with pytest.raises(Unauthorized):
        source.verify(request(b"{}", {"Typeform-Signature": "sha256=ünïcode\udcff"}), SECRET, NOW)


# ------------------------------------------------------------------ parse


def test_docs_example_maps_answers_by_ref():
    result = source.parse(request(payload("typeform", "form_response_docs_example.json")), {})
    assert result.status == 200 and result.body == {"ok": True, "ignored": 0}
    [event] = result.events
    assert event.event_id == "typeform:LtWXD3crgy"
    assert event.type == FORM_SUBMITTED
    assert event.ts == 1516299422.0  # 2018-01-18T18:17:02Z
    assert event.email == "laura@example.com" and event.anonymous_id is None
    assert event.source == "typeform"
    assert event.traits["email"] == "laura@example.com"
    # answers without field.ref get it from the form definition
    assert event.traits["readable_ref_short_text"] == "Laura"
    assert event.traits["readable_ref_picture_choice"] == ["London", "Sydney"]
    assert event.traits["readable_ref_multiple_choice"] == "London"
    assert event.traits["readable_ref_yes_no"] is False
    assert event.traits["readable_ref_calendly"].startswith("https://calendly.com/")
    assert event.properties == {
        "form_id": "lT4Z3j",
        "form_title": "Webhooks example",
        "offer": "lT4Z3j",
        "response_token": "a3a12ec67a1365927098a606107fac15",
        "calculated_score": 9,
        "user_id": "abc123456",
    }


def test_lead_form_maps_known_traits_field_map_and_utm():
    settings = {"field_map": {"employees": "company_size", "role": "job_title"}}
    [event] = source.parse(request(payload("typeform", "form_response_lead_form.json")), settings).events
    assert event.email == "ada.lovelace@analytical-engines.example"
    assert event.traits == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada.lovelace@analytical-engines.example",
        "company": "Analytical Engines Ltd",
        "company_size": 250,
        "phone": "+442071838750",
        "job_title": "VP Engineering",
        "interests": ["Scoring", "Routing", "Forecasting"],
        "utm_source": "linkedin",
        "utm_medium": "paid_social",
        "utm_campaign": "q2-ebook",
    }
    assert event.properties["utm_campaign"] == "q2-ebook"
    assert event.properties["form_title"] == "Download: The 2024 Lead Scoring Playbook"


def test_field_map_to_a_custom_attribute_named_as_rules_read_it():
    settings = {"field_map": {"employees": "custom.headcount", "role": "job_title"}}
    [event] = source.parse(request(payload("typeform", "form_response_lead_form.json")), settings).events
    assert event.traits["headcount"] == 250 and "company_size" not in event.traits


def test_offer_and_demo_forms_come_from_settings():
    settings = {"offers": {"Gx7dKq2R": "lead-scoring-playbook"}, "demo_forms": ["Gx7dKq2R"]}
    [event] = source.parse(request(payload("typeform", "form_response_lead_form.json")), settings).events
    assert event.type == DEMO_REQUEST
    assert event.properties["offer"] == "lead-scoring-playbook"


def test_missing_email_names_answers():
    body = payload_json("typeform", "form_response_docs_example.json")
    body["form_response"]["answers"] = [a for a in body["form_response"]["answers"] if a["type"] != "email"]
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == "form_response.answers"
    assert "email" in err.value.message


def test_hidden_email_is_a_fallback():
    body = payload_json("typeform", "form_response_docs_example.json")
    body["form_response"]["answers"] = []
    body["form_response"]["hidden"]["email"] = "Hidden@Example.com"
    [event] = source.parse(request(body), {}).events
    assert event.email == "hidden@example.com"
    assert "email" not in event.properties


def test_bad_email_answer_names_its_path():
    body = payload_json("typeform", "form_response_docs_example.json")
    body["form_response"]["answers"][1]["email"] = "not an email"
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == "form_response.answers[1].email"


def test_uncoercible_company_size_names_its_path():
    body = payload_json("typeform", "form_response_lead_form.json")
    body["form_response"]["answers"][4] = {
        "type": "text",
        "text": "lots",
        "field": {"id": "x", "ref": "company_size"},
    }
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == "form_response.answers[4].text"


@pytest.mark.parametrize(
    "stamp", ["2018-01-18 18:17:02", "2018-01-18T18:17:02", "18/01/2018", "2018-13-18T18:17:02Z", 1516299422]
)
def test_malformed_submitted_at_names_path(stamp):
    body = payload_json("typeform", "form_response_docs_example.json")
    body["form_response"]["submitted_at"] = stamp
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == "form_response.submitted_at"


def test_offset_timestamps_are_understood():
    body = payload_json("typeform", "form_response_docs_example.json")
    body["form_response"]["submitted_at"] = "2018-01-18T20:17:02.5+02:00"
    [event] = source.parse(request(body), {}).events
    assert event.ts == 1516299422.5


@pytest.mark.parametrize(
    "body, field",
    [
        ([], "body"),
        ({"event_type": "form_response"}, "event_id"),
        ({"event_id": "x"}, "form_response"),
        ({"event_id": "x", "form_response": []}, "form_response"),
        (
            {"event_id": "x", "form_response": {"submitted_at": "2018-01-18T18:17:02Z"}},
            "form_response.form_id",
        ),
        (
            {
                "event_id": "x",
                "form_response": {
                    "form_id": "f",
                    "submitted_at": "2018-01-18T18:17:02Z",
                    "answers": {"a": 1},
                },
            },
            "form_response.answers",
        ),
        (
            {
                "event_id": "x",
                "form_response": {
                    "form_id": "f",
                    "submitted_at": "2018-01-18T18:17:02Z",
                    "answers": [{"type": "text", "text": "a"}],
                },
            },
            "form_response.answers[0].field",
        ),
    ],
)
def test_wrong_shapes_name_the_path(body, field):
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == field


def test_not_json_is_bad_request():
    with pytest.raises(BadRequest):
        source.parse(request(b"event_id=1&form_response=2"), {})


def test_partial_responses_are_ignored():
    body = {
        **payload_json("typeform", "form_response_docs_example.json"),
        "event_type": "form_response_partial",
    }
    result = source.parse(request(json.dumps(body)), {})
    assert result.events == [] and result.body == {"ok": True, "ignored": 1}
