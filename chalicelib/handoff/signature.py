"""Verify that a request really comes from Slack (signing secret, v0 scheme).

Slack sends ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature: v0=<hex>`` where the hex is
HMAC-SHA256(signing_secret, ``v0:{timestamp}:{raw body}``). The body must be the exact bytes
received. Requests older or newer than five minutes are refused, so a captured request cannot
be replayed later.

Not ``slack_sdk.signature.SignatureVerifier``: it only answers True/False (the caller could not
say which part failed), crashes on a non-numeric timestamp or a non-UTF-8 body, and importing it
loads the whole ``slack_sdk`` package into the API Lambda.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

from chalicelib.errors import Unauthorized

TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
MAX_SKEW_SECONDS = 5 * 60
VERSION = "v0"


def compute_signature(signing_secret: str, timestamp: str, raw_body: bytes) -> str:
    """``v0=<hex HMAC-SHA256>`` of ``v0:{timestamp}:{raw_body}``."""
    base = f"{VERSION}:{timestamp}:".encode() + raw_body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
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
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not timestamp:
        raise Unauthorized(f"missing {TIMESTAMP_HEADER} header", details={"header": TIMESTAMP_HEADER})
    if not signature:
        raise Unauthorized(f"missing {SIGNATURE_HEADER} header", details={"header": SIGNATURE_HEADER})
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit():
        raise Unauthorized(f"malformed {TIMESTAMP_HEADER} header", details={"header": TIMESTAMP_HEADER})
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise Unauthorized(
            "stale request timestamp: outside the 5 minute window",
            details={"header": TIMESTAMP_HEADER, "max_skew_seconds": MAX_SKEW_SECONDS},
        )
    if not signature.startswith(f"{VERSION}="):
        raise Unauthorized("unsupported signature version", details={"header": SIGNATURE_HEADER})
    expected = compute_signature(signing_secret, timestamp, raw_body)
    # Both sides as bytes: compare_digest refuses non-ASCII str, and a forged header may hold any.
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise Unauthorized("bad signature", details={"header": SIGNATURE_HEADER})
