"""The example landing page (examples/landing/) in headless Chromium against the real local stack.

Without JavaScript the forms post as plain HTML and the API redirects to thanks.html; with it they
post JSON with fetch, CORS and all, and a demo request from a good-fit lead reaches Slack (the
local stack's outbox file).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import until

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.localstack, pytest.mark.slow]



def _lead(stack: RunningStack, email: str) -> dict[str, Any]:
    status, body = stack.api(f"/v1/leads?email={email}")
    assert status == 200, body
    return dict(body)


def test_ebook_form_without_javascript_redirects_and_records_the_download(
    local_stack: RunningStack, browser: Any, tmp_path: Path
) -> None:
    email = f"priya.{uuid.uuid4().hex[:8]}@quarry-analytics.com"
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        # The stack serves the page pointing at its own ports (free ones here, not 8000 and 8080).
        page.goto(f"{local_stack.landing_url}/index.html")
        form = page.locator("form[data-form='ebook-lead-scoring']")
        assert form.get_attribute("action") == f"{local_stack.app_url}/v1/forms/ebook-lead-scoring"
        form.get_by_label("First name").fill("Priya")
        form.get_by_label("Work email").fill(email)
        form.get_by_label("Company").fill("Quarry Analytics")
        form.get_by_label("Job title").fill("Head of Marketing")
        from playwright.sync_api import expect

        expect(form.locator("input[name='_gotcha']")).not_to_be_in_viewport()  # the honeypot: out of sight
        with page.expect_navigation(url=f"{local_stack.landing_url}/thanks.html?form=ebook-lead-scoring"):
            form.get_by_role("button", name="Send me the playbook").click()
        assert page.get_by_role("heading", name="Thank you").is_visible()
        page.screenshot(path=str(tmp_path / "ebook-thanks-nojs.png"), full_page=True)
    finally:
        context.close()

    lead = _lead(local_stack, email)
    downloads = [e for e in lead["events"]["items"] if e["type"] == "content_download"]
    assert len(downloads) == 1, lead["events"]
    assert downloads[0]["properties"]["form_id"] == "ebook-lead-scoring"
    assert downloads[0]["properties"]["offer"] == "ebook-lead-scoring"
    assert lead["attributes"]["company"] == "Quarry Analytics"
    # Default rules: content download +10; head-of title +15, corporate email +10 -> fit 25, grade C.
    assert lead["engagement"] == pytest.approx(10, abs=0.1)
    assert (lead["fit"], lead["grade"]) == (25, "C")
    assert lead["stage"] not in ("mql", "sql")


def test_demo_form_with_javascript_confirms_in_place_and_alerts_sales(
    local_stack: RunningStack, browser: Any, tmp_path: Path
) -> None:
    email = f"morgan.{uuid.uuid4().hex[:8]}@brightdesk.io"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{local_stack.landing_url}/index.html?utm_source=e2e")
        form = page.locator("form[data-form='demo']")
        # app.js pointed the form at the API the page names (the stack's) and the redirect at this origin.
        assert form.get_attribute("action") == f"{local_stack.app_url}/v1/forms/demo"
        form.get_by_label("First name").fill("Morgan")
        form.get_by_label("Last name").fill("Reyes")
        form.get_by_label("Work email").fill(email)
        form.get_by_label("Company").fill("Brightdesk")
        form.get_by_label("Job title").fill("VP of Sales")
        form.get_by_label("Employees").fill("250")
        form.get_by_label("Industry").select_option("software")
        form.get_by_label("Country").select_option("US")
        with page.expect_response(f"{local_stack.app_url}/v1/forms/demo") as posted:
            form.get_by_role("button", name="Request my demo").click()
        answer = posted.value.json()
        assert posted.value.status == 200, answer
        # The public answer says the post arrived and nothing about the lead (anyone can post any address).
        assert answer["ok"] is True and set(answer) <= {"ok", "message", "redirect"}, answer
        confirmation = page.locator("#demo .confirmation")
        confirmation.wait_for(state="visible", timeout=5000)
        assert "Thanks, Morgan!" in confirmation.inner_text()
        assert page.url.startswith(f"{local_stack.landing_url}/index.html")  # no navigation: fetch did it
        assert not errors, errors
        page.screenshot(path=str(tmp_path / "demo-confirmation.png"), full_page=True)
    finally:
        context.close()

    lead = _lead(local_stack, email)
    assert lead["stage"] == "sql", lead["stage_history"]
    assert lead["grade"] == "A"
    assert [e["type"] for e in lead["events"]["items"]] == ["demo_request"]
    assert lead["events"]["items"][0]["properties"]["utm_source"] == "e2e"

    def alert() -> dict[str, Any] | None:
        if not local_stack.outbox.exists():
            return None
        for line in local_stack.outbox.read_text().splitlines():
            message = json.loads(line)
            if message.get("kind") == "post" and email in json.dumps(message):
                return dict(message)
        return None

    message = until(alert, 30, f"no Slack alert for {email} in {local_stack.outbox}", local_stack.log)
    assert message["channel"].startswith("#sales"), message
