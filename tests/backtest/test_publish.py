"""Authoring helpers and publishing: through the library, and through an API (a stdlib fake of it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from baton.backtest.authoring import thresholds, to_yaml, with_threshold
from baton.backtest.publish import PublishError, fetch_active, fetch_shadow_comparison, publish_ruleset
from chalicelib.rules import default_ruleset, parse_ruleset
from chalicelib.rules.loader import parse_ruleset_text
from chalicelib.rulesets import RulesetService
from chalicelib.store.memory import InMemoryRulesets

TOKEN = "admin-secret"


def test_thresholds_and_with_threshold() -> None:
    base = default_ruleset()
    assert {(t["stage"], t["field"], t["value"]) for t in thresholds(base)} == {
        ("mql", "engagement", 30), ("sql", "engagement", 60),
    }
    stricter = with_threshold(base, "mql", 45)
    assert {(t["stage"], t["value"]) for t in thresholds(stricter)} == {("mql", 45), ("sql", 60)}
    assert {(t["stage"], t["value"]) for t in thresholds(base)} == {("mql", 30), ("sql", 60)}  # untouched
    with pytest.raises(ValueError, match="no lower bound on 'fit'"):
        with_threshold(base, "mql", 10, field="fit")
    with pytest.raises(ValueError, match="stage must be one of"):
        with_threshold(base, "won", 10)
    assert parse_ruleset_text(to_yaml(stricter)) == stricter


def test_publish_through_the_library_needs_confirm() -> None:
    service = RulesetService(InMemoryRulesets(), lambda: 1000.0)
    candidate = with_threshold(default_ruleset(), "mql", 40)
    plan = publish_ruleset(candidate, service=service)
    assert plan["dry_run"] and not plan["published"] and service.list() == []
    done = publish_ruleset(candidate, service=service, confirm=True)
    assert (done["published"], done["version"], done["previous"]) == (True, 1, None)
    assert service.active().version == 1
    assert {(t["stage"], t["value"]) for t in thresholds(service.active().source)} == {("mql", 40), ("sql", 60)}


def test_an_invalid_rule_set_is_not_published() -> None:
    body = default_ruleset().model_dump(mode="json", by_alias=True)
    body["grades"][0]["min_fit"] = "high"
    service = RulesetService(InMemoryRulesets(), lambda: 1000.0)
    out = publish_ruleset(body, service=service, confirm=True)
    assert out["valid"] is False and "grades[0].min_fit" in out["error"] and service.list() == []
    with pytest.raises(ValueError, match="RulesetService"):
        publish_ruleset(default_ruleset(), confirm=True)
    with pytest.raises(ValueError, match="admin_token"):
        publish_ruleset(default_ruleset(), confirm=True, api_url="http://127.0.0.1:1")


class FakeApi(BaseHTTPRequestHandler):
    """The three admin routes the notebook uses, with bearer auth, recording what it was sent."""

    calls: list[tuple[str, str, Any]] = []
    shadow: dict[str, Any] | None = None

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.calls.append((method, self.path, body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"error": {"code": "unauthorized", "message": "the bearer token is not valid"}})
        elif method == "GET" and self.path == "/v1/rulesets/active":
            self._answer(200, {"version": 3, "ruleset": default_ruleset().model_dump(mode="json", by_alias=True)})
        elif method == "POST" and self.path == "/v1/rulesets":
            self._answer(201, {"version": 4, "name": body["name"], "checksum": "abc"})
        elif method == "POST" and self.path == "/v1/rulesets/4/publish":
            self._answer(200, {"active": 4, "previous": 3, "changed": True})
        elif method == "GET" and self.path == "/v1/rulesets/shadow/compare":
            if FakeApi.shadow is None:
                self._answer(409, {"error": {"code": "conflict", "message": "no shadow rule set is running"}})
            else:
                self._answer(200, FakeApi.shadow)
        else:
            self._answer(404, {"error": {"code": "not_found", "message": "no route"}})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    FakeApi.calls = []
    FakeApi.shadow = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_publish_through_the_api(api: str) -> None:
    version, active = fetch_active(api, TOKEN)
    assert version == 3 and active == default_ruleset()
    candidate = with_threshold(active, "sql", 70)
    assert publish_ruleset(candidate, api_url=api, admin_token=TOKEN)["dry_run"]
    assert [c[:2] for c in FakeApi.calls] == [("GET", "/v1/rulesets/active")]
    done = publish_ruleset(candidate, api_url=api, admin_token=TOKEN, confirm=True)
    assert (done["version"], done["previous"], done["checksum"]) == (4, 3, "abc")
    (_, _, posted), (_, path, _) = FakeApi.calls[1:]
    assert parse_ruleset(posted) == candidate and path == "/v1/rulesets/4/publish"


def test_api_errors_are_explained(api: str) -> None:
    with pytest.raises(PublishError, match="HTTP 401: the bearer token is not valid") as caught:
        fetch_active(api, "wrong")
    assert caught.value.status == 401
    with pytest.raises(PublishError, match="refused"):
        fetch_active("http://127.0.0.1:9", TOKEN)


def test_shadow_comparison_from_the_api(api: str) -> None:
    assert fetch_shadow_comparison(api, TOKEN) is None  # 409: no shadow running
    FakeApi.shadow = {"active_version": 3, "shadow_version": 4, "compared": 2, "verdict": {}, "counts": {},
                      "disagreements": []}
    assert fetch_shadow_comparison(api.rstrip("/"), TOKEN) == FakeApi.shadow
    with pytest.raises(PublishError):
        fetch_shadow_comparison(api, "wrong")
