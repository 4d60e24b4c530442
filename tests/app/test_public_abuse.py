"""What an outsider can do with the public form route (issue 18, items 1-3), through the routes on moto.

A public form is unverified: anyone can post it with anyone's address and any visitor id. It fills
blank attributes only, never replaces what a verified source set, answers nothing about the lead,
is limited per address, cannot grow a lead's item without bound, and cannot hold a visitor id
against a verified identify.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.events import MAX_ID_LENGTH
from chalicelib.forms import MAX_BODY, MAX_FIELDS
from chalicelib.state import lead_id_for
from tests.app.conftest import ADMIN, FORM_HEADERS, INGEST, Api
from tests.itemsize import ITEM_LIMIT, item_size

VICTIM = "victim@bigco.com"
VICTIM_ID = lead_id_for(VICTIM)
VERIFIED = {"first_name": "Vera", "company": "BigCo", "job_title": "Head of Data", "phone": "+1 555 0100"}
ATTACK = {"first_name": "Mallory", "company": "Evil Inc", "job_title": "CEO", "phone": "+1 555 6666",
          "company_size": "5000"}


@pytest.fixture
def limited(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The app with its per-address form limit set by BATON_FORM_POSTS_PER_HOUR (see ``posts``)."""
    from chalicelib import bootstrap
    from chalicelib.config import settings

    def posts(limit: int) -> Api:
        monkeypatch.setenv("BATON_FORM_POSTS_PER_HOUR", str(limit))
        settings.cache_clear()
        bootstrap.use(None)
        return api

    api.posts = posts  # type: ignore[attr-defined]
    yield api


def _form(api: Api, fields: dict[str, Any], form: str = "demo") -> Any:
    return api.post(f"/v1/forms/{form}", raw=urlencode(fields), headers=FORM_HEADERS)


def _state_item(lead_id: str) -> dict[str, Any]:
    import boto3

    found = boto3.client("dynamodb").get_item(
        TableName=os.environ["BATON_LEADS_TABLE"], Key={"pk": {"S": f"LEAD#{lead_id}"}, "sk": {"S": "STATE"}})
    return dict(found["Item"])


def _lead(api: Api, lead_id: str = VICTIM_ID) -> Any:
    return api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body


def _identify(api: Api, traits: dict[str, Any], anonymous_id: str = "vera-laptop", email: str = VICTIM) -> Any:
    """``/v1/identify`` with the ingest token: a verified source."""
    body: dict[str, Any] = {"email": email, "anonymous_id": anonymous_id, "traits": traits}
    r = api.post("/v1/identify", body, headers=INGEST)
    assert r.status_code == 200, r.json_body
    return r


# -- item 1: no sequence of public requests grows one item without limit --------------------------

def test_the_worst_public_posts_keep_a_lead_item_well_under_dynamodbs_limit(limited: Any) -> None:
    """Hundreds of posts for one address, each with a max-length _submission_id and as many
    max-length fields (new custom names every time) as a post may carry, through the route."""
    api = limited.posts(100_000)
    value = "v" * 480
    sizes = []
    for n in range(600):
        fields: dict[str, Any] = {"email": VICTIM, "_submission_id": f"{n:06d}".ljust(MAX_ID_LENGTH, "x")}
        if n == 0:  # every known attribute at its longest (the state keeps 500 characters)
            fields |= {k: "k" * 1000 for k in ("first_name", "last_name", "company", "job_title", "seniority",
                                              "department", "industry", "country", "phone", "website",
                                              "lead_source", *[f"utm_{u}" for u in ("source", "medium",
                                                                                    "campaign", "term", "content")])}
        else:
            fields |= {f"{n:04d}{i:02d}".ljust(64, "f"): value for i in range(MAX_FIELDS - len(fields))}
        body = urlencode(fields)
        while len(body) > MAX_BODY:  # (the largest post the route takes)
            fields.popitem()
            body = urlencode(fields)
        r = api.post("/v1/forms/demo", raw=body, headers=FORM_HEADERS)
        assert r.status_code == 200, r.json_body
        if n % 100 == 99:
            sizes.append(item_size(_state_item(VICTIM_ID)))
    lead = _lead(api)
    assert lead["event_count"] == 600
    # The item stopped growing (the id memory is trimmed by bytes, custom attributes are capped: it
    # swings by the id memory's trim, 16 KB) and stays far below the 400 KB DynamoDB refuses, so its
    # writes keep working. (A memory of 512 ids by count alone held 68 KB of them: 134 KB here.)
    assert max(sizes[3:]) <= max(sizes[:3]) + 8 * 1024, sizes
    assert max(sizes) < 120 * 1024 < ITEM_LIMIT, sizes
    print(f"worst-case lead item: {sizes} bytes after 100..600 posts")
    # Every write still works: a verified update lands.
    _identify(api, {"company": "BigCo"})
    assert _lead(api)["attributes"]["company"] == "BigCo"


# -- item 2: a public form fills blanks only, answers nothing, is limited per address -------------

