"""Every ingestion and admin route through chalice.test.Client against DynamoDB on moto."""

from __future__ import annotations

import json
import os

import pytest

from chalicelib.forms import THANKS
from chalicelib.state import lead_id_for
from tests.app.conftest import ADMIN, FORM_HEADERS, INGEST, Api, table_items

DEMO_FORM = "email=Jane.Doe%40Acme.io&first_name=Jane&last_name=Doe&job_title=VP+Sales&company=Acme" \
            "&company_size=250&industry=software&country=US&utm_source=google&utm_medium=cpc&how_heard=podcast"
JANE = lead_id_for("jane.doe@acme.io")  # (a form's answer names no lead)


def _leads_table() -> list[dict]:
    return table_items(os.environ["BATON_LEADS_TABLE"])


def test_html_form_post_scores_and_hands_off(api: Api) -> None:
    r = api.post("/v1/forms/demo", raw=DEMO_FORM, headers=FORM_HEADERS)
    assert r.status_code == 200, r.json_body
    # The public answer tells nothing about the lead (anyone can post anyone's address).
    assert r.json_body == {"ok": True, "message": THANKS}
    lead = api.get(f"/v1/leads/{JANE}", headers=ADMIN).json_body
    assert lead["stage"] == "sql" and lead["grade"] == "A"
    assert lead["email"] == "jane.doe@acme.io"
    assert lead["attributes"]["custom"] == {"how_heard": "podcast"}
    assert lead["attributes"]["utm_source"] == "google"
    assert lead["events"]["items"][0]["type"] == "demo_request"
    outbox = table_items(os.environ["BATON_OUTBOX_TABLE"])
    assert len(outbox) == 1 and json.loads(outbox[0]["body"]["S"])["stage"] == "sql"


def test_browser_post_with_allowed_redirect_gets_303(api: Api) -> None:
    r = api.post("/v1/forms/newsletter", raw="email=a%40acme.io&_redirect=https%3A%2F%2Fwww.example.com%2Fthanks",
                 headers=FORM_HEADERS)
    assert r.status_code == 303
    assert r.headers["Location"] == "https://www.example.com/thanks"


def test_redirect_off_the_allow_list_is_refused_and_stores_nothing(api: Api) -> None:
    r = api.post("/v1/forms/newsletter", raw="email=a%40acme.io&_redirect=https%3A%2F%2Fevil.example%2F",
                 headers=FORM_HEADERS)
    assert r.status_code == 422
    assert r.json_body["error"]["details"]["field"] == "_redirect"
    assert _leads_table() == []


def test_unreadable_redirect_is_refused_naming_the_field(api: Api) -> None:
    r = api.post("/v1/forms/newsletter", raw="email=a%40acme.io&_redirect=https%3A%2F%2F%5B%3A%3A1%2Fthanks",
                 headers=FORM_HEADERS)
    assert r.status_code == 422
    assert r.json_body["error"]["details"]["field"] == "_redirect"
    assert _leads_table() == []


