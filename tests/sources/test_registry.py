import base64
import json
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.errors import BatonError, NotFound, Unauthorized
from chalicelib.sources import SOURCES, Source, WebhookRequest, WebhookResult, get_source

from .support import NOW, payload, request

NAMES = ["calendly", "hubspot", "mailchimp", "segment", "sendgrid", "typeform"]
SETTINGS = {
    "field_map": {"company_size": "company_size", "MMERGE6": "lead_source"},
    "demo_forms": ["lT4Z3j"],
    "offers": {"lT4Z3j": "ebook"},
    "track_map": {"Signed Up": "trial_signup"},
}
fuzz = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_registry_holds_the_six_sources():
    assert sorted(SOURCES) == NAMES
    for name, source in SOURCES.items():
        assert source.name == name
        assert isinstance(source, Source)
        assert get_source(name) is source


def test_unknown_source_is_not_found_and_lists_the_known_ones():
    with pytest.raises(NotFound) as err:
        get_source("marketo")
    assert err.value.status == 404
    assert "marketo" in err.value.message
    for name in NAMES:
        assert name in err.value.message
    assert err.value.details == {"source": "marketo", "known": NAMES}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)


def _check_parse(name: str, req: WebhookRequest) -> None:
    try:
        result = SOURCES[name].parse(req, SETTINGS)
    except BatonError as exc:
        assert 400 <= exc.status < 500, exc
    else:
        assert isinstance(result, WebhookResult) and result.status == 200
        json.dumps(result.body)
        for event in result.events:
            assert event.event_id.startswith(f"{name}:") and event.source == name
            assert event.email is not None or event.anonymous_id is not None
            json.dumps(event.to_dict(), default=str)


@pytest.mark.parametrize("name", NAMES)
@fuzz
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes_only_ever_raise_baton_errors(name, body):
    _check_parse(name, request(body))


@pytest.mark.parametrize("name", NAMES)
@fuzz
@given(body=json_values)
def test_arbitrary_json_only_ever_raises_baton_errors(name, body):
    _check_parse(name, request(json.dumps(body)))


# Mutations of the recorded payloads reach the deep paths that random JSON never gets to.
RECORDED = {
    "typeform": ["form_response_docs_example.json", "form_response_lead_form.json"],
    "calendly": ["invitee_created_docs_sample.json", "invitee_canceled_demo.json"],
    "sendgrid": ["event_webhook_docs_example.json"],
    "hubspot": ["webhooks_docs_example.json", "contact_changes.json"],
    "segment": ["identify_spec_example.json", "page_spec_example.json", "track_demo_requested.json"],
}


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*prefix, i))


def _mutate(doc, path, replacement, delete):
    if not path:
        return replacement
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return doc


@st.composite
def mutated(draw, name):
    doc = json.loads(payload(name, draw(st.sampled_from(RECORDED[name]))))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        doc = _mutate(doc, path, draw(json_values), delete=bool(path) and draw(st.booleans()))
    return doc


@pytest.mark.parametrize("name", sorted(RECORDED))
@fuzz
@given(data=st.data())
def test_mutated_recorded_payloads_only_ever_raise_baton_errors(name, data):
    _check_parse(name, request(json.dumps(data.draw(mutated(name)))))


@fuzz
@given(
    form=st.dictionaries(
        st.sampled_from(
            [
                "type",
                "fired_at",
                "data[email]",
                "data[new_email]",
                "data[old_email]",
                "data[merges][FNAME]",
                "data[merges][COMPANY]",
                "data",
                "data[merges]",
                "data[reason]",
                "data[merges][A][B]",
            ]
        )
        | st.text(max_size=15),
        st.sampled_from(
            [
                "subscribe",
                "profile",
                "upemail",
                "unsubscribe",
                "cleaned",
                "abuse",
                "2009-03-26 21:35:57",
                "a@b.co",
            ]
        )
        | st.text(max_size=15),
        max_size=8,
    )
)
def test_arbitrary_forms_only_ever_raise_baton_errors(form):
    _check_parse("mailchimp", request(urlencode(form)))


_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()
SECRETS = {
    "sendgrid": base64.b64encode(
        _KEY.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode(),
}
SIGNATURE_HEADERS = [
    "typeform-signature",
    "calendly-webhook-signature",
    "x-twilio-email-event-webhook-signature",
    "x-twilio-email-event-webhook-timestamp",
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "x-signature",
]


@pytest.mark.parametrize("name", NAMES)
@fuzz
@given(
    headers=st.dictionaries(st.sampled_from(SIGNATURE_HEADERS), st.text(max_size=120), max_size=7),
    key=st.text(max_size=40),
    body=st.binary(max_size=256),
)
def test_arbitrary_signature_headers_only_ever_raise_unauthorized(name, headers, key, body):
    req = WebhookRequest(
        method="POST",
        url="https://api.baton.example/v1/webhooks/x",
        headers=headers,
        query={"key": key},
        raw_body=body,
    )
    with pytest.raises(Unauthorized):
        SOURCES[name].verify(req, SECRETS.get(name, "the-real-secret"), NOW)
