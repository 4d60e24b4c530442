"""Test helpers for the Slack adapter: a scriptable fake Slack HTTP server and a sample handoff.

A uniquely named module (not ``conftest``) so test modules can import it unambiguously.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads" / "slack"


@dataclass
class Reply:
    status: int = 200
    body: str | bytes | dict[str, Any] = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the fake answered
    at: float = 0.0  # when (time.time())

    def json(self) -> Any:
        return json.loads(self.body)


class FakeSlack:
    """A loopback HTTP server answering from a script: one reply per request, the last repeats."""

    def __init__(self) -> None:
        self.script: list[Reply] = [Reply()]
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with fake._lock:
                    reply = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    fake.requests.append(Recorded("POST", self.path, headers, body, reply.status, time.time()))
                payload = reply.body
                if isinstance(payload, dict):
                    payload = json.dumps(payload)
                    content_type = "application/json; charset=utf-8"
                else:
                    content_type = "text/plain; charset=utf-8"
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # A short poll keeps shutdown() quick (the default is half a second per test).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, *replies: Reply) -> None:
        self.script = list(replies)


def handoff_dict(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": "baton.handoff.v1",
        "transition_id": "t_01JD5Q7Z8K3M4N5P6R7S8T9V0W",
        "lead_id": "L01JD5Q4X2Y3Z4A5B6C7D8E9F0",
        "stage": "sql",
        "from_stage": "mql",
        "fast_track": False,
        "occurred_at": "2026-11-23T10:00:00Z",
        "ruleset_version": 3,
        "route": {
            "name": "emea-enterprise",
            "channel": "#sales-emea",
            "sla_hours": 4,
            "escalation_channel": "#sales-leads",
        },
        "sla_deadline": "2026-11-23T14:00:00Z",
        "lead": {
            "email": "jane.doe@acme.example",
            "first_name": "Jane",
            "last_name": "Doe",
            "job_title": "VP Sales",
            "company": "Acme",
            "country": "DE",
            "company_size": 120,
            "industry": "Software",
        },
        "scores": {"fit": 45, "grade": "A", "engagement": 72.5},
        "reasons": [
            {"rule": "title-vp", "label": "VP or C-level title", "points": 20, "kind": "fit"},
            {"rule": "size-100-1000", "label": "Company size 100-1000", "points": 15, "kind": "fit"},
            {
                "rule": "pricing-3x",
                "label": "3 pricing page views in 7 days",
                "points": 25,
                "kind": "frequency",
            },
            {"rule": "demo", "label": "Demo request", "points": 40, "kind": "engagement"},
            {"rule": "careers", "label": "Visited careers page", "points": -10, "kind": "engagement"},
            {"rule": "email-open", "label": "Email opened", "points": 2, "kind": "engagement"},
            {"rule": "country-emea", "label": "EMEA country", "points": 5, "kind": "fit"},
        ],
        "key_events": [
            {"type": "page_view", "at": "2026-11-22T16:30:00Z", "label": "Viewed /pricing"},
            {"type": "demo_request", "at": "2026-11-23T09:58:00Z", "label": "Demo request: demo-page"},
        ],
        "source": "form",
        "reason": "hand-raiser: demo_request",
    }
    data.update(overrides)
    return data


@contextlib.contextmanager
def serving_fake_slack(monkeypatch: Any) -> Iterator[FakeSlack]:
    """A fake Slack on loopback for one test; slack_sdk would route through HTTP(S)_PROXY otherwise."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeSlack()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
