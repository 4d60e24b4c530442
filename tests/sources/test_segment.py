import hashlib
import hmac
import json

import pytest

from chalicelib.errors import BadRequest, Unauthorized, ValidationFailed
from chalicelib.events import DEMO_REQUEST, IDENTIFY, PAGE_VIEW, TRIAL_SIGNUP, WEBINAR_REGISTERED
from chalicelib.sources.segment import SegmentSource

from .support import NOW, payload, payload_json, request

SECRET = "segment-shared-secret-for-tests"
source = SegmentSource()
DOCS = payload_json("segment", "webhooks_destination_docs_examples.json")


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def parse(body, settings=None):
    return source.parse(request(body), settings or {})


# ------------------------------------------------------------------ verify


def test_valid_signature_passes():
    body = payload("segment", "track_demo_requested.json")
    source.verify(request(body, {"X-Signature": sign(body)}), SECRET, NOW)
    source.verify(request(body, {"X-Signature": sign(body).upper()}), SECRET, NOW)


def test_bad_signature_fails():
    body = payload("segment", "track_demo_requested.json")
    with pytest.raises(Unauthorized, match="bad signature in X-Signature"):
        source.verify(request(body + b"\n", {"X-Signature": sign(body)}), SECRET, NOW)
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(body, {"X-Signature": sign(body, "other")}), SECRET, NOW)
    with pytest.raises(Unauthorized, match="bad signature"):  # SHA-256 is not what Segment sends
        sha256 = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        source.verify(request(body, {"X-Signature": sha256}), SECRET, NOW)


def test_missing_header_fails():
    with pytest.raises(Unauthorized, match="missing X-Signature header"):
        source.verify(request(b"{}"), SECRET, NOW)


# ------------------------------------------------------------------ parse: documented examples


def test_destination_page_example():
    [event] = parse(DOCS["page"]).events
    assert event.type == PAGE_VIEW
    assert event.anonymous_id == "segment:user:019mr8mf4r" and event.email is None
    assert event.ts == 1354408208.276
    assert event.properties == {
        "path": "/pricing",
        "referrer": "https://segment.com",
        "title": "Segment Pricing",
        "url": "https://segment.com/pricing",
    }
    assert event.event_id.startswith("segment:h_")  # no messageId in this example: content hash


def test_destination_identify_example_links_user_and_email():
    [event] = parse(DOCS["identify"]).events
    assert event.type == IDENTIFY
    assert event.email == "achilles@segment.com"
    assert event.anonymous_id == "segment:user:019mr8mf4r"
    assert event.traits == {
        "email": "achilles@segment.com",
        "name": "Achilles",
        "subscriptionPlan": "Premium",
        "friendCount": 29,
    }


def test_unmapped_track_and_group_are_counted_not_emitted():
    for name in ("track", "group"):
        result = parse(DOCS[name])
        assert result.events == [] and result.status == 200
        assert result.body == {"ok": True, "ignored": 1}


def test_spec_identify_example():
    [event] = parse(payload("segment", "identify_spec_example.json")).events
    assert event.event_id == "segment:022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert event.email == "peter@example.com"
    assert event.anonymous_id == "segment:user:97980cfea0067"  # userId wins over anonymousId
    assert event.traits["country"] == "USA"
    assert event.traits["address"]["city"] == "San Francisco"
    assert event.ts == 1424730535.111


def test_spec_page_example_with_campaign_utm():
    [event] = parse(payload("segment", "page_spec_example.json")).events
    assert event.type == PAGE_VIEW
    assert event.properties == {
        "title": "Welcome | Initech",
        "url": "http://www.example.com",
        "name": "Home",
        "utm_campaign": "TPS Innovation Newsletter",
        "utm_source": "Newsletter",
        "utm_medium": "email",
        "utm_term": "tps reports",
        "utm_content": "image link",
    }


# ------------------------------------------------------------------ parse: mapping rules


def test_track_demo_requested_uses_context_traits_email():
    [event] = parse(payload("segment", "track_demo_requested.json")).events
    assert event.type == DEMO_REQUEST
    assert event.event_id == "segment:ajs-f8ca1e4de5024d9430b3928bd8ac6b96"
    assert event.email == "margaret.hamilton@apollo.example" and event.anonymous_id is None
    assert event.ts == 1715674531.992  # 10:15:31.992+02:00
    assert event.properties == {
        "demo_type": "live",
        "plan": "team",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "brand",
        "segment_event": "Demo Requested",
    }


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Trial Started", TRIAL_SIGNUP),
        ("  trial   STARTED ", TRIAL_SIGNUP),
        ("Ebook Downloaded", "content_download"),
    ],
)
def test_default_track_map_ignores_case_and_spacing(name, expected):
    body = {**payload_json("segment", "track_demo_requested.json"), "event": name}
    assert parse(body).events[0].type == expected


