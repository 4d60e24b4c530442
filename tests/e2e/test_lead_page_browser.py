"""The lead page in headless Chromium, reached the way a rep reaches it: from the Slack alert's
"View lead" link, against the real local stack on free (non-default) ports."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chalicelib.state import lead_id_for
from tests.e2e.conftest import until

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.localstack, pytest.mark.slow]

FIELDS = {"first_name": "Priya", "last_name": "Shah", "job_title": "CTO", "company": "Quarry & Co",
          "company_size": "400", "industry": "software", "country": "US"}


def _view_lead_url(stack: RunningStack, lead_id: str) -> str | None:
    if not stack.outbox.exists():
        return None
    for line in stack.outbox.read_text().splitlines():
        message = json.loads(line)
        if message.get("kind") != "post" or lead_id not in json.dumps(message):
            continue
        for block in message.get("blocks", []):
            if block.get("block_id") == "baton_lead_link":
                return str(block["accessory"]["url"])
    return None


def test_the_alerts_view_lead_link_opens_the_page_with_its_chart(
    local_stack: RunningStack, browser: Any, tmp_path: Path
) -> None:
    email = f"priya.{uuid.uuid4().hex[:8]}@quarry-analytics.com"
    body = json.dumps({**FIELDS, "email": email}).encode()
    request = urllib.request.Request(f"{local_stack.app_url}/v1/forms/demo", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["ok"] is True  # (a form's answer says nothing about the lead)
    lead_id = lead_id_for(email)

    url = until(lambda: _view_lead_url(local_stack, lead_id), 30, f"no View lead link for {lead_id}",
                 local_stack.log)
    assert url.startswith(f"{local_stack.app_url}/v1/leads/{lead_id}/page?expires="), url  # this stack's port

    context = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        response = page.goto(url)
        assert response is not None and response.status == 200
        from playwright.sync_api import expect

        expect(page.locator("#lead-name")).to_have_text("Priya Shah")
        expect(page).to_have_title("Priya Shah \u00b7 Baton")
        assert "Quarry & Co" in page.locator(".who").inner_text()
        chart = page.locator("svg.score-chart")
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 150, box
        expect(chart.locator("polyline[data-series='fit']")).to_have_count(1)
        expect(chart.locator("polyline[data-series='engagement']")).to_have_count(1)
        expect(chart.locator("g.threshold")).to_have_count(2)
        expect(chart.locator("g.transition[data-stage='sql']")).to_have_count(1)
        expect(page.locator("#events")).to_contain_text("demo_request")
        expect(page.locator("#reasons")).to_contain_text("Fit:")
        # The page's one style is allowed by its hash: applied, and no CSP violation reported.
        assert page.locator("main").evaluate("el => getComputedStyle(el).maxWidth") == "820px"
        assert not problems, problems
        page.screenshot(path=str(tmp_path / "lead-page.png"), full_page=True)

        tampered = url.replace("expires=", "expires=9")
        response = page.goto(tampered)
        assert response is not None and response.status == 403
        expect(page.locator("#reason")).to_contain_text("not valid")
        assert "Priya" not in page.content()
    finally:
        context.close()


def test_baton_leads_list_reads_the_same_stack(local_stack: RunningStack, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from baton import cli

    email = f"sam.{uuid.uuid4().hex[:8]}@quarry-analytics.com"
    body = json.dumps({**FIELDS, "first_name": "Sam", "email": email}).encode()
    request = urllib.request.Request(f"{local_stack.app_url}/v1/forms/demo", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    lead_id = lead_id_for(email)
    monkeypatch.setenv("BATON_API_URL", local_stack.app_url)
    assert cli.main(["leads", "list", "--awaiting", "sales", "--json", "--all"]) == cli.EXIT_OK
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lead_id in [lead["lead_id"] for lead in listed]
