"""The active rule set's vocabulary through the API: declared event types accepted, undeclared ones
refused naming the closest, declared attributes coerced (a 422 naming the field when they cannot be),
undeclared custom attributes stored as sent."""

from __future__ import annotations

import os
from typing import Any

from chalicelib.rules.loader import default_ruleset
from tests.app.conftest import ADMIN, FORM_HEADERS, INGEST, Api, table_items


def publish_declaring(api: Api) -> None:
    body = default_ruleset().model_dump(mode="json", by_alias=True, exclude_none=True)
    body["event_types"] = {"chat_message": {"description": "a chat with an advisor"}}
    body["attributes"] |= {"custom.time_on_site": {"type": "number"},
                           "custom.occupation": {"type": "enum", "values": ["Student", "Working Professional"]}}
    body["engagement"].append({"id": "chat", "label": "Chatted", "events": ["chat_message"], "points": 15})
    body["forms"]["chat"] = {"event": "chat_message"}
    created = api.post("/v1/rulesets", body, headers=ADMIN)
    assert created.status_code == 201, created.json_body
    assert api.post(f"/v1/rulesets/{created.json_body['version']}/publish", headers=ADMIN).status_code == 200


def test_declared_event_types_and_attributes_through_the_api(api: Api) -> None:
    chat = {"type": "chat_message", "email": "ana@acme.io",
            "traits": {"time_on_site": "1,200", "occupation": "working professional", "colour": "teal"}}
    before = api.post("/v1/events", chat, headers=INGEST)
    assert before.status_code == 422 and before.json_body["error"]["details"]["field"] == "type"
    assert "unknown event type 'chat_message'" in before.json_body["error"]["message"]
    publish_declaring(api)
    r = api.post("/v1/events", {"events": [chat]}, headers=INGEST)
    assert r.status_code == 202, r.json_body
    lead = api.get(f"/v1/leads/{r.json_body['leads'][0]['lead_id']}", headers=ADMIN).json_body
    assert lead["attributes"]["custom"] == {"time_on_site": 1200, "occupation": "Working Professional",
                                            "colour": "teal"}  # (colour: undeclared, stored as sent)
    assert lead["events"]["items"][0]["type"] == "chat_message"
    assert lead["explanation"]["engagement"]["rules"][0]["rule"] == "chat"


def test_undeclared_types_and_uncoercible_values_are_422s_naming_the_field(api: Api) -> None:
    publish_declaring(api)
    r = api.post("/v1/events", {"events": [{"type": "page_view", "email": "a@acme.io"},
                                           {"type": "chat_mesage", "email": "a@acme.io"}]}, headers=INGEST)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "events[1].type"
    assert "did you mean 'chat_message'?" in r.json_body["error"]["message"]
    r = api.post("/v1/events", {"events": [{"type": "page_view", "email": "a@acme.io",
                                            "traits": {"occupation": "Pilot"}}]}, headers=INGEST)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "events[0].traits.occupation"
    r = api.post("/v1/identify", {"anonymous_id": "v1", "email": "a@acme.io", "traits": {"time_on_site": "long"}},
                 headers=INGEST)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "traits.time_on_site"
    r = api.post("/v1/forms/chat", raw="email=a%40acme.io&occupation=Pilot", headers=FORM_HEADERS)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "occupation"
    assert table_items(os.environ["BATON_LEADS_TABLE"]) == []


def test_a_form_may_make_a_declared_event(api: Api) -> None:
    publish_declaring(api)
    r = api.post("/v1/forms/chat", raw="email=bo%40acme.io&occupation=student&time_on_site=90", headers=FORM_HEADERS)
    assert r.status_code == 200, r.json_body
    lead = api.get("/v1/leads?email=bo@acme.io", headers=ADMIN).json_body  # (a form's answer names no lead)
    assert lead["events"]["items"][0]["type"] == "chat_message"
    assert lead["attributes"]["custom"] == {"occupation": "Student", "time_on_site": 90}


def test_custom_attributes_may_be_sent_as_rules_name_them(api: Api) -> None:
    # A sender reading the rule set writes custom.occupation; stored under custom as `occupation`
    # (as a form or vendor field of that name is), the rules read it and its declaration types it.
    publish_declaring(api)
    r = api.post("/v1/events", {"type": "page_view", "email": "cy@acme.io",
                                "traits": {"custom.time_on_site": "1,200", "custom": {"occupation": "student"}}},
                 headers=INGEST)
    assert r.status_code == 202, r.json_body
    r = api.post("/v1/identify", {"anonymous_id": "v9", "email": "cy@acme.io",
                                  "traits": {"custom.colour": "teal", "colour": None}},  # (blank: not a second value)
                 headers=INGEST)
    assert r.status_code == 200, r.json_body
    r = api.post("/v1/forms/chat", raw="email=cy%40acme.io&custom.plan=pro", headers=FORM_HEADERS)
    assert r.status_code == 200, r.json_body
    lead = api.get("/v1/leads?email=cy@acme.io", headers=ADMIN).json_body
    assert lead["attributes"]["custom"] == {"time_on_site": 1200, "occupation": "Student", "colour": "teal",
                                            "plan": "pro"}