def test_track_map_setting_adds_overrides_and_disables():
    body = {**payload_json("segment", "track_demo_requested.json"), "event": "Webinar Signed Up"}
    assert (
        parse(body, {"track_map": {"Webinar Signed Up": WEBINAR_REGISTERED}}).events[0].type
        == WEBINAR_REGISTERED
    )
    body["event"] = "Demo Requested"
    assert parse(body, {"track_map": {"demo requested": None}}).body == {"ok": True, "ignored": 1}
    assert parse(body, {"track_map": {"Demo Requested": "not_a_type"}}).events == []


def test_anonymous_track_uses_anonymous_id():
    body = payload_json("segment", "track_demo_requested.json")
    del body["context"]["traits"], body["userId"]
    [event] = parse(body).events
    assert event.email is None
    assert event.anonymous_id == "segment:anon:23adfd82-aa0f-45a7-a756-24f2a7a4c895"


def test_identify_maps_reserved_traits():
    body = {
        "type": "identify",
        "messageId": "m1",
        "timestamp": "2024-05-14T10:00:00Z",
        "anonymousId": "a1",
        "traits": {
            "firstName": "Mary",
            "last_name": "Jackson",
            "title": "Engineer",
            "phone": "+1 555 0100",
            "company": {"name": "NACA", "industry": "Aerospace", "employee_count": "1,200"},
            "annualRevenue": 1e7,
        },
        "context": {"campaign": {"source": "newsletter"}},
    }
    [event] = parse(body).events
    assert event.email is None and event.anonymous_id == "segment:anon:a1"
    assert event.traits == {
        "first_name": "Mary",
        "last_name": "Jackson",
        "job_title": "Engineer",
        "phone": "+1 555 0100",
        "company": "NACA",
        "industry": "Aerospace",
        "company_size": 1200,
        "annual_revenue": 1e7,
        "utm_source": "newsletter",
    }


def test_custom_attributes_are_named_as_rules_read_them():
    """``custom.plan`` and ``custom: {plan}`` are the custom attribute ``plan`` (rules read
    ``custom.plan``), as /v1/events stores them; Baton's own names are refused under custom."""
    body = {"type": "identify", "messageId": "m1", "timestamp": "2024-05-14T10:00:00Z", "userId": "u1",
            "traits": {"custom.plan": "pro", "custom": {"seats": 12}, "employees": "50-200"}}
    [event] = parse(body).events
    assert event.traits == {"plan": "pro", "seats": 12, "company_size": 50}
    for traits, field in (({"custom.company_size": 5}, "traits.custom.company_size"),
                          ({"custom": {"country": "FR"}}, "traits.custom.country"),
                          ({"custom": "pro"}, "traits.custom")):
        with pytest.raises(ValidationFailed) as caught:
            parse({**body, "traits": traits})
        assert caught.value.field == field


def test_screen_is_a_page_view():
    body = {"type": "screen", "name": "Pricing", "userId": "u", "timestamp": "2024-05-14T10:00:00Z"}
    assert parse(body).events[0].properties == {"screen": "Pricing"}


def test_received_at_is_the_fallback_time():
    body = {"type": "page", "userId": "u", "receivedAt": "2024-05-14T10:00:00Z"}
    assert parse(body).events[0].ts == 1715680800.0


@pytest.mark.parametrize(
    "body, field",
    [
        ([], "body"),
        ({"userId": "u", "timestamp": "2024-05-14T10:00:00Z"}, "type"),
        ({"type": "page", "userId": "u"}, "receivedAt"),
        ({"type": "page", "userId": "u", "timestamp": "2024-05-14"}, "timestamp"),
        ({"type": "page", "userId": "u", "timestamp": "2024-05-14T10:00:00"}, "timestamp"),
        ({"type": "page", "timestamp": "2024-05-14T10:00:00Z"}, "userId"),
        ({"type": "page", "userId": {"id": 1}, "timestamp": "2024-05-14T10:00:00Z"}, "userId"),
        ({"type": "track", "userId": "u", "timestamp": "2024-05-14T10:00:00Z"}, "event"),
        (
            {"type": "page", "userId": "u", "timestamp": "2024-05-14T10:00:00Z", "properties": []},
            "properties",
        ),
        (
            {"type": "page", "userId": "u", "timestamp": "2024-05-14T10:00:00Z", "context": {"campaign": 1}},
            "context.campaign",
        ),
        (
            {
                "type": "identify",
                "userId": "u",
                "timestamp": "2024-05-14T10:00:00Z",
                "traits": {"email": "x"},
            },
            "traits.email",
        ),
        (
            {
                "type": "track",
                "event": "Demo Requested",
                "userId": "u",
                "timestamp": "2024-05-14T10:00:00Z",
                "context": {"traits": {"email": 5}},
            },
            "context.traits.email",
        ),
    ],
)
def test_wrong_shapes_name_the_path(body, field):
    with pytest.raises(ValidationFailed) as err:
        parse(json.dumps(body))
    assert err.value.field == field


def test_not_json_is_bad_request():
    with pytest.raises(BadRequest):
        parse(b"type=page")
