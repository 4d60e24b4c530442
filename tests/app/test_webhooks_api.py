"""Vendor webhooks through the real route: secrets from SSM (moto), signatures on the raw body."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest

from tests.app.conftest import ADMIN, FORM_HEADERS, Api, table_items

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


@pytest.fixture
def secrets(api: Api) -> None:
    import boto3

    ssm = boto3.client("ssm")
    for name, value in {"segment": "seg-secret", "mailchimp": "mc-key"}.items():
        ssm.put_parameter(Name=f"/baton/local/sources/{name}/secret", Value=value, Type="SecureString")


def _segment(api: Api, body: bytes, signature: str | None) -> object:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature"] = signature
    return api.client.http.post("/v1/webhooks/segment", headers=headers, body=body)


def test_signed_segment_track_scores_the_lead(api: Api, secrets: None) -> None:
    body = (PAYLOADS / "segment" / "track_demo_requested.json").read_bytes()
    good = hmac.new(b"seg-secret", body, hashlib.sha1).hexdigest()
    r = _segment(api, body, good)
    assert r.status_code == 200, r.json_body
    assert r.json_body["accepted"] == 1
    lead = api.get("/v1/leads?email=margaret.hamilton@apollo.example", headers=ADMIN).json_body
    assert lead["events"]["items"][0]["type"] == "demo_request"
    again = _segment(api, body, good)  # Segment retries: counted once
    assert again.json_body["duplicates"] == 1


def test_a_replayed_signed_webhook_does_not_bring_an_erased_lead_back(api: Api, secrets: None) -> None:
    # Segment signs the body only (no timestamp): a captured delivery verifies forever.
    body = (PAYLOADS / "segment" / "track_demo_requested.json").read_bytes()
    good = hmac.new(b"seg-secret", body, hashlib.sha1).hexdigest()
    _segment(api, body, good)
    lookup = "/v1/leads?email=margaret.hamilton@apollo.example"
    lead_id = api.get(lookup, headers=ADMIN).json_body["lead_id"]
    assert api.client.http.delete(f"/v1/leads/{lead_id}", headers=ADMIN).status_code == 200
    replayed = _segment(api, body, good)
    assert replayed.status_code == 200 and replayed.json_body["accepted"] == 0  # a 2xx: Segment stops retrying
    assert api.get(lookup, headers=ADMIN).status_code == 404
    assert "margaret" not in str(table_items(os.environ["BATON_LEADS_TABLE"]))
    signup = api.post("/v1/forms/newsletter", raw="email=margaret.hamilton%40apollo.example", headers=FORM_HEADERS)
    assert signup.status_code == 200  # after the erasure, a new signup is a new lead
    again = api.get(lookup, headers=ADMIN).json_body
    assert again["lead_id"] == lead_id and [e["type"] for e in again["events"]["items"]] == ["form_submitted"]


@pytest.mark.parametrize("signature", [None, "0" * 40, "not-hex"])
def test_bad_or_missing_signature_is_401_and_stores_nothing(api: Api, secrets: None, signature: str | None) -> None:
    body = (PAYLOADS / "segment" / "track_demo_requested.json").read_bytes()
    r = _segment(api, body, signature)
    assert r.status_code == 401
    assert table_items(os.environ["BATON_LEADS_TABLE"]) == []


def test_mailchimp_validation_get_and_keyed_post(api: Api, secrets: None) -> None:
    assert api.client.http.get("/v1/webhooks/mailchimp?key=mc-key").status_code == 200
    assert api.client.http.get("/v1/webhooks/mailchimp?key=wrong").status_code == 401
    body = (PAYLOADS / "mailchimp" / "subscribe_lead_with_merge_fields.txt").read_text().strip()
    r = api.client.http.post("/v1/webhooks/mailchimp?key=mc-key",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, body=body)
    assert r.status_code == 200, r.json_body
    lead = api.get("/v1/leads?email=hedy.lamarr@spread-spectrum.example", headers=ADMIN).json_body
    assert lead["attributes"]["first_name"] == "Hedy"


@pytest.mark.parametrize(("settings", "named"), [
    ('{"field_map": {"COMPANY": "custom.company_size"}}',
     'sources/mailchimp/settings: field_map["COMPANY"]: company_size is Baton\'s own attribute'),
    ('{"field_map": {"COMPANY": ""}}', 'sources/mailchimp/settings: field_map["COMPANY"] must name a trait'),
    ('{"field_map": {"COMPANY": "' + "k" * 65 + '"}}', "a custom attribute's name is at most 64 characters"),
    ('{"field_map": ["COMPANY"]}', "sources/mailchimp/settings: field_map must be an object"),
    ('{"field_map": {"COMPANY": "plan",}}', "sources/mailchimp/settings is not valid JSON: Expecting property name"),
    ("[]", "sources/mailchimp/settings must be a JSON object"),
], ids=["baton's own name", "empty", "too long", "a list", "a stray comma", "not an object"])
def test_a_wrong_source_setting_is_a_5xx_naming_it_and_stores_nothing(
    api: Api, secrets: None, settings: str, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Settings are written by hand into SSM: a mistake there is ours. A 5xx (the vendor retries
    once it is fixed; a 4xx about its own field would have it drop the delivery), logged."""
    import boto3

    boto3.client("ssm").put_parameter(Name="/baton/local/sources/mailchimp/settings", Value=settings, Type="String")
    body = (PAYLOADS / "mailchimp" / "subscribe_lead_with_merge_fields.txt").read_text().strip()
    with caplog.at_level("ERROR", logger="baton.api"):
        r = api.client.http.post("/v1/webhooks/mailchimp?key=mc-key",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}, body=body)
    assert r.status_code == 500 and r.json_body["error"]["code"] == "misconfigured"
    assert named in r.json_body["error"]["message"]
    assert any(named in record.getMessage() for record in caplog.records)
    assert table_items(os.environ["BATON_LEADS_TABLE"]) == []