def test_a_public_form_cannot_overwrite_a_verified_lead_nor_alert_sales_with_its_values(api: Api) -> None:
    _identify(api, VERIFIED)
    r = _form(api, {"email": VICTIM, **ATTACK})  # the demo form: a hand-raiser
    assert r.status_code == 200
    lead = _lead(api)
    attributes = lead["attributes"]
    assert {k: attributes[k] for k in VERIFIED} == VERIFIED, "verified values are kept"
    assert attributes["company_size"] == 5000, "a blank attribute is filled by the form"
    assert lead["attribute_sources"]["company"]["source"] == "api"
    assert lead["attribute_sources"]["company_size"]["source"] == "form"
    # The hand-raiser still counts (a real visitor asking for a demo), but sales sees verified values.
    assert lead["stage"] == "sql"
    import boto3

    outbox = boto3.client("dynamodb").scan(TableName=os.environ["BATON_OUTBOX_TABLE"])["Items"]
    alerts = [json.loads(i["body"]["S"]) for i in outbox if "body" in i]
    text = json.dumps(alerts)
    assert alerts and "BigCo" in text and "Vera" in text
    assert "Evil Inc" not in text and "Mallory" not in text


def test_a_verified_source_replaces_what_a_form_filled(api: Api) -> None:
    _form(api, {"email": VICTIM, **ATTACK}, form="newsletter")
    assert _lead(api)["attributes"]["company"] == "Evil Inc"
    _identify(api, VERIFIED)
    lead = _lead(api)
    assert {k: lead["attributes"][k] for k in VERIFIED} == VERIFIED
    assert lead["attribute_sources"]["first_name"]["source"] == "api"


def test_the_public_answer_discloses_nothing_about_the_lead(api: Api) -> None:
    _identify(api, VERIFIED)
    api.post(f"/v1/leads/{VICTIM_ID}/outcome", {"outcome": "won"}, headers=ADMIN)
    assert _lead(api)["stage"] == "customer"
    for fields in ({"email": VICTIM}, {"email": VICTIM, "_submission_id": "probe-1"}):
        r = api.post("/v1/forms/demo", fields)  # JSON, as fetch posts it
        assert r.status_code == 200
        assert set(r.json_body) == {"ok", "message"}, r.json_body
        assert "customer" not in json.dumps(r.json_body)


def test_public_posts_per_address_are_limited_with_429_and_retry_after(limited: Any) -> None:
    api = limited.posts(3)
    for n in range(3):
        assert _form(api, {"email": VICTIM, "_submission_id": f"s{n}"}, "newsletter").status_code == 200
    before = _state_item(VICTIM_ID)
    r = _form(api, {"email": VICTIM, "_submission_id": "s3"}, "newsletter")
    assert r.status_code == 429, r.json_body
    assert 1 <= int(r.headers["Retry-After"]) <= 3600
    error = r.json_body["error"]
    assert error["code"] == "too_many_requests" and error["details"]["field"] == "email"
    assert "3 per 3600" in error["message"]
    assert _state_item(VICTIM_ID) == before, "nothing stored"
    # A redelivery of a counted post is not a new post; another address has its own count.
    assert _form(api, {"email": VICTIM, "_submission_id": "s1"}, "newsletter").status_code == 200
    assert _form(api, {"email": "someone@else.com"}, "newsletter").status_code == 200
    # Verified sources are not limited by it.
    _identify(api, VERIFIED)


# -- item 3: the first verified link of a visitor wins --------------------------------------------

def _page_view(api: Api, visitor: str, n: int) -> None:
    r = api.post("/v1/events", {"event_id": f"pv-{visitor}-{n}", "type": "page_view", "anonymous_id": visitor,
                                "properties": {"path": "/pricing"}}, headers=INGEST)
    assert r.status_code in (200, 202), r.json_body


def test_a_form_cannot_hold_a_visitor_against_a_verified_identify(api: Api) -> None:
    attacker = "mallory@evil.example"
    assert _form(api, {"email": attacker, "anonymous_id": "visitor-7"}, "newsletter").status_code == 200
    _page_view(api, "visitor-7", 1)
    assert _lead(api, lead_id_for(attacker))["event_count"] == 2
    _identify(api, {}, anonymous_id="visitor-7")  # the real owner, verified: the link moves
    _page_view(api, "visitor-7", 2)
    assert _lead(api)["event_count"] == 2  # the identify and the page view after it
    assert _lead(api, lead_id_for(attacker))["event_count"] == 2


def test_a_form_cannot_take_over_a_visitor_a_verified_source_linked(api: Api) -> None:
    _identify(api, {}, anonymous_id="visitor-8")
    attacker = "mallory@evil.example"
    assert _form(api, {"email": attacker, "anonymous_id": "visitor-8"}, "newsletter").status_code == 200
    _page_view(api, "visitor-8", 1)
    assert _lead(api)["event_count"] == 2
    assert _lead(api, lead_id_for(attacker))["event_count"] == 1


def test_erasing_a_lead_keeps_the_link_a_verified_identify_moved_away_from_it(api: Api) -> None:
    attacker = "mallory@evil.example"
    _form(api, {"email": attacker, "anonymous_id": "visitor-9"}, "newsletter")
    _identify(api, {}, anonymous_id="visitor-9")
    assert api.client.http.delete(f"/v1/leads/{lead_id_for(attacker)}", headers=ADMIN).status_code == 200
    _page_view(api, "visitor-9", 1)
    assert _lead(api)["event_count"] == 2
