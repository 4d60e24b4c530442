"""The lead page's HTML from the in-memory store: escaped lead data, refusals, an unavailable store."""

from __future__ import annotations

import time
from html.parser import HTMLParser

from chalicelib.bootstrap import memory_container
from chalicelib.errors import Unavailable
from chalicelib.events import Event
from chalicelib.leadpage.links import KEY_NAME, signed_query
from chalicelib.leadpage.page import CSP, STYLE, STYLE_HASH
from chalicelib.leadpage.service import open_page
from chalicelib.secrets import StaticSecrets
from chalicelib.store.memory import InMemoryLeads

NOW = time.time()
EVIL = '<img src=x onerror=alert(1)>"\'&'


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _tags(html: str) -> list[str]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def _params(lead_id: str) -> dict[str, str]:
    expires, sig = (part.split("=")[1] for part in signed_query("k", lead_id, int(NOW) + 60).split("&"))
    return {"expires": expires, "sig": sig}


def test_every_lead_value_is_text_on_the_page() -> None:
    c = memory_container(clock=lambda: NOW)
    traits = {"first_name": EVIL, "job_title": EVIL, "company": EVIL, "company_size": 300}
    event = Event("e1", "demo_request", NOW - 60, "x@acme.example", None, {"form_id": EVIL}, traits, "form")
    lead_id = c.leads.ingest([event])["leads"][0]["lead_id"]
    c.leads.record_outcome(lead_id, "rejected", reason=EVIL, actor=EVIL)
    status, html, headers = open_page(lead_id, _params(lead_id), StaticSecrets({KEY_NAME: "k"}), c.leads_repo,
                                      c.rulesets, NOW)
    assert status == 200
    assert "img" not in _tags(html) and "script" not in _tags(html)
    assert html.count("&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;&amp;") >= 4  # name, role, form, outcome
    assert headers["Content-Security-Policy"] == CSP and f"'sha256-{STYLE_HASH}'" in CSP
    assert f"<style>{STYLE}</style>" in html, "the style the hash allows, byte for byte"


def test_the_page_says_which_details_only_a_public_form_gave() -> None:
    c = memory_container(clock=lambda: NOW)
    traits = {"first_name": "Ada", "company": "Acme", "company_size": 300}
    form = Event("e1", "form_submitted", NOW - 120, "ada@acme.example", None, {}, traits, "form")
    crm = Event("e2", "identify", NOW - 60, "ada@acme.example", None, {}, {"company": "Acme"}, "hubspot")
    lead_id = c.leads.ingest([form, crm])["leads"][0]["lead_id"]
    _, html, _ = open_page(lead_id, _params(lead_id), StaticSecrets({KEY_NAME: "k"}), c.leads_repo, c.rulesets, NOW)
    assert '<p id="unverified" class="muted">Only a public web form gave: first name, company size (not verified)' in html


class DownLeads(InMemoryLeads):
    def get(self, lead_id: str) -> None:  # type: ignore[override]
        raise Unavailable("the lead store is busy; retry shortly", retry_after=1)


def test_an_unavailable_store_is_a_503_page_with_retry_after() -> None:
    c = memory_container(clock=lambda: NOW)
    status, html, headers = open_page("L1", _params("L1"), StaticSecrets({KEY_NAME: "k"}), DownLeads(), c.rulesets,
                                      NOW)
    assert (status, headers["Retry-After"]) == (503, "1")
    assert "busy" in html and headers["Content-Type"] == "text/html; charset=utf-8"


def test_a_forged_link_reads_nothing() -> None:
    c = memory_container(clock=lambda: NOW)
    params = {**_params("L1"), "sig": "0" * 64}
    status, html, _ = open_page("L1", params, StaticSecrets({KEY_NAME: "k"}), DownLeads(), c.rulesets, NOW)
    assert status == 403 and "not valid" in html  # refused before the (failing) store was asked


class BrokenEvents(InMemoryLeads):
    def events(self, lead_id: str) -> list[Event]:
        from botocore.exceptions import EndpointConnectionError

        raise EndpointConnectionError(endpoint_url="https://dynamodb.example")


def test_an_aws_failure_past_the_sdk_retries_is_a_503_page() -> None:
    from chalicelib.leads import LeadService

    c = memory_container(clock=lambda: NOW)
    leads = BrokenEvents()
    event = Event("e1", "page_view", NOW - 60, "x@acme.example", None, {}, {}, "api")
    lead_id = LeadService(leads, c.rulesets, lambda: NOW).ingest([event])["leads"][0]["lead_id"]
    status, html, headers = open_page(lead_id, _params(lead_id), StaticSecrets({KEY_NAME: "k"}), leads, c.rulesets,
                                      NOW)
    assert (status, headers["Retry-After"]) == (503, "2") and "retry shortly" in html
