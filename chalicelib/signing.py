"""Request signatures, written once for every sender: vendor webhooks (``sources/``) and Slack
(``handoff/signature.py``). Required headers, HMACs compared in constant time on the raw body,
and replay windows. Every failure is an ``Unauthorized`` whose message names the header that failed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from chalicelib.errors import Unauthorized

_DIGITS = re.compile(r"^[0-9]{1,16}$")


def require_header(headers: Mapping[str, str], name: str) -> str:
    """The header's value, stripped, or ``Unauthorized("missing <name> header")``.

    ``headers`` has lower-cased keys (as Chalice gives them); ``name`` keeps the sender's
    capitalisation for the message.
    """
    value = headers.get(name.lower())
    if value is None or not value.strip():
        raise Unauthorized(f"missing {name} header", details={"header": name})
    return value.strip()


def hmac_digest(algorithm: str, key: str, message: bytes) -> bytes:
    return hmac.new(key.encode("utf-8"), message, getattr(hashlib, algorithm)).digest()


def _as_bytes(value: str | bytes) -> bytes:
    # Header values may hold any character; compare_digest on str demands ASCII, so compare bytes.
    return value if isinstance(value, bytes) else value.encode("utf-8", errors="surrogatepass")


def constant_time_equal(expected: str | bytes, given: str | bytes) -> bool:
    return hmac.compare_digest(_as_bytes(expected), _as_bytes(given))


def check_signature(expected: str | bytes, given: str | bytes, header: str) -> None:
    if not constant_time_equal(expected, given):
        raise Unauthorized(f"bad signature in {header} header", details={"header": header})


def parse_unix_timestamp(value: str, header: str, *, millis: bool = False) -> float:
    """A signature timestamp header (integer seconds, or milliseconds) as epoch seconds."""
    text = value.strip()
    if not _DIGITS.match(text):
        raise Unauthorized(f"malformed timestamp in {header} header", details={"header": header})
    number = int(text)
    return number / 1000.0 if millis else float(number)


def check_window(timestamp: float, now: float, tolerance: float, header: str) -> None:
    """Reject replays: the signed timestamp must be within ``tolerance`` seconds of ``now``.

    Timestamps too far in the future are refused too: they would stay "fresh" for longer than the
    window promises.
    """
    age = now - timestamp
    if age > tolerance:
        raise Unauthorized(
            f"stale timestamp in {header} header ({int(age)} s old, limit {int(tolerance)} s)",
            details={"header": header, "age_seconds": int(age), "tolerance_seconds": int(tolerance)},
        )
    if -age > tolerance:
        raise Unauthorized(
            f"timestamp in {header} header is {int(-age)} s in the future (limit {int(tolerance)} s)",
            details={"header": header, "age_seconds": int(age), "tolerance_seconds": int(tolerance)},
        )
