"""Every protected route refuses missing or wrong credentials with a 401 in the error shape and
stores nothing, whatever the (otherwise valid) request: bearer tokens on admin and ingestion
routes, the Slack signature (a replay too), vendor signatures on webhooks."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings

from tests.reliability.fuzzing import DOC, FUZZ, operations, prepare, schema, send_and_check, token_for
from tests.reliability.support import ADMIN_TOKEN, INGEST_TOKEN, Service, slack_headers

pytestmark = pytest.mark.reliability

PROTECTED = [
    pytest.param(method, path, id=f"{method} {path}")
    for method, path in operations()
    if DOC["paths"][path][method.lower()].get("security") or path.startswith("/v1/webhooks/")
]
BAD_BEARERS = [None, "Bearer wrong-token", f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x", "Bearer ",
               f"Token {INGEST_TOKEN}", f"Bearer {ADMIN_TOKEN[:-1]}"]  # fmt: skip


def _bad_credentials(path: str, op: dict[str, Any], body: bytes) -> list[dict[str, str]]:
    if path == "/v1/slack/interactions":
        now = time.time()
        return [{}, slack_headers(body, now - 600), slack_headers(body, now + 600),  # replays, both ways
                slack_headers(body, now, secret="not-the-secret"),
                {**slack_headers(body, now), "X-Slack-Signature": "v1=" + "0" * 64},
                {**slack_headers(body, now), "X-Slack-Request-Timestamp": "yesterday"}]  # fmt: skip
    if path.startswith("/v1/webhooks/"):
        return [{}]  # no signature header, no Mailchimp key
    bearers = [*BAD_BEARERS, *([f"Bearer {INGEST_TOKEN}"] if token_for(op) == ADMIN_TOKEN else [])]
    return [{"Authorization": b} if b is not None else {} for b in bearers]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_routes_refuse_wrong_credentials_with_401_and_store_nothing(
    shared_service: Service, method: str, path: str
) -> None:
    from schemathesis import GenerationMode

    op = DOC["paths"][path][method.lower()]
    cases = schema()[path][method].as_strategy(
        generation_mode=GenerationMode.POSITIVE, headers={"Authorization": "Bearer fixed-below"}
    )

    @settings(FUZZ, max_examples=3)
    @given(case=cases)
    def refuse(case: Any) -> None:
        sent_method, sent_path, headers, body = prepare(case)
        plain = {k: v for k, v in headers.items() if k.lower() != "authorization" and not k.lower().startswith("x-")}
        if path.startswith("/v1/webhooks/"):
            sent_path = sent_path.partition("?")[0]
        for credentials in _bad_credentials(path, op, body):
            response = send_and_check(shared_service, sent_method, path, sent_path, {**plain, **credentials}, body)
            assert response.status_code == 401, (credentials, response.body)

    refuse()
