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
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reliability.fuzzing import (
    DOC,
    FUZZ,
    authenticate,
    negatable,
    operations,
    prepare,
    seed,
    send_and_check,
    strategy,
)
from tests.reliability.support import ADMIN_TOKEN, Service, slack_headers

pytestmark = pytest.mark.reliability


@pytest.fixture
def service(shared_service: Service) -> Service:
    """One moto and app for the module (deploying the data plane per test costs more than the
    test), emptied before each test: no test sees what another stored."""
    shared_service.reset()
    return shared_service


CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode}")
    for method, path in operations()
    for mode in ("positive", "negative")
    if mode == "positive" or negatable(method, path)
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_generated_requests_never_5xx_and_rejections_store_nothing(
    service: Service, method: str, path: str, mode: str
) -> None:
    seeded = seed(service)
    op = DOC["paths"][path][method.lower()]

    @FUZZ
    @given(case=strategy(method, path, mode, seeded))
    def fuzz(case: Any) -> None:
        sent_method, sent_path, headers, body = prepare(case)
        sent_path, headers = authenticate(service, op, sent_method, sent_path, headers, body)
        send_and_check(service, sent_method, path, sent_path, headers, body)

    fuzz()


# -- hostile raw bodies: what a schema never describes ------------------------------------------

BODY_ROUTES = [
    pytest.param(method, path, id=f"{method} {path}")
    for method, path in operations()
    if DOC["paths"][path][method.lower()].get("requestBody")
]
SOURCES = ["typeform", "calendly", "sendgrid", "mailchimp", "hubspot", "segment"]
MEDIA_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", "application/yaml",
               "application/json; charset=UTF-8", "application/x-www-form-urlencoded; charset=utf-8",
               "multipart/form-data; boundary=x", "", "application/xml"]  # fmt: skip
NASTY = [
    b"", b" ", b"null", b"[]", b"{}", b'""', b"0", b"NaN", b'{"a": NaN}', b"Infinity", b"-1e99999",
    b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b"\x00" * 64, b"\xc3\x28", b'{"email": "a@b.io", "email": 1}',
    b'{"\\ud800": "\\udfff"}', b'{"email": "\\u0000@b.io"}', b"%zz=%", b"a=1&a=2&a[]=3", b"=" * 100,
    b"&" * 5000, b"payload=%7B%7D", b"payload=%5B" + b"%5B" * 5000, b"payload=" + b"9" * 5000,
    b"--- !!python/object/apply:os.system [ls]", b"a: &a [x]\nb: &b [*a, *a]\nc: [*b, *b, *b]",
    b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"a: " + b"[" * 5000 + b"]" * 5000,
    b"9" * 5000, b'{"email": ' + b"9" * 5000 + b"}", b'{"events": ' + b"9" * 5000 + b"}",
    b"x" * (1024 * 1024 + 1), b"email=" + b"a" * 40_000 + b"%40b.io",
]  # fmt: skip


def _route_media(path: str, method: str) -> list[str]:
    declared = list(DOC["paths"][path][method.lower()]["requestBody"]["content"])
    return [*declared, "application/xml"]


# Inputs no parser can build (a number past Python's 4,300-digit limit, nesting past the recursion
# limit): each parser must answer them with a 4xx. They once were 500s; the tests at the end keep them so.
ABSURD = ("9" * 5000, "[" * 3000 + "]" * 3000)
RULESET_TEXTS = {"json-huge-int": '{"name": ' + ABSURD[0] + "}", "yaml-huge-int": "name: " + ABSURD[0],
                 "yaml-deep": "name: " + ABSURD[1]}  # fmt: skip


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_nasty_bodies_never_5xx_and_store_nothing(service: Service, method: str, path: str) -> None:
    seeded = seed(service)
    op = DOC["paths"][path][method.lower()]
    concrete = path.replace("{form_id}", "demo").replace("{lead_id}", seeded["lead_id"])
    medias = _route_media(path, method)
    sources = SOURCES if "{source}" in path else [""]
    for i, body in enumerate(NASTY):
        for j, source in enumerate(sources):  # every body to every source, in turn in each media type
            for media in medias if len(sources) == 1 else [medias[(i + j) % len(medias)]]:
                sent, headers = authenticate(service, op, method, concrete.replace("{source}", source),
                                             {"Content-Type": media}, body)
                send_and_check(service, method, path, sent, headers, body)


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
    return b"a: " + b"[" * depth + b"]" * depth


