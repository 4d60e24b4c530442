import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.errors import BadRequest, BatonError, Unauthorized, ValidationFailed
from chalicelib.events import EMAIL_BOUNCE, EMAIL_CLICK, EMAIL_OPEN, SPAM_REPORT, UNSUBSCRIBE
from chalicelib.sources.sendgrid import SendGridSource

from .support import NOW, payload, payload_json, request

SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"
source = SendGridSource()

PRIVATE = ec.generate_private_key(ec.SECP256R1())
PUBLIC_DER_B64 = base64.b64encode(
    PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
PUBLIC_PEM = (
    PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)

BODY = payload("sendgrid", "event_webhook_docs_example.json")


def headers(
    body: bytes, timestamp: str = str(int(NOW)), key: ec.EllipticCurvePrivateKey = PRIVATE
) -> dict[str, str]:
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIG: base64.b64encode(signature).decode(), TS: timestamp}


# ------------------------------------------------------------------ verify: SendGrid's published vector


VECTOR = payload_json("sendgrid", "signed_vector_sendgrid_python.json")
VECTOR_NOW = float(VECTOR["timestamp"]) + 5


def vector_request(body: str = VECTOR["payload"], signature: str = VECTOR["signature"]) -> object:
    return request(body.encode(), {SIG: signature, TS: VECTOR["timestamp"]})


def test_published_vector_verifies():
    source.verify(vector_request(), VECTOR["public_key"], VECTOR_NOW)


def test_published_vector_needs_the_trailing_crlf():
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(vector_request(body=VECTOR["payload"].rstrip("\r\n")), VECTOR["public_key"], VECTOR_NOW)


def test_published_vector_rejects_other_key_and_bad_signature():
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(vector_request(), VECTOR["other_public_key"], VECTOR_NOW)
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(vector_request(signature=VECTOR["bad_signature"]), VECTOR["public_key"], VECTOR_NOW)


def test_published_vector_is_stale_today():
    with pytest.raises(Unauthorized, match="stale timestamp"):
        source.verify(vector_request(), VECTOR["public_key"], NOW)


def test_published_vector_payload_parses_as_a_bounce_drop():
    [event] = source.parse(vector_request(), {}).events
    assert event.type == EMAIL_BOUNCE
    assert event.event_id == "sendgrid:ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"
    assert event.email == "hello@world.com" and event.ts == 1600112492.0


# ------------------------------------------------------------------ verify: a key pair made here


def test_valid_signature_with_der_key_passes():
    source.verify(request(BODY, headers(BODY)), PUBLIC_DER_B64, NOW)


def test_valid_signature_with_pem_key_passes():
    source.verify(request(BODY, headers(BODY)), PUBLIC_PEM, NOW)


def test_tampered_body_fails():
    with pytest.raises(Unauthorized, match=f"bad signature in {SIG}"):
        source.verify(request(BODY + b" ", headers(BODY)), PUBLIC_DER_B64, NOW)


def test_signature_from_another_key_fails():
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(BODY, headers(BODY, key=other)), PUBLIC_DER_B64, NOW)


def test_signature_that_is_not_base64_der_fails():
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(BODY, {SIG: "not base64!", TS: str(int(NOW))}), PUBLIC_DER_B64, NOW)
    with pytest.raises(Unauthorized, match="bad signature"):
        source.verify(request(BODY, {SIG: "AAAA", TS: str(int(NOW))}), PUBLIC_DER_B64, NOW)


@pytest.mark.parametrize("missing", [SIG, TS])
def test_missing_headers_fail(missing):
    hdrs = headers(BODY)
    del hdrs[missing]
    with pytest.raises(Unauthorized, match=f"missing {missing} header"):
        source.verify(request(BODY, hdrs), PUBLIC_DER_B64, NOW)


def test_timestamp_older_than_ten_minutes_fails():
    old = str(int(NOW) - 601)
    with pytest.raises(Unauthorized, match=f"stale timestamp in {TS}"):
        source.verify(request(BODY, headers(BODY, timestamp=old)), PUBLIC_DER_B64, NOW)
    source.verify(request(BODY, headers(BODY, timestamp=str(int(NOW) - 599))), PUBLIC_DER_B64, NOW)


