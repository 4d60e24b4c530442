"""Chalice's own answers in the documented error shape, and the running re-score on the active answer.

(An unknown route is answered before the app runs: by API Gateway in AWS, by the templates'
gateway response in the local stack; see tests/test_package.py and tests/localstack.)
"""

from __future__ import annotations

import json
import re

import pytest

from chalicelib.errors import chalice_error_code
from chalicelib.queues import InMemoryQueue
from tests.app.conftest import ADMIN, INGEST, Api

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _error(response: object) -> dict[str, object]:
    body = json.loads(response.body)  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert SNAKE.match(body["error"]["code"]), body
    return dict(body["error"])


def test_a_method_the_route_does_not_take_is_a_405_saying_which_it_takes(api: Api) -> None:
    response = api.client.http.put("/v1/rulesets/active", headers=ADMIN)
    assert response.status_code == 405
    error = _error(response)
    assert error["code"] == "method_not_allowed"
    assert error["details"] == {"allowed": ["GET"]}
    assert response.headers["Allow"] == "GET"
    assert response.headers["Content-Type"] == "application/json"


def test_a_content_type_the_route_does_not_take_is_a_415_naming_the_header(api: Api) -> None:
    response = api.client.http.post("/v1/events", headers={**INGEST, "Content-Type": "text/csv"}, body="a,b")
    assert response.status_code == 415
    error = _error(response)
    assert error["code"] == "unsupported_media_type"
    assert error["details"] == {"field": "Content-Type"}


@pytest.mark.parametrize(("chalice", "ours"), [
    ("MethodNotAllowedError", "method_not_allowed"), ("UnsupportedMediaType", "unsupported_media_type"),
    ("BadRequest", "bad_request"), ("BadRequestError", "bad_request"), ("InternalServerError", "internal_error"),
    ("UnprocessableEntityError", "validation_failed"), ("TooManyRequestsError", "too_many_requests"),
    ("SomeFutureThingError", "some_future_thing"), ("HTTP2Error", "http2"), ("", "error"),
])  # fmt: skip
def test_chalice_codes_become_snake_case(chalice: str, ours: str) -> None:
    assert chalice_error_code(chalice) == ours


def test_the_active_rule_set_shows_its_running_rescore(api: Api) -> None:
    from chalicelib.bootstrap import container
    from chalicelib.rules.loader import default_ruleset

    queue = InMemoryQueue()
    container().extras["queue"] = queue
    events = [{"event_id": f"e{i}", "type": "page_view", "email": f"lead{i}@acme.io",
               "occurred_at": "2026-11-10T10:00:00Z", "properties": {"path": "/pricing"}} for i in range(3)]
    assert api.post("/v1/events", {"events": events}, headers=INGEST).status_code == 202
    body = default_ruleset().model_dump(mode="json", by_alias=True)
    version = api.post("/v1/rulesets", body, headers=ADMIN).json_body["version"]
    job = api.post(f"/v1/rulesets/{version}/publish", headers=ADMIN).json_body["rescore"]["job_id"]

    def rescore() -> dict[str, object]:
        active = api.get("/v1/rulesets/active", headers=ADMIN).json_body
        assert active["version"] == version
        [found] = [j for j in active["rescore"] if j["job_id"] == job]
        return dict(found)

    started = rescore()
    assert started["status"] == "running" and started["leads_done"] == 0 and started["leads_total"] is None
    while (message := queue.take()) is not None:  # the re-score queue, delivered as Lambda would
        event = api.client.events.generate_sqs_event(message_bodies=[json.dumps(message)], queue_name="rescore")
        api.client.lambda_.invoke("rescore_worker", event)
    done = rescore()
    assert done["status"] == "complete" and done["leads_total"] == 3 and done["leads_done"] == 3
    assert done["failures"] == 0
    assert rescore() == api.get(f"/v1/rulesets/{version}", headers=ADMIN).json_body["rescore"][0]


def _spelled_fixed_routes() -> list[object]:
    """(method, fixed path, parameters) where a fixed route that does not take ``method`` is spelled by
    a route with path parameters that does (GET /v1/rulesets/shadow: GET /v1/rulesets/{version})."""
    import app as app_module

    out = []
    for fixed, methods in app_module.app.routes.items():
        for method in {m for taken in app_module.app.routes.values() for m in taken} - set(methods):
            if "{" not in fixed and (spelled := app_module._parameter_route(fixed, method)) is not None:
                out.append(pytest.param(method, fixed, list(spelled[1]), id=f"{method} {fixed}"))
    return out


def test_fixed_routes_spelled_by_a_path_parameter_are_found() -> None:
    assert {p.id for p in _spelled_fixed_routes()} >= {"GET /v1/rulesets/shadow", "GET /v1/rulesets/rollback"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "fixed", "params"), _spelled_fixed_routes())
def test_a_path_parameter_spelling_a_fixed_route_is_judged_by_its_route_not_a_405(
    api: Api, method: str, fixed: str, params: list[str]
) -> None:
    # "shadow" is no version: the 422 the version route gives any other word, naming the field.
    for path in (fixed, fixed + "/"):
        response = api.client.http.request(method, path, headers=ADMIN, body=b"")
        assert response.status_code == 422, (path, response.body)
        assert _error(response)["details"]["field"] in params
    unauthenticated = api.client.http.request(method, fixed, headers={}, body=b"")
    assert unauthenticated.status_code == 401  # (the route's own checks, in its order)