def test_json_form_post_and_cors_for_allowed_origin(api: Api) -> None:
    r = api.post("/v1/forms/ebook-lead-scoring", {"email": "b@acme.io", "firstname": "Bo"},
                 headers={"Origin": "https://www.example.com"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://www.example.com"
    r = api.post("/v1/forms/ebook-lead-scoring", {"email": "b@acme.io"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_honeypot_answers_ok_and_stores_nothing(api: Api) -> None:
    r = api.post("/v1/forms/newsletter", raw="email=bot%40spam.io&_gotcha=buy+now", headers=FORM_HEADERS)
    assert r.status_code == 200 and r.json_body == {"ok": True, "message": THANKS}
    assert _leads_table() == []


@pytest.mark.parametrize(
    ("path", "raw", "headers", "status", "field"),
    [
        ("/v1/forms/demo", "email=not-an-email", FORM_HEADERS, 422, "email"),
        ("/v1/forms/demo", "first_name=Jane", FORM_HEADERS, 422, "email"),
        ("/v1/forms/unknown-form", "email=a%40b.io", FORM_HEADERS, 404, "form_id"),
        ("/v1/forms/demo", '{"email": "a@b.io"', {}, 400, "body"),
        ("/v1/forms/demo", '["a@b.io"]', {}, 400, "body"),
        ("/v1/forms/demo", "email=a%40b.io&x=" + "y" * 40000, FORM_HEADERS, 413, "body"),
        ("/v1/forms/demo", "email=a%40b.io&notes=" + "y" * 2500, FORM_HEADERS, 422, "notes"),
        ("/v1/forms/demo", '{"email": "a@b.io", "nested": {"a": 1}}', {}, 422, "nested"),
        ("/v1/forms/demo", "email=a%40b.io&Employees=lots", FORM_HEADERS, 422, "Employees"),
        ("/v1/forms/newsletter", "email=a%40b.io&_redirect=https%3A%2F%2Fwww.example.com%2F%0D%0ASet-Cookie%3A+a",
         FORM_HEADERS, 422, "_redirect"),
        ("/v1/forms/newsletter", "email=a%40b.io&_redirect=https%3A%2F%2Fwww.example.com.evil.net%2F", FORM_HEADERS,
         422, "_redirect"),
        ("/v1/forms/newsletter", "email=a%40b.io&_submission_id=" + "x" * 129, FORM_HEADERS, 422, "_submission_id"),
        ("/v1/forms/newsletter", "email=a%40b.io&_submission_id=a+b", FORM_HEADERS, 422, "_submission_id"),
        ("/v1/forms/newsletter", "email=a%40b.io&anonymous_id=" + "x" * 2000, FORM_HEADERS, 422, "anonymous_id"),
        ("/v1/forms/newsletter", "email=a%40b.io&anonymous_id=segment%3Auser%3A42", FORM_HEADERS, 422,
         "anonymous_id"),
        ("/v1/forms/newsletter", "email=a%40b.io&anonymous_id=hubspot%3A1234", FORM_HEADERS, 422, "anonymous_id"),
    ],
)
def test_bad_form_input_is_a_4xx_naming_the_field_and_stores_nothing(
    api: Api, path: str, raw: str, headers: dict, status: int, field: str
) -> None:
    r = api.post(path, raw=raw, headers=headers)
    assert r.status_code == status, r.json_body
    assert r.json_body["error"]["details"]["field"] == field
    assert _leads_table() == []


def test_wrong_content_type_is_415_in_the_error_shape(api: Api) -> None:
    r = api.post("/v1/forms/demo", raw="<xml/>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415
    assert set(r.json_body["error"]) == {"code", "message", "details"}


def test_events_need_a_token(api: Api) -> None:
    r = api.post("/v1/events", {"type": "page_view", "email": "a@b.io"})
    assert r.status_code == 401
    r = api.post("/v1/events", {"type": "page_view", "email": "a@b.io"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert _leads_table() == []


def test_event_batch_counts_each_event_once_on_redelivery(api: Api) -> None:
    events = [
        {"event_id": f"ev-{i}", "type": "page_view", "email": "c@acme.io",
         "occurred_at": f"2026-11-0{1 + i}T10:00:00Z", "properties": {"url": "https://acme.io/pricing"}}
        for i in range(3)
    ]
    first = api.post("/v1/events", {"events": events}, headers=INGEST)
    assert first.status_code == 202 and first.json_body["accepted"] == 3
    again = api.post("/v1/events", {"events": events[::-1]}, headers=INGEST)
    assert again.json_body["accepted"] == 0 and again.json_body["duplicates"] == 3
    lead = api.get("/v1/leads?email=c@acme.io", headers=ADMIN).json_body
    assert lead["event_count"] == 3
    assert lead["events"]["total"] == 3


def test_an_unreadable_page_url_scores_as_a_page_without_a_path(api: Api) -> None:
    event = {"type": "page_view", "email": "d@acme.io", "properties": {"url": "http://[::1/pricing"}}
    r = api.post("/v1/events", {"events": [event]}, headers=INGEST)
    assert r.status_code == 202 and r.json_body["accepted"] == 1


def test_bad_event_in_a_batch_rejects_the_whole_batch(api: Api) -> None:
    r = api.post("/v1/events", {"events": [{"type": "page_view", "email": "a@b.io"}, {"type": "nap", "email": "a@b.io"}]},
                 headers=INGEST)
    assert r.status_code == 422
    assert r.json_body["error"]["details"]["field"] == "events[1].type"
    assert _leads_table() == []


def test_batch_limit(api: Api) -> None:
    r = api.post("/v1/events", {"events": [{"type": "page_view", "email": "a@b.io"}] * 501}, headers=INGEST)
    assert r.status_code == 422 and "500" in r.json_body["error"]["message"]


def test_anonymous_engagement_counts_once_identified(api: Api) -> None:
    views = [{"event_id": f"v{i}", "type": "page_view", "anonymous_id": "anon-9", "occurred_at": "2026-11-01T10:00:00Z",
              "properties": {"path": "/pricing"}} for i in range(2)]
    r = api.post("/v1/events", {"events": views}, headers=INGEST)
    assert r.json_body["pending_identity"] == 2
    r = api.post("/v1/identify", {"anonymous_id": "anon-9", "email": "d@acme.io", "traits": {"job_title": "CTO"}},
                 headers=INGEST)
    assert r.status_code == 200, r.json_body
    lead = api.get("/v1/leads?email=d@acme.io", headers=ADMIN).json_body
    assert lead["event_count"] == 3
    assert lead["attributes"]["job_title"] == "CTO"
    later = api.post("/v1/events", {"type": "page_view", "anonymous_id": "anon-9", "properties": {"path": "/product"}},
                     headers=INGEST)
    assert later.json_body["leads"][0]["lead_id"] == lead["lead_id"]


def test_outcomes_drive_stages_and_are_stored(api: Api) -> None:
    api.post("/v1/forms/demo", raw=DEMO_FORM, headers=FORM_HEADERS)
    lead_id = JANE
    r = api.post(f"/v1/leads/{lead_id}/outcome", {"outcome": "rejected"}, headers=ADMIN)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "reason"
    r = api.post(f"/v1/leads/{lead_id}/outcome",
                 {"outcome": "accepted", "bant": {"budget": True, "timeline": "Q1"}, "actor": "rep-1"}, headers=ADMIN)
    assert r.status_code == 200 and r.json_body["stage"] == "sql"
    assert r.json_body["seconds_to_first_action"] is not None
    r = api.post(f"/v1/leads/{lead_id}/outcome", {"outcome": "recycled", "reason": "next year"}, headers=ADMIN)
    assert r.json_body["stage"] == "recycled"
    lead = api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body
    assert [o["outcome"] for o in lead["outcomes"]] == ["accepted", "recycled"]
    assert lead["outcomes"][0]["answers"] == {"bant": {"budget": True, "timeline": "Q1"}}
    assert api.post("/v1/leads/Lnope/outcome", {"outcome": "won"}, headers=ADMIN).status_code == 404
    assert api.post(f"/v1/leads/{lead_id}/outcome", {"outcome": "won"}).status_code == 401


def test_company_size_is_coerced_alike_from_a_form_and_from_the_events_api(api: Api) -> None:
    """One vocabulary: a range counts as its lower bound whichever way it arrives."""
    r = api.post("/v1/forms/demo", raw="email=e%40acme.io&Number+of+employees=50-200", headers=FORM_HEADERS)
    assert r.status_code == 200, r.json_body
    event = {"type": "page_view", "email": "f@acme.io", "traits": {"company_size": "1000+"}}
    assert api.post("/v1/events", event, headers=INGEST).status_code == 202
    sizes = [api.get(f"/v1/leads?email={who}@acme.io", headers=ADMIN).json_body["attributes"]["company_size"]
             for who in ("e", "f")]
    assert sizes == [50, 1000]
    bad = {"events": [event, {**event, "traits": {"company_size": "a few"}}]}
    r = api.post("/v1/events", bad, headers=INGEST)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "events[1].traits.company_size"
    r = api.post("/v1/identify", {"anonymous_id": "a-1", "email": "g@acme.io", "traits": {"annual_revenue": "?"}},
                 headers=INGEST)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "traits.annual_revenue"
    assert api.get("/v1/leads?email=g@acme.io", headers=ADMIN).status_code == 404


def test_lead_lookup_errors(api: Api) -> None:
    assert api.get("/v1/leads/Lmissing", headers=ADMIN).status_code == 404
    r = api.get("/v1/leads?email=nobody@acme.io", headers=ADMIN)
    assert r.status_code == 404 and r.json_body["error"]["message"] == "no lead with that email"
    assert r.json_body["error"]["details"] == {"field": "email"}
    r = api.get("/v1/leads?email=bad", headers=ADMIN)
    assert r.status_code == 422 and r.json_body["error"]["details"]["field"] == "email"
    assert api.get("/v1/leads?email=a@b.io&limit=0", headers=ADMIN).status_code == 422
    assert api.get("/v1/leads/Lmissing").status_code == 401


def test_ruleset_lifecycle(api: Api) -> None:
    from chalicelib.rules.loader import DEFAULT_RULESET_PATH

    yaml_text = DEFAULT_RULESET_PATH.read_text()
    created = api.post("/v1/rulesets", raw=yaml_text, headers={**ADMIN, "Content-Type": "application/yaml"})
    assert created.status_code == 201 and created.json_body["version"] == 1
    bad = yaml_text.replace("window_days: 7}", "window_days: -1}", 1)
    r = api.post("/v1/rulesets", raw=bad, headers={**ADMIN, "Content-Type": "application/yaml"})
    assert r.status_code == 422
    assert r.json_body["error"]["details"]["field"] == "engagement[0].caps.window_days"
    assert "line" in r.json_body["error"]["details"]["errors"][0]
    assert api.get("/v1/rulesets/active", headers=ADMIN).status_code == 404
    assert api.post("/v1/rulesets/1/publish", headers=ADMIN).json_body["active"] == 1
    second = api.post("/v1/rulesets", api.get("/v1/rulesets/1", headers=ADMIN).json_body["ruleset"], headers=ADMIN)
    assert second.json_body["version"] == 2
    published = api.post("/v1/rulesets/2/publish", headers=ADMIN).json_body
    assert (published["active"], published["previous"], published["changed"]) == (2, 1, True)
    assert published["rescore"]["mode"] == "active"
    assert api.get("/v1/rulesets/active", headers=ADMIN).json_body["version"] == 2
    assert api.post("/v1/rulesets/rollback", headers=ADMIN).json_body["active"] == 1
    assert api.post("/v1/rulesets/rollback", headers=ADMIN).status_code == 409
    assert api.post("/v1/rulesets/9/publish", headers=ADMIN).status_code == 404
    assert api.post("/v1/rulesets/x/publish", headers=ADMIN).status_code == 422
    listed = api.get("/v1/rulesets", headers=ADMIN).json_body["rulesets"]
    assert [(v["version"], v["active"]) for v in listed] == [(1, True), (2, False)]
    assert api.post("/v1/rulesets/1/publish").status_code == 401


@pytest.mark.parametrize(("text", "status", "field", "says"), [
    ("name: !foo bar", 422, "name", "YAML tag '!foo' is not allowed"),
    ("name: x\nfit: !!python/name:os.system ''", 422, "fit", "python/name:os.system"),
    ("name: !!int abc", 422, "name", "is not a valid int"),
    ("name: !!timestamp soon", 422, "name", "is not a valid timestamp"),
])
def test_yaml_tags_are_refused_naming_the_field(api: Api, text: str, status: int, field: str, says: str) -> None:
    r = api.post("/v1/rulesets", raw=text, headers={**ADMIN, "Content-Type": "application/yaml"})
    assert r.status_code == status, r.json_body
    assert r.json_body["error"]["details"]["field"] == field and says in r.json_body["error"]["message"]


def test_a_rule_set_too_big_for_one_item_is_a_413_and_takes_no_version_number(api: Api) -> None:
    from chalicelib.rules.loader import default_ruleset

    body = default_ruleset().model_dump(mode="json", by_alias=True)
    body["lists"]["competitors"] = [f"competitor-{i:06d}.example.com" for i in range(15_000)]  # ~480 KB
    r = api.post("/v1/rulesets", body, headers=ADMIN)
    assert r.status_code == 413 and r.json_body["error"]["details"]["field"] == "body", r.json_body
    body["lists"]["competitors"] = ["rival.example.com"]
    assert api.post("/v1/rulesets", body, headers=ADMIN).json_body["version"] == 1


def test_erasure_leaves_nothing_in_any_table(api: Api) -> None:
    api.post("/v1/events", {"type": "page_view", "anonymous_id": "anon-e", "properties": {"path": "/pricing"}},
             headers=INGEST)
    api.post("/v1/identify", {"anonymous_id": "anon-e", "email": "jane.doe@acme.io"}, headers=INGEST)
    api.post("/v1/forms/demo", raw=DEMO_FORM, headers=FORM_HEADERS)
    lead_id = JANE
    api.post(f"/v1/leads/{lead_id}/outcome", {"outcome": "accepted"}, headers=ADMIN)
    api.post("/v1/forms/newsletter", raw="email=other%40acme.io", headers=FORM_HEADERS)  # must survive
    assert api.client.http.delete(f"/v1/leads/{lead_id}").status_code == 401
    r = api.client.http.delete(f"/v1/leads/{lead_id}", headers=ADMIN)
    assert r.status_code == 200 and r.json_body["erased_items"] >= 6
    leads, outbox = table_items(os.environ["BATON_LEADS_TABLE"]), table_items(os.environ["BATON_OUTBOX_TABLE"])
    [tombstone] = [i for i in leads if lead_id in json.dumps(i)]  # what keeps it erased; nothing personal
    assert set(tombstone) == {"pk", "sk", "erased_at"} and tombstone["sk"]["S"] == "STATE"
    everything = json.dumps([i for i in leads if i is not tombstone] + outbox)
    assert lead_id not in everything and "jane.doe" not in everything and "anon-e" not in everything
    assert "other@acme.io" in everything
    assert api.get(f"/v1/leads/{lead_id}", headers=ADMIN).status_code == 404
    assert api.client.http.delete(f"/v1/leads/{lead_id}", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("route", ["form", "events", "lead", "erase"])
def test_an_unreachable_store_is_a_503_to_retry_never_a_500(api: Api, route: str) -> None:
    from botocore.exceptions import EndpointConnectionError

    from chalicelib.aws import client

    assert api.post("/v1/forms/newsletter", raw="email=a%40acme.io", headers=FORM_HEADERS).status_code == 200
    lead_id = lead_id_for("a@acme.io")

    def unreachable(**_: object) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    events = client("dynamodb").meta.events
    events.register("before-send.dynamodb", unreachable, unique_id="unreachable")
    try:
        r = {
            "form": lambda: api.post("/v1/forms/newsletter", raw="email=b%40acme.io", headers=FORM_HEADERS),
            "events": lambda: api.post("/v1/events", {"type": "page_view", "email": "b@acme.io"}, headers=INGEST),
            "lead": lambda: api.get(f"/v1/leads/{lead_id}", headers=ADMIN),
            "erase": lambda: api.client.http.delete(f"/v1/leads/{lead_id}", headers=ADMIN),
        }[route]()
    finally:
        events.unregister("before-send.dynamodb", unique_id="unreachable")
    assert r.status_code == 503, r.json_body
    assert r.headers["Retry-After"] == "2"
    assert r.json_body["error"]["code"] == "unavailable"
    assert r.json_body["error"]["details"]["cause"] == "EndpointConnectionError"