def test_unknown_source_and_unconfigured_secret(api: Api) -> None:
    r = api.post("/v1/webhooks/zapier", {"a": 1})
    assert r.status_code == 404 and "segment" in r.json_body["error"]["message"]
    r = api.post("/v1/webhooks/typeform", {"event_id": "x"})
    assert r.status_code == 401


def test_a_signed_sender_cannot_grow_a_lead_or_an_event_past_dynamodbs_limit(api: Api, secrets: None) -> None:
    # Segment forwards what a website's visitors call identify and track with: long trait names,
    # large objects, a 900 KB property. Every delivery is a 2xx, the lead's item stays bounded, and
    # the lead keeps scoring (before, the fifth delivery was a 503 and so was every one after it).
    import json

    from chalicelib.events import MAX_DATA_BYTES
    from tests.itemsize import ITEM_LIMIT, item_size

    def deliver(message: dict[str, object]) -> object:
        body = json.dumps({"userId": "u1", "timestamp": "2024-05-14T10:00:00Z", **message}).encode()
        r = _segment(api, body, hmac.new(b"seg-secret", body, hashlib.sha1).hexdigest())
        assert r.status_code == 200, r.json_body  # type: ignore[attr-defined]
        return r

    for n in range(12):
        deliver({"type": "identify", "messageId": f"i{n}", "traits": {
            "email": "big@acme.io", "custom": {f"{n}-{i}-" + "x" * 4000: "v" for i in range(10)},
            f"notes{n}": ["y" * 900] * 10, "company": "Acme" + "z" * 2000}})
    deliver({"type": "track", "event": "Demo Requested", "messageId": "t1", "context": {"traits": {"email": "big@acme.io"}},
             "properties": {"blob": "x" * 900_000, "plan": "pro"}})
    lead = api.get("/v1/leads?email=big@acme.io", headers=ADMIN).json_body
    assert lead["attributes"]["company"].startswith("Acme") and len(lead["attributes"]["company"]) == 500
    assert all(len(name) <= 64 for name in lead["attributes"].get("custom", {}))
    assert lead["events"]["items"][0]["type"] == "demo_request"  # (stored, the blob left out)
    items = table_items(os.environ["BATON_LEADS_TABLE"])
    sizes = [item_size(item) for item in items]
    assert max(sizes) < 3 * MAX_DATA_BYTES < ITEM_LIMIT, sizes  # (an event: its properties and traits)
