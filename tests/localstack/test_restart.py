"""`make run` on ports of its own, stopped and started again: what a new user meets in the first hour.

One stack, then a second on the same data directory (each start costs seconds, so the checks are
grouped): the stack writes its URLs to stack.json and the CLI finds the API there; the landing page
posts to the stack's own port; an unknown route is the templates' 404; a HubSpot v3 signature made
for the plain-http URL verifies; the data survives the restart, the default rule set is not
published again, and no alert is sent twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from chalicelib.sources.hubspot import signature_v3
from devstack.cfn import gateway_response
from tests.stackproc import ADMIN_TOKEN, StackProcess, running_stack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.localstack, pytest.mark.slow]
DEMO = "first_name={name}&email={email}&job_title=CTO&company_size=300&country=US&industry=software"


def _call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                                              **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _alerts(stack: StackProcess, email: str) -> int:
    if not stack.slack_outbox.exists():
        return 0
    return sum(1 for line in stack.slack_outbox.read_text().splitlines()
               if json.loads(line).get("kind") == "post" and email in line)  # fmt: skip


def _until(check: Any, what: str, stack: StackProcess, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout  # a ceiling for a live stack, not a timing
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s\n--- stack output ---\n{stack.log()}")
        time.sleep(0.2)
    return result


def _stack_file(directory: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((directory / "stack.json").read_text()))
    except FileNotFoundError:
        return None


def _demo(stack: StackProcess, name: str, email: str) -> None:
    body = DEMO.format(name=name, email=email).encode()
    status, answer = _call(stack.app_url + "/v1/forms/demo", body,
                           {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 200, answer


def _baton(*args: str, local_dir: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it in another shell: no --api, no BATON_API_URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("BATON_API_URL", "BATON_ADMIN_TOKEN")}
    env["BATON_LOCAL_DIR"] = str(local_dir)
    return subprocess.run([sys.executable, "-m", "baton.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_a_stack_on_its_own_ports_keeps_its_data_across_a_restart_and_alerts_once(tmp_path: Path) -> None:
    kept = {"BATON_PERSIST": "1", "BATON_LOCAL_DIR": str(tmp_path), "BATON_SNAPSHOT_SECONDS": "0.5"}
    state = tmp_path / "state" / "dynamodb.jsonl"
    with running_stack(tmp_path, extra_env=kept) as first:
        # The stack says where it runs, once it is all up (just after /health answers); the CLI finds it there.
        written = _until(lambda: _stack_file(tmp_path), "no stack.json", first)
        assert written["api_url"] == first.app_url and written["aws_endpoint"] == first.moto_url
        assert written["landing_url"] == first.landing_url + "/"
        dry = _baton("rules", "publish", "chalicelib/rules/default.yaml", local_dir=tmp_path)
        assert dry.returncode == 0, dry.stderr
        assert "no changes: v1 (active) and chalicelib/rules/default.yaml are the same rule set" in dry.stdout
        assert f"would create a new version of 'default' on {first.app_url}" in dry.stdout

        # The landing page's forms post to this stack and come back to this page, not to :8000/:8080.
        with urllib.request.urlopen(first.landing_url + "/", timeout=10) as page:
            html = page.read().decode()
        assert f'action="{first.app_url}/v1/forms/demo"' in html
        assert f'value="{first.landing_url}/thanks.html?form=demo"' in html
        assert f'<meta name="baton-api" content="{first.app_url}">' in html
        assert "127.0.0.1:8000" not in html and "127.0.0.1:8080" not in html

        # An unknown route: what API Gateway answers in AWS with the templates' gateway response.
        status, body = _call(first.app_url + "/v1/no-such-route")
        expected_status, expected_body = gateway_response("MISSING_AUTHENTICATION_TOKEN")
        assert (status, body) == (expected_status, json.loads(expected_body)) and status == 404

        # HubSpot signs the URL it called: plain http here, and it verifies without BATON_PUBLIC_URL.
        payload = (ROOT / "tests" / "payloads" / "hubspot" / "contact_changes.json").read_bytes()
        url, stamp = first.app_url + "/v1/webhooks/hubspot", str(int(time.time() * 1000))
        signed = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                  "X-HubSpot-Signature-v3": signature_v3("dev-hubspot-secret", "POST", url, payload, stamp)}
        status, body = _call(url, payload, signed)
        assert status == 200 and body["accepted"] >= 1, body
        signed["X-HubSpot-Signature-v3"] = signature_v3("dev-hubspot-secret", "POST", "https" + url[4:], payload,
                                                        stamp)  # fmt: skip
        assert _call(url, payload, signed)[0] == 401  # the https URL is not the one that was called

        # A demo request becomes an SQL and one alert; the periodic snapshot picks the lead up.
        _demo(first, "Ada", "ada@first-hour.io")
        _until(lambda: _alerts(first, "ada@first-hour.io"), "no alert for ada", first)
        _until(lambda: state.exists() and "ada@first-hour.io" in state.read_text(), "no snapshot with ada", first)

    assert not (tmp_path / "stack.json").exists(), "a stopped stack is no longer advertised"
    assert state.exists()

    with running_stack(tmp_path, extra_env=kept) as second:  # new free ports, the same data
        assert _until(lambda: _stack_file(tmp_path), "no stack.json", second)["api_url"] == second.app_url
        status, lead = _call(second.app_url + "/v1/leads?email=ada@first-hour.io")
        assert status == 200 and lead["stage"] == "sql", lead
        status, listed = _call(second.app_url + "/v1/rulesets")
        assert [v["version"] for v in listed["rulesets"]] == [1], "the kept version, not published again"
        status, active = _call(second.app_url + "/v1/rulesets/active")
        assert active["version"] == 1 and active["history"] == []
        diff = _baton("rules", "diff", "active", "chalicelib/rules/default.yaml", local_dir=tmp_path)
        assert diff.returncode == 0 and diff.stdout.startswith("no changes: v1 (active)"), diff.stderr

        # A new lead's alert arrives: the workers have run since the restart, and ada's alert
        # (delivered before the stop) was not sent again.
        _demo(second, "Bob", "bob@first-hour.io")
        _until(lambda: _alerts(second, "bob@first-hour.io"), "no alert for bob", second)
        assert _alerts(second, "ada@first-hour.io") == 1, second.log()