def test_custom_names_that_cannot_be_stored_are_422s_naming_the_field(api: Api) -> None:
    publish_declaring(api)
    for traits, field, says in [
        ({"custom.company_size": 50}, "traits.custom.company_size", "company_size is Baton's own attribute"),
        ({"custom": {"country": "FR"}}, "traits.custom.country", "country is Baton's own attribute"),
        ({"custom.": "x"}, "traits.custom.", "not a custom attribute name"),
        ({"plan": "pro", "custom.plan": "free"}, "traits.custom.plan", "plan is given twice, with two values"),
        ({"custom": "pro"}, "traits.custom", "custom must be an object of custom attributes"),
        ({"custom.email_domain": "x.io"}, "traits.custom.email_domain", "Baton sets it from the email"),
        ({"custom.time_on_site": "long"}, "traits.custom.time_on_site", "must be a number"),  # (as sent)
        ({"k" * 65: "x"}, "traits." + "k" * 64, "a custom attribute's name is at most 64 characters"),
        ({"custom": {"k" * 7900: "x"}}, "traits.custom." + "k" * 64, "at most 64 characters"),
    ]:
        r = api.post("/v1/events", {"type": "page_view", "email": "dee@acme.io", "traits": traits}, headers=INGEST)
        assert r.status_code == 422, (traits, r.json_body)
        assert r.json_body["error"]["details"]["field"] == field and says in r.json_body["error"]["message"], r.json_body
    r = api.post("/v1/forms/chat", raw="email=dee%40acme.io&custom.country=FR", headers=FORM_HEADERS)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "custom.country"
    assert table_items(os.environ["BATON_LEADS_TABLE"]) == []


def test_a_vendor_webhook_names_and_types_custom_attributes_as_the_api_does(api: Api) -> None:
    # A Segment identify with the team's traits named as its rules read them: stored as /v1/events
    # stores them, typed by the declarations; a name of Baton's own under custom is a 422 naming it.
    import hashlib
    import hmac
    import json

    import boto3

    boto3.client("ssm").put_parameter(Name="/baton/local/sources/segment/secret", Value="seg", Type="SecureString")
    publish_declaring(api)

    def identify(traits: dict[str, object]) -> Any:
        body = json.dumps({"type": "identify", "messageId": f"m{len(traits)}", "userId": "u1",
                           "timestamp": "2024-05-14T10:00:00Z", "traits": {"email": "eve@acme.io", **traits}}).encode()
        return api.client.http.post("/v1/webhooks/segment", body=body, headers={
            "Content-Type": "application/json", "X-Signature": hmac.new(b"seg", body, hashlib.sha1).hexdigest()})

    refused = identify({"custom": {"country": "FR"}})
    assert refused.status_code == 422 and json.loads(refused.body)["error"]["details"]["field"] == "traits.custom.country"
    assert table_items(os.environ["BATON_LEADS_TABLE"]) == []
    r = identify({"custom.time_on_site": "1,200", "custom": {"occupation": "student"}})
    assert r.status_code == 200, r.body
    lead = api.get("/v1/leads?email=eve@acme.io", headers=ADMIN).json_body
    assert lead["attributes"]["custom"] == {"time_on_site": 1200, "occupation": "Student"}


def test_a_nested_custom_attribute_sent_as_rules_name_it_is_read_and_typed(api: Api) -> None:
    # `custom.crm.tier` in a rule reads custom: {crm: {tier: ...}}; a sender who writes the rule's own
    # name (traits {"custom.crm.tier": ...}) gets it read too, and typed by its declaration.
    body = default_ruleset().model_dump(mode="json", by_alias=True, exclude_none=True)
    body["attributes"] |= {"custom.crm.tier": {"type": "enum", "values": ["Gold", "Silver"]}}
    body["fit"].append({"id": "crm-gold", "label": "Gold in the CRM", "points": 9,
                        "when": {"field": "custom.crm.tier", "op": "eq", "value": "Gold"}})
    created = api.post("/v1/rulesets", body, headers=ADMIN)
    assert created.status_code == 201, created.json_body
    assert api.post(f"/v1/rulesets/{created.json_body['version']}/publish", headers=ADMIN).status_code == 200
    for email, traits in (("flat@acme.io", {"custom.crm.tier": "gold"}), ("nested@acme.io", {"custom": {"crm": {"tier": "Gold"}}})):
        r = api.post("/v1/events", {"type": "page_view", "email": email, "traits": traits}, headers=INGEST)
        assert r.status_code == 202, r.json_body
        lead = api.get(f"/v1/leads?email={email}", headers=ADMIN).json_body
        assert "crm-gold" in [rule["rule"] for rule in lead["explanation"]["fit"]["rules"]], (email, lead["attributes"])
    r = api.post("/v1/events", {"type": "page_view", "email": "x@acme.io", "traits": {"custom.crm.tier": "bronze"}},
                 headers=INGEST)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "traits.custom.crm.tier"
