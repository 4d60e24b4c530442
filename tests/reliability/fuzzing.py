"""The machinery of the API fuzzing: docs/openapi.yaml as data and as schemathesis strategies,
sending a generated case through ``chalice.test.Client`` with the right credentials, and the
checks every answer must pass (no 5xx, error shape, nothing stored on a 4xx, documented status
and body)."""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import yaml
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

from chalicelib.state import lead_id_for
from tests.reliability.support import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    OPENAPI,
    SOURCE_SECRETS,
    Service,
    error_shape_problems,
    slack_headers,
)

EXAMPLES = 20  # per operation and generation mode (so 40 per route): the suite has a few minutes
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
DOC: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
METHODS = ("get", "post", "put", "patch", "delete")  # not OPTIONS: chalice.test.Client cannot send it


def resolve(node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The object a ``$ref`` chain ends at, and the JSON pointer of its last ``$ref`` (or None)."""
    pointer = None
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        target: Any = DOC
        for part in pointer.strip("/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node, pointer


def operations() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in DOC["paths"].items()
        for method in item
        if method in METHODS
    ]


def negatable(method: str, path: str) -> bool:
    """Has the operation anything schemathesis can make invalid (parameters or a body)?"""
    item = DOC["paths"][path]
    op = item[method.lower()]
    params = [resolve(p)[0] for p in (*item.get("parameters", []), *op.get("parameters", []))]
    # A free-form string path segment has no invalid value an HTTP client could send.
    constrained = [p for p in params if p["in"] != "path" or {"pattern", "enum"} & set(p["schema"])]
    return bool(constrained or op.get("requestBody"))


@cache
def schema() -> Any:
    import schemathesis

    return schemathesis.openapi.from_path(str(OPENAPI))


def token_for(op: dict[str, Any]) -> str | None:
    names = {name for requirement in op.get("security", []) for name in requirement}
    if "adminToken" in names and "ingestToken" not in names:
        return ADMIN_TOKEN
    if "ingestToken" in names:
        return INGEST_TOKEN
    return None


# -- the documented responses -------------------------------------------------------------------

@cache
def _validator(pointer: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    registry = Registry().with_resource("urn:baton:openapi", Resource(contents=DOC, specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"urn:baton:openapi#{pointer}"}, registry=registry)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def html_page(method: str, path: str, status: int) -> bool:
    """Whether the document says this answer is an HTML page."""
    documented = DOC["paths"][path][method.lower()]["responses"].get(str(status))
    return documented is not None and "text/html" in resolve(documented)[0].get("content", {})


def check_documented(method: str, path: str, status: int, body: bytes) -> list[str]:
    responses = DOC["paths"][path][method.lower()]["responses"]
    if str(status) not in responses:
        return [f"{method} {path}: status {status} is not documented ({sorted(responses)})"]
    response, ref = resolve(responses[str(status)])
    base = ref or f"/paths/{_escape(path)}/{method.lower()}/responses/{status}"
    content = response.get("content", {})
    if "application/json" not in content:
        return []
    try:
        data = json.loads(body)
    except ValueError:
        return [f"{method} {path} {status}: the body is not JSON: {body[:200]!r}"]
    validator = _validator(f"{base}/content/application~1json/schema")
    return [f"{method} {path} {status}: {e.json_path}: {e.message[:200]}" for e in validator.iter_errors(data)][:3]


# -- sending a generated case -------------------------------------------------------------------

def prepare(case: Any) -> tuple[str, str, dict[str, str], bytes]:
    """(method, path with query, headers, body) exactly as an HTTP client would send them."""
    import requests

    kw = case.as_transport_kwargs(base_url="http://localhost")
    allowed = ("method", "url", "headers", "params", "data", "json", "files")
    try:
        prepared = requests.Request(**{k: v for k, v in kw.items() if k in allowed}).prepare()
    except (ValueError, requests.RequestException):
        assume(False)  # not sendable over HTTP at all (e.g. a newline in a header value)
        raise
    url = urlsplit(prepared.url or "")
    query = url.query
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {k: v for k, v in prepared.headers.items() if k.lower() not in ("content-length", "cookie")}
    return prepared.method or case.method, url.path + (f"?{query}" if query else ""), headers, body


def authenticate(service: Service, op: dict[str, Any], method: str, path: str, headers: dict[str, str],
                 body: bytes) -> tuple[str, dict[str, str]]:
    """Right token, right vendor signature: the request is judged on its content, not its credentials."""
    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    if token := token_for(op):
        headers["Authorization"] = f"Bearer {token}"
    bare, _, query = path.partition("?")
    now = time.time()
    if bare == "/v1/slack/interactions":
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("x-slack-")}
        headers.update(slack_headers(body, now))
    elif bare.startswith("/v1/webhooks/"):
        source = bare.rsplit("/", 1)[-1]
        params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "key"]
        if source == "mailchimp":
            params.append(("key", SOURCE_SECRETS["mailchimp"]))
        if source == "hubspot":
            params = []  # HubSpot signs the URL; keep it simple to rebuild
        path = bare + (f"?{urlencode(params)}" if params else "")
        headers.update(service.signer.webhook(source, method, bare, body, now))
    return path, headers


def send_and_check(service: Service, method: str, doc_path: str, path: str, headers: dict[str, str],
                   body: bytes) -> Any:
    before = service.known()
    response = service.request(method, path, headers, body)
    status = response.status_code
    shown = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    where = f"{method} {path}\nheaders: {shown}\nbody: {body[:600]!r}\n-> {status} {response.body[:600]!r}"
    assert status < 500, f"5xx from bad input:\n{where}"
    problems: list[str] = []
    if status >= 400:
        if not html_page(method, doc_path, status):  # a page for people refuses in HTML (the lead page)
            problems += error_shape_problems(status, response.json_body)
        if service.writes:
            problems.append(f"{status} but the app wrote to DynamoDB: {service.writes}")
        if service.snapshot() != before:  # also what a write through another client would change
            problems.append(f"{status} but the tables changed")
    elif 300 <= status < 400 and not response.headers.get("Location"):
        problems.append(f"{status} without a Location header")
    problems += check_documented(method, doc_path, status, response.body)
    assert not problems, "\n".join(problems) + f"\n{where}"
    return response


# -- seeding: something for the fuzzed ids to find ----------------------------------------------

DEMO_FORM = b"email=ada%40acme.io&first_name=Ada&job_title=CTO&company_size=300&industry=software&country=US"


def seed(service: Service) -> dict[str, str]:
    from chalicelib.rules.loader import default_ruleset

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    body = json.dumps(default_ruleset().model_dump(mode="json", by_alias=True)).encode()
    for _ in range(2):
        assert service.request("POST", "/v1/rulesets", admin, body).status_code == 201
    assert service.request("POST", "/v1/rulesets/1/publish", admin).status_code == 200
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert service.request("POST", "/v1/forms/demo", form, DEMO_FORM).status_code == 200
    # (a form's answer names no lead: its id is the digest of the address)
    return {"lead_id": lead_id_for("ada@acme.io"), "version": "1", "shadow_version": "2"}


def fixed_parameters(path: str, seeded: dict[str, str]) -> list[dict[str, str]]:
    if "{form_id}" in path:
        return [{"form_id": "demo"}, {"form_id": "newsletter"}]
    if "{lead_id}" in path:
        return [{"lead_id": seeded["lead_id"]}]
    if path == "/v1/rulesets/{version}/shadow":
        return [{"version": seeded["shadow_version"]}]
    if "{version}" in path:
        return [{"version": seeded["version"]}, {"version": seeded["shadow_version"]}]
    return []


def strategy(method: str, path: str, mode: str, seeded: dict[str, str]) -> Any:
    from schemathesis import GenerationMode

    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    op = schema()[path][method]
    fixed_headers = {"Authorization": "Bearer fixed-below"}
    strategies = [op.as_strategy(generation_mode=generation, headers=fixed_headers)]
    item, spec = DOC["paths"][path], DOC["paths"][path][method.lower()]
    others = [p for p in (*item.get("parameters", []), *spec.get("parameters", [])) if resolve(p)[0]["in"] != "path"]
    if mode == "positive" or others or spec.get("requestBody"):  # a negative case needs something to negate
        strategies += [
            op.as_strategy(generation_mode=generation, headers=fixed_headers, path_parameters=params)
            for params in fixed_parameters(path, seeded)
        ]
    return st.one_of(strategies)