def test_malformed_timestamp_fails():
    with pytest.raises(Unauthorized, match="malformed timestamp"):
        source.verify(request(BODY, headers(BODY, timestamp="yesterday")), PUBLIC_DER_B64, NOW)


@pytest.mark.parametrize(
    "key", ["not a key", base64.b64encode(b"garbage").decode(), "-----BEGIN PUBLIC KEY-----\nxx"]
)
def test_misconfigured_key_is_a_server_error_not_a_401(key):
    with pytest.raises(BatonError) as err:
        source.verify(request(BODY, headers(BODY)), key, NOW)
    assert not isinstance(err.value, Unauthorized)
    assert err.value.status == 500


def test_key_of_the_wrong_curve_is_refused():
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = p384.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(BatonError, match="P-256"):
        source.verify(request(BODY, headers(BODY)), base64.b64encode(der).decode(), NOW)


# ------------------------------------------------------------------ parse


def test_docs_example_maps_engagement_and_ignores_delivery():
    result = source.parse(request(BODY), {})
    kinds = [(e.properties["sendgrid_event"], e.type) for e in result.events]
    assert kinds == [
        ("open", EMAIL_OPEN),
        ("click", EMAIL_CLICK),
        ("bounce", EMAIL_BOUNCE),
        ("dropped", EMAIL_BOUNCE),
        ("spamreport", SPAM_REPORT),
        ("unsubscribe", UNSUBSCRIBE),
        ("group_unsubscribe", UNSUBSCRIBE),
    ]
    # processed, deferred, delivered, group_resubscribe
    assert result.status == 200 and result.body == {"ok": True, "ignored": 4}
    click = result.events[1]
    assert click.event_id == "sendgrid:kCAi1KttyQdEKHhdC-nuEA=="
    assert click.email == "example@test.com" and click.ts == 1513299569.0
    assert click.properties["url"] == "http://www.sendgrid.com/"
    assert result.events[6].properties["asm_group_id"] == 10


def test_blocked_bounce_is_temporary_and_ignored():
    result = source.parse(request(payload("sendgrid", "blocked_docs_example.json")), {})
    assert result.events == [] and result.body["ignored"] == 1


def test_drops_for_other_reasons_are_ignored():
    body = [
        {
            "email": "a@b.co",
            "timestamp": 1513299569,
            "event": "dropped",
            "reason": "Unsubscribed Address",
            "sg_event_id": "x",
        }
    ]
    assert source.parse(request(body), {}).events == []


def test_email_is_normalized():
    body = [{"email": " Mixed@Case.COM ", "timestamp": 1513299569, "event": "open", "sg_event_id": "x"}]
    assert source.parse(request(body), {}).events[0].email == "mixed@case.com"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"event": "open"}, "body"),
        (["open"], "[0]"),
        ([{"email": "a@b.co", "timestamp": 1, "sg_event_id": "x"}], "[0].event"),
        ([{"email": "a@b.co", "timestamp": 1, "event": "open"}], "[0].sg_event_id"),
        (
            [{"email": "a@b.co", "timestamp": "1513299569", "event": "open", "sg_event_id": "x"}],
            "[0].timestamp",
        ),
        ([{"email": "a@b.co", "timestamp": 1e30, "event": "open", "sg_event_id": "x"}], "[0].timestamp"),
        ([{"email": "nobody", "timestamp": 1, "event": "click", "sg_event_id": "x"}], "[0].email"),
        ([{"timestamp": 1, "event": "click", "sg_event_id": "x"}], "[0].email"),
    ],
)
def test_wrong_shapes_name_the_path(body, field):
    with pytest.raises(ValidationFailed) as err:
        source.parse(request(json.dumps(body)), {})
    assert err.value.field == field


@pytest.mark.parametrize("raw", [b"", b"[", b"[NaN]", b"\xff", b"[" * 100000])
def test_not_json_is_bad_request(raw):
    with pytest.raises(BadRequest):
        source.parse(request(raw), {})
