"""Property-based fuzzing of every route: schemathesis generates requests from docs/openapi.yaml
(valid ones and schema-violating ones), hypothesis adds hostile raw bodies; each goes through the
real routes (``chalice.test.Client``) onto DynamoDB on moto.

For every request: no 5xx; a 4xx carries ``{"error": {"code", "message", "details"}}`` with a
message; after a rejected request the leads, rulesets and outbox tables are exactly as before;
the status is one the document lists, and a JSON answer matches the documented schema.
Authenticated requests carry the right token and vendor signature, so bodies reach the parsers.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import Service
from tests.reliability.support import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    OPENAPI,
    SOURCE_SECRETS,
    error_shape_problems,
    slack_headers,
)

pytestmark = pytest.mark.reliability

EXAMPLES = 30  # per operation and generation mode: the suite's time budget is a few minutes
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
DOC: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
SKIPPED_METHODS = {"options"}  # chalice.test.Client cannot send OPTIONS (PITFALLS.md)


def _resolve(node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    pointer = None
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        target: Any = DOC
        for part in pointer.strip("/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node, pointer


def _operations() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in DOC["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete") and method not in SKIPPED_METHODS
    ]


def _negatable(method: str, path: str) -> bool:
    """Has the operation anything schemathesis can make invalid (parameters or a body)?"""
    item = DOC["paths"][path]
    op = item[method.lower()]
    params = [_resolve(p)[0] for p in (*item.get("parameters", []), *op.get("parameters", []))]
    # A free-form string path segment has no invalid value an HTTP client could send.
    constrained = [p for p in params if p["in"] != "path" or {"pattern", "enum"} & set(p["schema"])]
    return bool(constrained or op.get("requestBody"))


CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode}")
    for method, path in _operations()
    for mode in ("positive", "negative")
    if mode == "positive" or _negatable(method, path)
]


@cache
def _schema() -> Any:
    import schemathesis

    return schemathesis.openapi.from_path(str(OPENAPI))


def _token_for(op: dict[str, Any]) -> str | None:
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


def check_documented(method: str, path: str, status: int, headers: dict[str, Any], body: bytes) -> list[str]:
    responses = DOC["paths"][path][method.lower()]["responses"]
    if str(status) not in responses:
        return [f"{method} {path}: status {status} is not documented ({sorted(responses)})"]
    response, ref = _resolve(responses[str(status)])
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

def _prepare(case: Any) -> tuple[str, str, dict[str, str], bytes]:
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


def _authenticate(service: Service, op: dict[str, Any], method: str, path: str, headers: dict[str, str],
                  body: bytes) -> tuple[str, dict[str, str]]:
    """Right token, right vendor signature: the request is judged on its content, not its credentials."""
    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    if token := _token_for(op):
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
    before = service.snapshot()
    response = service.request(method, path, headers, body)
    status = response.status_code
    shown = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    where = f"{method} {path}\nheaders: {shown}\nbody: {body[:600]!r}\n-> {status} {response.body[:600]!r}"
    assert status < 500, f"5xx from bad input:\n{where}"
    problems: list[str] = []
    if status >= 400:
        problems += error_shape_problems(status, response.json_body)
        if service.snapshot() != before:
            problems.append(f"{status} but the tables changed")
    elif 300 <= status < 400:
        if not response.headers.get("Location"):
            problems.append(f"{status} without a Location header")
    problems += check_documented(method, doc_path, status, response.headers, response.body)
    assert not problems, "\n".join(problems) + f"\n{where}"
    return response


# -- seeding: something for the fuzzed ids to find ----------------------------------------------

DEMO_FORM = b"email=ada%40acme.io&first_name=Ada&job_title=CTO&company_size=300&industry=software&country=US"


def _seed(service: Service) -> dict[str, str]:
    from chalicelib.rules.loader import default_ruleset

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    body = json.dumps(default_ruleset().model_dump(mode="json", by_alias=True)).encode()
    for _ in range(2):
        assert service.request("POST", "/v1/rulesets", admin, body).status_code == 201
    assert service.request("POST", "/v1/rulesets/1/publish", admin).status_code == 200
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    lead = service.request("POST", "/v1/forms/demo", form, DEMO_FORM).json_body
    return {"lead_id": lead["lead_id"], "version": "1", "shadow_version": "2"}


def _fixed_parameters(path: str, seeded: dict[str, str]) -> list[dict[str, str]]:
    if "{form_id}" in path:
        return [{"form_id": "demo"}, {"form_id": "newsletter"}]
    if "{lead_id}" in path:
        return [{"lead_id": seeded["lead_id"]}]
    if path == "/v1/rulesets/{version}/shadow":
        return [{"version": seeded["shadow_version"]}]
    if "{version}" in path:
        return [{"version": seeded["version"]}, {"version": seeded["shadow_version"]}]
    return []


def _strategy(method: str, path: str, mode: str, seeded: dict[str, str]) -> Any:
    from schemathesis import GenerationMode

    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    op = _schema()[path][method]
    fixed_headers = {"Authorization": "Bearer fixed-below"}
    strategies = [op.as_strategy(generation_mode=generation, headers=fixed_headers)]
    item, spec = DOC["paths"][path], DOC["paths"][path][method.lower()]
    others = [p for p in (*item.get("parameters", []), *spec.get("parameters", [])) if _resolve(p)[0]["in"] != "path"]
    if mode == "positive" or others or spec.get("requestBody"):  # a negative case needs something to negate
        strategies += [
            op.as_strategy(generation_mode=generation, headers=fixed_headers, path_parameters=params)
            for params in _fixed_parameters(path, seeded)
        ]
    return st.one_of(strategies)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_generated_requests_never_5xx_and_rejections_store_nothing(
    service: Service, method: str, path: str, mode: str
) -> None:
    seeded = _seed(service)
    op = DOC["paths"][path][method.lower()]

    @FUZZ
    @given(case=_strategy(method, path, mode, seeded))
    def fuzz(case: Any) -> None:
        sent_method, sent_path, headers, body = _prepare(case)
        sent_path, headers = _authenticate(service, op, sent_method, sent_path, headers, body)
        send_and_check(service, sent_method, path, sent_path, headers, body)

    fuzz()


# -- credentials: every protected route refuses without the right ones --------------------------

PROTECTED = [
    pytest.param(method, path, id=f"{method} {path}")
    for method, path in _operations()
    if DOC["paths"][path][method.lower()].get("security") or path.startswith("/v1/webhooks/")
]
BAD_CREDENTIALS = [None, "Bearer wrong-token", f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x", "Bearer ",
                   f"bearer  {INGEST_TOKEN} extra"]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_routes_refuse_wrong_credentials_with_401_and_store_nothing(
    service: Service, method: str, path: str
) -> None:
    from schemathesis import GenerationMode

    op = DOC["paths"][path][method.lower()]
    admin_only = _token_for(op) == ADMIN_TOKEN
    credentials = [*BAD_CREDENTIALS, *([f"Bearer {INGEST_TOKEN}"] if admin_only else [])]
    strategy = _schema()[path][method].as_strategy(
        generation_mode=GenerationMode.POSITIVE, headers={"Authorization": "Bearer fixed-below"}
    )

    @settings(FUZZ, max_examples=12)
    @given(case=strategy, credential=st.sampled_from(credentials), stale=st.booleans())
    def refuse(case: Any, credential: str | None, stale: bool) -> None:
        sent_method, sent_path, headers, body = _prepare(case)
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if path == "/v1/slack/interactions":
            headers = {k: v for k, v in headers.items() if not k.lower().startswith("x-slack-")}
            if stale:  # signed right, but ten minutes ago: a replay
                headers.update(slack_headers(body, time.time() - 600))
            elif credential:
                headers.update(slack_headers(body, time.time(), secret="not-the-secret"))
        elif credential is not None:
            headers["Authorization"] = credential
        if path.startswith("/v1/webhooks/"):
            sent_path = sent_path.partition("?")[0]  # no Mailchimp key, no signature headers
        response = send_and_check(service, sent_method, path, sent_path, headers, body)
        if (path.startswith("/v1/webhooks/") and sent_path.endswith(("/typeform", "/calendly", "/sendgrid",
                                                                      "/mailchimp", "/hubspot", "/segment"))) or not path.startswith("/v1/webhooks/"):
            assert response.status_code == 401, response.body

    refuse()


# -- hostile raw bodies: what a schema never describes ------------------------------------------

BODY_ROUTES = [
    pytest.param(method, path, id=f"{method} {path}")
    for method, path in _operations()
    if DOC["paths"][path][method.lower()].get("requestBody")
]
MEDIA_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", "application/yaml",
               "application/json; charset=UTF-8", "application/x-www-form-urlencoded; charset=utf-8",
               "multipart/form-data; boundary=x", "", "application/xml"]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def _nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "dict":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"a[" * depth + b"]" * depth


hostile_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(_nested, st.integers(500, 120_000), st.sampled_from(["list", "dict", "yaml"])),
    st.integers(4301, 20_000).map(lambda n: b'{"email": ' + b"9" * n + b"}"),
    st.integers(4301, 20_000).map(lambda n: b"9" * n),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'""', b"NaN", b'{"a": NaN}', b"Infinity", b"-1e99999",
                     b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b'{"email": "a@b.io", "email": 1}',
                     b'{"\\ud800": "\\udfff"}', b"%zz=%", b"a=1&a=2&a[]=3", b"=" * 100, b"&" * 5000,
                     b"payload=%7B%7D", b"payload=" + b"%5B" * 5000, b"--- !!python/object:os.system {}",
                     b"&a [*a, *a]\nb: &b [*a, *a, *a]", b"events=1", b"\x00" * 64]),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: urlencode({"payload": json.dumps(v), "email": "a@b.io"}).encode()),
)


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_hostile_bodies_never_5xx_and_store_nothing(service: Service, method: str, path: str) -> None:
    seeded = _seed(service)
    op = DOC["paths"][path][method.lower()]
    concrete = path.replace("{form_id}", "demo").replace("{lead_id}", seeded["lead_id"])

    @settings(FUZZ, max_examples=40)
    @given(body=hostile_bodies, media=st.sampled_from(MEDIA_TYPES),
           source=st.sampled_from(["typeform", "calendly", "sendgrid", "mailchimp", "hubspot", "segment"]))
    def hostile(body: bytes, media: str, source: str) -> None:
        headers = {"Content-Type": media} if media else {}
        sent = concrete.replace("{source}", source)
        sent, headers = _authenticate(service, op, method, sent, headers, body)
        send_and_check(service, method, path, sent, headers, body)

    hostile()
