"""The lead page through the routes (moto): reached from the alert's signed link, without a token."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from chalicelib.leadpage.links import KEY_NAME, signed_query
from tests.app.conftest import ADMIN, FORM_HEADERS, Api

KEY = "test-lead-page-key"
FORM = ("email=ada%40acme.io&first_name=Ada&last_name=%3Cscript%3Ealert(1)%3C%2Fscript%3E&job_title=CTO"
        "&company=Acme+%26+Sons&company_size=300&industry=software&country=US")


@pytest.fixture
def page_api(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    import boto3

    from chalicelib import bootstrap
    from chalicelib.config import settings

    boto3.client("ssm").put_parameter(Name=f"/baton/local/{KEY_NAME}", Value=KEY, Type="SecureString")
    monkeypatch.setenv("BATON_PUBLIC_URL", "https://baton.example.com/prod")
    settings.cache_clear()
    bootstrap.use(None)
    return api


def _sql_lead(api: Api) -> str:
    answer = api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS)
    assert answer.status_code == 200, answer.json_body
    (lead,) = api.get("/v1/leads?stage=sql", headers=ADMIN).json_body["leads"]
    return str(lead["lead_id"])


def _alert_link(lead_id: str) -> str:
    """The "View lead" button of the lead's alert, rendered as the deliverer renders it."""
    from chalicelib.bootstrap import container
    from chalicelib.handoff.delivery import render

    c = container()
    (item,) = [i for i in c.outbox.pending() if i.kind == "handoff" and i.lead_id == lead_id]
    _, _, blocks = render(item, told_at=time.time(), lead_url=c.deliverer().lead_url)
    (button,) = [b["accessory"] for b in blocks if b.get("block_id") == "baton_lead_link"]
    assert button["text"]["text"] == "View lead"
    return str(button["url"])


def _open(api: Api, url: str) -> Any:
    parts = urlsplit(url)
    return api.get(parts.path.removeprefix("/prod") + "?" + parts.query)


def test_the_alert_links_to_a_page_with_the_chart_reasons_events_and_outcomes(page_api: Api) -> None:
    lead_id = _sql_lead(page_api)
    page_api.post(f"/v1/leads/{lead_id}/outcome", {"outcome": "accepted", "actor": "slack:U024"}, headers=ADMIN)
    url = _alert_link(lead_id)
    assert url.startswith(f"https://baton.example.com/prod/v1/leads/{lead_id}/page?expires=")
    page = _open(page_api, url)  # no Authorization header: the link is the credential
    assert page.status_code == 200
    headers = {k.lower(): v for k, v in page.headers.items()}
    assert headers["content-type"] == "text/html; charset=utf-8"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'none'" in csp and "unsafe-inline" not in csp
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"
    html = page.body.decode()
    assert "Ada &lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "Acme &amp; Sons" in html
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and 'data-series="engagement"' in html
    assert 'class="transition" data-stage="sql"' in html
    assert 'id="reasons"' in html and 'id="events"' in html and "demo_request" in html
    assert 'id="outcomes"' in html and "slack:U024" in html and "accepted" in html


def test_expired_forged_or_incomplete_links_get_a_403_page_without_the_lead(page_api: Api) -> None:
    lead_id = _sql_lead(page_api)
    past = int(time.time()) - 1
    future = int(time.time()) + 3600
    other_lead = "L" + "0" * 24
    cases = {
        "has expired": f"/v1/leads/{lead_id}/page?{signed_query(KEY, lead_id, past)}",
        "not valid": f"/v1/leads/{lead_id}/page?{signed_query('wrong key', lead_id, future)}",
        "incomplete": f"/v1/leads/{lead_id}/page",
    }
    forged = signed_query(KEY, other_lead, future)  # another lead's link on this lead
    cases["not valid "] = f"/v1/leads/{lead_id}/page?{forged}"
    for reason, path in cases.items():
        page = page_api.get(path)
        html = page.body.decode()
        assert page.status_code == 403, (reason, html)
        assert reason.strip() in html
        assert "Ada" not in html and "ada@acme.io" not in html and "<svg" not in html
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_a_signed_link_to_a_lead_that_is_gone_says_so(page_api: Api) -> None:
    lead_id = _sql_lead(page_api)
    path = f"/v1/leads/{lead_id}/page?{signed_query(KEY, lead_id, int(time.time()) + 60)}"
    assert page_api.get(path).status_code == 200
    assert page_api.client.http.delete(f"/v1/leads/{lead_id}", headers=ADMIN).status_code == 200
    gone = page_api.get(path)
    assert gone.status_code == 404 and "no longer exists" in gone.body.decode()


def test_without_a_signing_key_there_are_no_pages_and_no_links(api: Api) -> None:
    lead_id = _sql_lead(api)
    page = api.get(f"/v1/leads/{lead_id}/page?{signed_query(KEY, lead_id, int(time.time()) + 60)}")
    assert page.status_code == 403 and "not set up" in page.body.decode()
    from chalicelib.bootstrap import container
    from chalicelib.handoff.delivery import render

    c = container()
    (item,) = [i for i in c.outbox.pending() if i.kind == "handoff"]
    _, _, blocks = render(item, told_at=time.time(), lead_url=c.deliverer().lead_url)
    assert [b for b in blocks if b.get("block_id") == "baton_lead_link"] == []
