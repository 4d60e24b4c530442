import base64
import hashlib
import hmac

import pytest

from chalicelib.errors import BadRequest, Unauthorized, ValidationFailed
from chalicelib.events import IDENTIFY
from chalicelib.sources.hubspot import HubSpotSource, decode_uri, signature_v3

from .support import NOW, payload, payload_json, request

SECRET = "hubspot-client-secret-for-tests"
URL = "https://api.baton.example/v1/webhooks/hubspot"
source = HubSpotSource()
BODY = payload("hubspot", "contact_changes.json")


def sign(method: str, uri: str, body: bytes, timestamp: str, secret: str = SECRET) -> str:
    """Independent of the module: HubSpot's recipe written out by hand."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def signed(body: bytes = BODY, *, ms: int = int(NOW * 1000), url: str = URL, signed_uri: str | None = None):
    ts = str(ms)
    headers = {
        "X-HubSpot-Signature-v3": sign("POST", signed_uri or url, body, ts),
        "X-HubSpot-Request-Timestamp": ts,
    }
    return request(body, headers, url=url)


# ------------------------------------------------------------------ verify


def test_sdk_published_vector():
    v = payload_json("hubspot", "signature_v3_sdk_vector.json")
    assert (
        signature_v3(
            v["client_secret"], v["http_method"], v["url"], v["request_body"].encode(), v["timestamp"]
        )
        == v["signature"]
    )
    req = request(
        v["request_body"],
        {"X-HubSpot-Signature-v3": v["signature"], "X-HubSpot-Request-Timestamp": v["timestamp"]},
        url=v["url"],
    )
    source.verify(req, v["client_secret"], int(v["timestamp"]) / 1000 + 1)


def test_valid_signature_passes():
    source.verify(signed(), SECRET, NOW)


def test_tampered_body_fails():
    req = signed()
    req = request(BODY.replace(b"Katherine", b"Mallory"), dict(req.headers), url=URL)
    with pytest.raises(Unauthorized, match="bad signature in X-HubSpot-Signature-v3"):
        source.verify(req, SECRET, NOW)


def test_method_and_url_are_signed():
    req = signed()
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(BODY, dict(req.headers), url=URL + "/other"), SECRET, NOW)
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(BODY, dict(req.headers), url=URL, method="PUT"), SECRET, NOW)


def test_wrong_secret_fails():
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(signed(), "other-secret", NOW)


def test_older_than_five_minutes_fails():
    with pytest.raises(Unauthorized, match="stale timestamp in X-HubSpot-Request-Timestamp"):
        source.verify(signed(ms=int((NOW - 301) * 1000)), SECRET, NOW)
    source.verify(signed(ms=int((NOW - 299) * 1000)), SECRET, NOW)


def test_timestamp_in_seconds_instead_of_ms_is_stale():
    with pytest.raises(Unauthorized, match="stale"):
        source.verify(signed(ms=int(NOW)), SECRET, NOW)


@pytest.mark.parametrize("missing", ["X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"])
def test_missing_headers_fail(missing):
    headers = dict(signed().headers)
    del headers[missing.lower()]
    with pytest.raises(Unauthorized, match=f"missing {missing} header"):
        source.verify(request(BODY, headers, url=URL), SECRET, NOW)


def test_uri_decoding_follows_hubspots_table():
    assert decode_uri("https://h.example/p?a=%3A%2f%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%26%3D%25") == (
        "https://h.example/p?a=:/?@!$'()*,;&b=%20%26%3D%25"
    )


def test_signature_covers_the_decoded_uri():
    url = URL + "?portal=62515&return=https%3A%2F%2Fapp.example%2Fa%20b"
    decoded = URL + "?portal=62515&return=https://app.example/a%20b"
    source.verify(signed(url=url, signed_uri=decoded), SECRET, NOW)
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(signed(url=url, signed_uri=url), SECRET, NOW)


# ------------------------------------------------------------------ parse


def test_docs_example():
    result = source.parse(request(payload("hubspot", "webhooks_docs_example.json")), {})
    change, creation = result.events
    assert change.event_id == "hubspot:3816279340"
    assert change.type == IDENTIFY
    assert change.anonymous_id == "hubspot:1246965" and change.email is None
    assert change.traits == {"lifecyclestage": "subscriber"}
    assert change.ts == 1462216307.945
    assert change.properties == {
        "subscription_type": "contact.propertyChange",
        "portal_id": 33,
        "change_source": "ACADEMY",
        "property_name": "lifecyclestage",
    }
    assert creation.event_id == "hubspot:3816279480"
    assert creation.anonymous_id == "hubspot:1246978" and creation.traits == {}
    assert result.body == {"ok": True, "ignored": 0}


def test_docs_variant_with_event_type_field():
    body = payload_json("hubspot", "webhooks_docs_example.json")
    for item in body:
        item["eventType"] = item.pop("subscriptionType")
    assert len(source.parse(request(body), {}).events) == 2


def test_contact_changes_map_to_traits_and_link_email():
    result = source.parse(request(BODY), {})
    created, email, size, revenue, title, custom = result.events
    assert created.traits == {} and created.anonymous_id == "hubspot:65059681032"
    assert email.email == "katherine.johnson@orbits.example"
    assert email.anonymous_id == "hubspot:65059681032"
    assert email.traits == {"email": "katherine.johnson@orbits.example"}
    assert size.traits == {"company_size": 100} and size.email is None
    assert revenue.traits == {"annual_revenue": 2500000.0}
    assert title.traits == {"job_title": "Head of Flight Research"}
    assert custom.traits == {"favorite_color": "teal"}
    assert result.body == {"ok": True, "ignored": 2}  # contact.deletion, deal.creation


def test_field_map_setting():
    [*_, custom] = source.parse(request(BODY), {"field_map": {"favorite_color": "department"}}).events
    assert custom.traits == {"department": "teal"}


def test_field_map_to_a_custom_attribute_named_as_rules_read_it():
    [*_, custom] = source.parse(request(BODY), {"field_map": {"favorite_color": "custom.color"}}).events
    assert custom.traits == {"color": "teal"}  # (rules read it as custom.color)
    with pytest.raises(ValidationFailed) as caught:
        source.parse(request(BODY), {"field_map": {"favorite_color": "custom.company_size"}})
    assert caught.value.field.endswith("propertyValue") and "Baton's own attribute" in str(caught.value)


def test_cleared_property_is_ignored():
    body = [
        {
            "eventId": 1,
            "objectId": 2,
            "occurredAt": 1715680800000,
            "subscriptionType": "contact.propertyChange",
            "propertyName": "company",
            "propertyValue": "",
        }
    ]
    result = source.parse(request(body), {})
    assert result.events == [] and result.body["ignored"] == 1


@pytest.mark.parametrize(
    "change, field",
    [
        ({"eventId": "abc"}, "[1].eventId"),
        ({"objectId": None}, "[1].objectId"),
        ({"occurredAt": "1715680801456"}, "[1].occurredAt"),
        ({"occurredAt": -5}, "[1].occurredAt"),
        ({"propertyName": None}, "[1].propertyName"),
        ({"propertyValue": "not-an-email"}, "[1].propertyValue"),
        ({"subscriptionType": None}, "[1].eventType"),
    ],
)
def test_wrong_shapes_name_the_path(change, field):
    body = payload_json("hubspot", "contact_changes.json")
    body[1].update(change)
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == field


def test_non_numeric_company_size_names_the_path():
    body = payload_json("hubspot", "contact_changes.json")
    body[2]["propertyValue"] = "a few"
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(body), {})
    assert err.value.field == "[2].propertyValue"


def test_object_instead_of_array_and_non_objects():
    with pytest.raises(ValidationFailed) as err:
        source.parse(request({"eventId": 1}), {})
    assert err.value.field == "body"
    with pytest.raises(ValidationFailed) as err:
        source.parse(request([1]), {})
    assert err.value.field == "[0]"


def test_not_json_is_bad_request():
    with pytest.raises(BadRequest):
        source.parse(request(b"<xml/>"), {})