hostile_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(_nested, st.integers(500, 120_000), st.sampled_from(["list", "dict", "yaml"])),
    st.integers(4301, 20_000).map(lambda n: b'{"email": ' + b"9" * n + b"}"),
    st.sampled_from(NASTY[:-2]),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: urlencode({"payload": json.dumps(v), "email": "a@b.io"}).encode()),
    json_values.map(lambda v: yaml.safe_dump(v).encode()),
)


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_hostile_bodies_never_5xx_and_store_nothing(service: Service, method: str, path: str) -> None:
    seeded = seed(service)
    op = DOC["paths"][path][method.lower()]
    concrete = path.replace("{form_id}", "demo").replace("{lead_id}", seeded["lead_id"])

    @settings(FUZZ, max_examples=25)
    @given(body=hostile_bodies, media=st.sampled_from(MEDIA_TYPES), source=st.sampled_from(SOURCES))
    def hostile(body: bytes, media: str, source: str) -> None:
        headers = {"Content-Type": media} if media else {}
        sent, headers = authenticate(service, op, method, concrete.replace("{source}", source), headers, body)
        send_and_check(service, method, path, sent, headers, body)

    hostile()


@pytest.mark.parametrize("text", list(RULESET_TEXTS.values()), ids=list(RULESET_TEXTS))
def test_ruleset_text_no_parser_can_build_is_a_4xx(service: Service, text: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/yaml"}
    send_and_check(service, "POST", "/v1/rulesets", "/v1/rulesets", headers, text.encode())


@pytest.mark.parametrize("text", ABSURD, ids=["huge-int", "deep"])
def test_slack_payload_no_parser_can_build_is_a_4xx(service: Service, text: str) -> None:
    body = urlencode({"payload": text}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_headers(body, time.time())}
    send_and_check(service, "POST", "/v1/slack/interactions", "/v1/slack/interactions", headers, body)


# -- path parameters spelling a fixed route -------------------------------------------------------

def _spelled_fixed_routes() -> list[Any]:
    """(method, template, concrete path) for each fixed path of the document that a template's path
    parameters can spell and that does not take the template's method: ``GET /v1/rulesets/shadow``
    is ``GET /v1/rulesets/{version}`` with the version ``shadow`` (generated values can be any word)."""
    out = []
    for method, template in operations():
        names = template.split("/")
        if not any(n.startswith("{") for n in names):
            continue
        for fixed, item in DOC["paths"].items():
            parts = fixed.split("/")
            if "{" in fixed or method.lower() in item or len(parts) != len(names):
                continue
            if all(n.startswith("{") or n == p for n, p in zip(names, parts, strict=True)):
                out.append(pytest.param(method, template, fixed, id=f"{method} {fixed}"))
    return out


@pytest.mark.parametrize(("method", "template", "fixed"), _spelled_fixed_routes())
def test_a_path_parameter_spelling_a_fixed_route_gets_the_templates_answer(
    service: Service, method: str, template: str, fixed: str
) -> None:
    # Once an undocumented 405 (the fixed route's method list) for GET /v1/rulesets/{version}.
    op = DOC["paths"][template][method.lower()]
    sent, headers = authenticate(service, op, method, fixed, {}, b"")
    response = send_and_check(service, method, template, sent, headers, b"")
    assert response.status_code == 422, response.body
    assert response.json_body["error"]["details"]["field"] in {n[1:-1] for n in template.split("/") if n[:1] == "{"}
