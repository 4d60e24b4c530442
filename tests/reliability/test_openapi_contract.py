"""docs/openapi.yaml describes exactly the routes app.py serves, with their parameters, body types,
auth and error shape. A route added without its documentation (or the reverse) fails here."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.reliability.support import OPENAPI

pytestmark = pytest.mark.reliability

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
IGNORED = {"OPTIONS"}  # CORS preflights: API Gateway may answer them itself
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
    return loaded


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method.upper()): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS and method.upper() not in IGNORED
    }


def _routes() -> dict[tuple[str, str], Any]:
    import app

    return {
        (path, method): entry
        for path, methods in app.app.routes.items()
        for method, entry in methods.items()
        if method not in IGNORED
    }


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def test_the_document_is_openapi_3_1_and_loads_in_schemathesis(doc: dict[str, Any]) -> None:
    import schemathesis
    from schemathesis.core.result import Ok

    assert str(doc["openapi"]).startswith("3.1.")
    schema = schemathesis.openapi.from_path(str(OPENAPI))
    results = list(schema.get_all_operations())
    broken = [str(r) for r in results if not isinstance(r, Ok)]
    assert not broken, broken
    ids = [op.get("operationId") for op in _operations(doc).values()]
    assert all(ids) and len(ids) == len(set(ids)), "every operation has a unique operationId"


def test_every_route_is_documented_and_nothing_else(doc: dict[str, Any]) -> None:
    routed, documented = set(_routes()), set(_operations(doc))
    assert sorted(routed - documented) == [], "routes missing from docs/openapi.yaml"
    assert sorted(documented - routed) == [], "documented operations that app.py does not route"


def test_path_parameters_and_request_media_types_match_the_routes(doc: dict[str, Any]) -> None:
    routes = _routes()
    for (path, method), op in _operations(doc).items():
        entry = routes[(path, method)]
        item = doc["paths"][path]
        params = [_resolve(doc, p) for p in [*item.get("parameters", []), *op.get("parameters", [])]]
        in_path = sorted(p["name"] for p in params if p["in"] == "path")
        assert in_path == sorted(entry.view_args), f"{method} {path}: path parameters"
        assert in_path == sorted(re.findall(r"{(\w+)}", path))
        body = op.get("requestBody")
        if body is not None:
            documented = set(_resolve(doc, body)["content"])
            assert documented == set(entry.content_types), f"{method} {path}: request media types"


def test_auth_errors_and_the_error_shape_are_documented(doc: dict[str, Any]) -> None:
    schemes = set(doc["components"]["securitySchemes"])
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]
    assert set(error["required"]) == {"code", "message", "details"}
    for (path, method), op in _operations(doc).items():
        for requirement in op.get("security", doc.get("security", [])):
            assert set(requirement) <= schemes, f"{method} {path}: unknown security scheme"
        responses = op["responses"]
        if op.get("security"):
            assert "401" in responses, f"{method} {path}: an authenticated route documents 401"
        page = "text/html" in responses.get("200", {}).get("content", {})  # a page for people answers in HTML
        for status, response in responses.items():
            if page:
                assert set(_resolve(doc, response)["content"]) == {"text/html"}, f"{method} {path} {status}"
            elif status.startswith("4") or (status.startswith("5") and path != "/health"):
                schema = _resolve(doc, response)["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, f"{method} {path} {status}: errors use the Error shape"
        if path != "/health":
            unavailable = _resolve(doc, responses["503"])
            assert "Retry-After" in unavailable["headers"], f"{method} {path}: 503 says when to retry"
