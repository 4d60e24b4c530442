"""Public-abuse reproductions (issue 18) against the real local stack over HTTP: what an outsider
posting the public form with someone else's address can and cannot do.

Each was an attack that worked: overwriting a verified lead's attributes (and alerting sales with
them), reading any address's stage from the form's answer, posting without limit, and growing one
lead's item with long ids until DynamoDB refused every write for it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from chalicelib.config import Settings
from chalicelib.events import MAX_ID_LENGTH
from chalicelib.forms import MAX_BODY, MAX_FIELDS
from chalicelib.state import lead_id_for
from tests.itemsize import ITEM_LIMIT, item_size
from tests.reliability.conftest import LIVE_ADMIN_TOKEN, LIVE_INGEST_TOKEN, LiveStack
from tests.reliability.support import read_jsonl

pytestmark = [pytest.mark.reliability, pytest.mark.localstack, pytest.mark.slow]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
VERIFIED = {"first_name": "Vera", "company": "BigCo", "job_title": "Head of Data", "phone": "+1 555 0100"}
ATTACK = {"first_name": "Mallory", "company": "Evil Inc", "job_title": "CEO", "phone": "+1 555 6666"}


def _call(url: str, body: bytes | None, headers: dict[str, str], method: str = "POST") -> tuple[int, Any, Any]:
    """(status, headers, JSON body) of one request, errors included: no retries, no token unless given."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read() or b"null")


def _form(stack: LiveStack, fields: dict[str, Any], form: str = "demo") -> tuple[int, Any, Any]:
    return _call(f"{stack.app_url}/v1/forms/{form}", urlencode(fields).encode(), FORM)


def _api(stack: LiveStack, method: str, path: str, body: Any = None, token: str = LIVE_ADMIN_TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status, _, answer = _call(stack.app_url + path, None if body is None else json.dumps(body).encode(), headers,
                              method)
    assert status == 200, (status, answer)
    return answer


def _identify(stack: LiveStack, email: str, traits: dict[str, Any]) -> None:
    _api(stack, "POST", "/v1/identify", {"email": email, "anonymous_id": f"device-{uuid.uuid4().hex[:8]}",
                                         "traits": traits}, LIVE_INGEST_TOKEN)


def _lead(stack: LiveStack, email: str) -> Any:
    return _api(stack, "GET", f"/v1/leads?email={quote(email)}")


def _state_item(stack: LiveStack, email: str) -> dict[str, Any]:
    found = stack.aws("dynamodb").get_item(TableName="baton-local-leads", ConsistentRead=True,
                                           Key={"pk": {"S": f"LEAD#{lead_id_for(email)}"}, "sk": {"S": "STATE"}})
    return dict(found["Item"])


def _until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(what)


def _address() -> str:
    return f"victim.{uuid.uuid4().hex[:8]}@bigco.com"


def test_a_form_cannot_overwrite_a_verified_lead_nor_put_its_values_in_the_alert(live_stack: LiveStack) -> None:
    email = _address()
    _identify(live_stack, email, VERIFIED)
    status, _, answer = _form(live_stack, {"email": email, **ATTACK})  # the demo form: a hand-raiser
    assert status == 200, answer
    lead = _lead(live_stack, email)
    assert {k: lead["attributes"][k] for k in VERIFIED} == VERIFIED
    assert lead["attribute_sources"]["company"]["source"] == "api"
    assert lead["stage"] == "sql"  # asking for a demo still counts; sales sees who the lead really is

    def alert() -> Any:
        posts = read_jsonl(live_stack.slack_outbox) if live_stack.slack_outbox.exists() else []
        return [p for p in posts if p.get("kind") == "post" and email in json.dumps(p)]

    text = json.dumps(_until(alert, 30, f"no alert for the lead: {live_stack.log()}"))
    assert "BigCo" in text and "Vera" in text
    assert "Evil Inc" not in text and "Mallory" not in text


def test_the_form_answer_discloses_nothing_about_a_lead(live_stack: LiveStack) -> None:
    email = _address()
    _identify(live_stack, email, VERIFIED)
    lead_id = lead_id_for(email)
    _api(live_stack, "POST", f"/v1/leads/{lead_id}/outcome", {"outcome": "won"})
    assert _lead(live_stack, email)["stage"] == "customer"
    status, _, answer = _call(f"{live_stack.app_url}/v1/forms/demo", json.dumps({"email": email}).encode(),
                              {"Content-Type": "application/json"})
    assert status == 200 and set(answer) == {"ok", "message"}, answer
    for secret in ("customer", lead_id, "grade", "fit", "engagement", "handed_to_sales"):
        assert secret not in json.dumps(answer)


def test_public_posts_per_address_get_429_with_retry_after(live_stack: LiveStack) -> None:
    email = _address()
    limit = Settings.from_env({}).form_posts_per_hour  # the stack runs with the default
    for n in range(limit):
        status, _, answer = _form(live_stack, {"email": email, "_submission_id": f"s{n}"}, "newsletter")
        assert status == 200, (n, answer)
    before = _state_item(live_stack, email)
    status, headers, answer = _form(live_stack, {"email": email, "_submission_id": "one-more"}, "newsletter")
    assert status == 429, answer
    assert 1 <= int(headers["Retry-After"]) <= 3600
    assert answer["error"]["code"] == "too_many_requests" and answer["error"]["details"]["field"] == "email"
    assert _state_item(live_stack, email) == before, "nothing stored"
    _identify(live_stack, email, VERIFIED)  # verified sources are not limited by it


def test_long_ids_cannot_grow_a_lead_until_it_refuses_writes(live_stack: LiveStack) -> None:
    email = _address()
    too_long = {"email": email, "_submission_id": "x" * (MAX_ID_LENGTH + 1)}
    status, _, answer = _form(live_stack, too_long, "newsletter")
    assert status == 422 and answer["error"]["details"]["field"] == "_submission_id", answer
    status, _, _ = _call(f"{live_stack.app_url}/v1/leads?email={quote(email)}", None,
                         {"Authorization": f"Bearer {LIVE_ADMIN_TOKEN}"}, "GET")
    assert status == 404, "nothing stored"
    # As many of the largest posts with the longest ids as the address may make, new custom fields
    # each time: the item stays far below DynamoDB's limit, and a verified write still lands.
    limit = Settings.from_env({}).form_posts_per_hour
    for n in range(limit):
        fields: dict[str, Any] = {"email": email, "_submission_id": f"{n:04d}".ljust(MAX_ID_LENGTH, "x")}
        fields |= {f"{n:04d}{i:02d}".ljust(64, "f"): "v" * 480 for i in range(MAX_FIELDS - 2)}
        body = urlencode(fields)
        while len(body) > MAX_BODY:
            fields.popitem()
            body = urlencode(fields)
        status, _, answer = _call(f"{live_stack.app_url}/v1/forms/newsletter", body.encode(), FORM)
        assert status == 200, (n, answer)
    size = item_size(_state_item(live_stack, email))
    assert size < 120 * 1024 < ITEM_LIMIT, size
    _identify(live_stack, email, {"company": "BigCo"})
    assert _lead(live_stack, email)["attributes"]["company"] == "BigCo"
