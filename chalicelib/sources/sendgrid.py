"""SendGrid (Twilio) Event Webhook.

Signed Event Webhook (SendGrid "Getting Started with the Event Webhook Security Features"):
``X-Twilio-Email-Event-Webhook-Signature`` is a base64 DER ECDSA signature (P-256, SHA-256) over
the ``X-Twilio-Email-Event-Webhook-Timestamp`` header value followed by the raw body bytes, exactly
as received (SendGrid's payload ends with CRLF, and the CRLF is signed). The secret is the
verification public key SendGrid shows: base64 of a DER SubjectPublicKeyInfo; PEM is accepted too.

Replay window: SendGrid documents NO window for the timestamp (its docs and SDK helpers only check
the signature). We reject timestamps more than 10 minutes from ``now``, which is ample for a
sender that posts events within seconds of batching them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.errors import Misconfigured, Unauthorized
from chalicelib.events import EMAIL_BOUNCE, EMAIL_CLICK, EMAIL_OPEN, SPAM_REPORT, UNSUBSCRIBE
from chalicelib.json_body import load_json
from chalicelib.signing import check_window, parse_unix_timestamp, require_header

from .base import WebhookRequest, WebhookResult, ok
from .payload import (
    as_list,
    as_object,
    at,
    epoch_number,
    make_event,
    normalize_email,
    str_field,
)

if TYPE_CHECKING:  # cryptography is heavy: imported only inside verify()
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TOLERANCE_SECONDS = 600.0

# processed / delivered / deferred / group_resubscribe say nothing about the lead's intent.
_TYPES = {
    "open": EMAIL_OPEN,
    "click": EMAIL_CLICK,
    "unsubscribe": UNSUBSCRIBE,
    "group_unsubscribe": UNSUBSCRIBE,
    "spamreport": SPAM_REPORT,
    "bounce": EMAIL_BOUNCE,
}
# Drop reasons that mean the address bounced before (SendGrid's documented drop reasons).
_BOUNCE_DROP_REASONS = ("bounced address", "invalid")
_PROPERTY_KEYS = (
    "url",
    "reason",
    "status",
    "type",
    "bounce_classification",
    "asm_group_id",
    "sg_message_id",
    "category",
    "marketing_campaign_id",
    "marketing_campaign_name",
    "sg_machine_open",
    "useragent",
)


@lru_cache(maxsize=8)
def _public_key(secret: str) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

    text = secret.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError) as exc:
        # The configured key is wrong: our misconfiguration, so not a 401 that makes SendGrid retry.
        raise Misconfigured(f"sendgrid verification key is not a valid public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise Misconfigured("sendgrid verification key must be an ECDSA P-256 public key")
    return key


def verify_ecdsa(public_key: str, signature_b64: str, signed: bytes) -> bool:
    """True when ``signature_b64`` is a valid ECDSA P-256/SHA-256 signature of ``signed``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = _public_key(public_key)
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def _is_bounce_drop(item: Mapping[str, Any]) -> bool:
    reason = item.get("reason")
    return isinstance(reason, str) and reason.strip().lower().startswith(_BOUNCE_DROP_REASONS)


class SendGridSource:
    name = "sendgrid"

    def verify(self, request: WebhookRequest, secret: str, now: float) -> None:
        signature = require_header(request.headers, SIGNATURE_HEADER)
        require_header(request.headers, TIMESTAMP_HEADER)
        # The header value is signed verbatim, so use it unstripped (require_header strips).
        timestamp = request.header(TIMESTAMP_HEADER) or ""
        check_window(
            parse_unix_timestamp(timestamp, TIMESTAMP_HEADER), now, TOLERANCE_SECONDS, TIMESTAMP_HEADER
        )
        if not verify_ecdsa(secret, signature, timestamp.encode("utf-8") + request.raw_body):
            raise Unauthorized(
                f"bad signature in {SIGNATURE_HEADER} header", details={"header": SIGNATURE_HEADER}
            )

    def parse(self, request: WebhookRequest, settings: Mapping[str, Any]) -> WebhookResult:
        events = []
        ignored = 0
        for i, item in enumerate(as_list(load_json(request.raw_body), "")):
            path = at("", i)
            item = as_object(item, path)
            kind = str_field(item, "event", path)
            type_ = _TYPES.get(kind)
            if kind == "dropped" and _is_bounce_drop(item):
                type_ = EMAIL_BOUNCE
            if kind == "bounce" and item.get("type") == "blocked":
                type_ = None  # a temporary rejection, not a bad address
            if type_ is None:
                ignored += 1
                continue
            properties: dict[str, Any] = {"sendgrid_event": kind}
            for key in _PROPERTY_KEYS:
                if key in item:
                    properties[key] = item[key]
            events.append(
                make_event(
                    self.name,
                    str_field(item, "sg_event_id", path),
                    type_,
                    epoch_number(item.get("timestamp"), at(path, "timestamp")),
                    email=normalize_email(item.get("email"), at(path, "email")),
                    properties=properties,
                )
            )
        return ok(events, ignored=ignored)
