"""Verify that a request really comes from Slack (signing secret, v0 scheme).

Slack sends ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature: v0=<hex>`` where the hex is
HMAC-SHA256(signing_secret, ``v0:{timestamp}:{raw body}``). The body must be the exact bytes
received. Requests older or newer than five minutes are refused, so a captured request cannot
be replayed later. The checks are the ones every signed sender gets (``chalicelib/signing.py``).

Not ``slack_sdk.signature.SignatureVerifier``: it only answers True/False (the caller could not
say which part failed), crashes on a non-numeric timestamp or a non-UTF-8 body, and importing it
loads the whole ``slack_sdk`` package into the API Lambda.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.errors import Unauthorized
from chalicelib.signing import (
    check_signature,
    check_window,
    hmac_digest,
    parse_unix_timestamp,
    require_header,
)

TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
MAX_SKEW_SECONDS = 5 * 60
VERSION = "v0"


def compute_signature(signing_secret: str, timestamp: str, raw_body: bytes) -> str:
    """``v0=<hex HMAC-SHA256>`` of ``v0:{timestamp}:{raw_body}``."""
    digest = hmac_digest("sha256", signing_secret, f"{VERSION}:{timestamp}:".encode() + raw_body).hex()
    return f"{VERSION}={digest}"


def verify_slack_request(
    signing_secret: str, headers: Mapping[str, str], raw_body: bytes, now: float
) -> None:
    """Return quietly when the request is authentic, else raise :class:`Unauthorized`.

    ``headers`` must have lower-case keys (as Chalice gives them); ``now`` is the current Unix
    time, injected so tests and the clock's owner decide what "now" is.
    """
    if not signing_secret:
        # A missing secret must never make every signature "valid".
        raise Unauthorized("Slack signing secret is not configured")
    timestamp = require_header(headers, TIMESTAMP_HEADER)
    signature = require_header(headers, SIGNATURE_HEADER)
    check_window(parse_unix_timestamp(timestamp, TIMESTAMP_HEADER), now, MAX_SKEW_SECONDS, TIMESTAMP_HEADER)
    if not signature.startswith(f"{VERSION}="):
        raise Unauthorized(f"unsupported signature version in {SIGNATURE_HEADER} header",
                           details={"header": SIGNATURE_HEADER})
    check_signature(compute_signature(signing_secret, timestamp, raw_body), signature, SIGNATURE_HEADER)
