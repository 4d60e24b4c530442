"""Signed, expiring links to a lead page: ``?expires=<epoch seconds>&sig=<hex HMAC-SHA256>``.

The HMAC covers the lead id and the expiry, under a key kept in SSM (``lead-page/signing-key``);
anyone holding the link may open that one lead's page until it expires, and nothing else. Checks
compare in constant time, and every refusal names its reason without echoing what was sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from chalicelib.errors import BatonError
from chalicelib.signing import constant_time_equal, hmac_digest

KEY_NAME = "lead-page/signing-key"
_EXPIRES = re.compile(r"^[0-9]{1,12}$")
_SIG = re.compile(r"^[0-9a-f]{64}$")


class LinkRefused(Exception):
    """Why a link does not open its page (a 403): ``reason`` is shown to whoever holds it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(key: str, lead_id: str, expires: int) -> str:
    # The NUL separates the two: no lead id contains one, so no pair of values signs like another.
    return hmac_digest("sha256", key, f"{lead_id}\0{expires}".encode()).hex()


def page_path(lead_id: str) -> str:
    return f"/v1/leads/{quote(lead_id, safe='')}/page"


def signed_query(key: str, lead_id: str, expires: int) -> str:
    return urlencode({"expires": expires, "sig": signature(key, lead_id, expires)})


def verify(key: str | None, lead_id: str, expires: str | None, sig: str | None, now: float) -> None:
    """Raise ``LinkRefused`` unless ``sig`` signs ``lead_id`` and ``expires`` and that is not past."""
    if not key:
        raise LinkRefused("lead pages are not set up on this deployment (no signing key)")
    if expires is None or sig is None:
        raise LinkRefused("this link is incomplete: open it from the Slack alert again")
    if not _EXPIRES.match(expires) or not _SIG.match(sig):
        raise LinkRefused("this link is not valid: it was changed or cut short")
    if not constant_time_equal(signature(key, lead_id, int(expires)), sig):
        raise LinkRefused("this link is not valid: it was changed or cut short")
    if int(expires) <= now:  # checked after the signature: a forged expiry is called forged
        raise LinkRefused("this link has expired: open the lead from a newer alert, or ask sales ops")


@dataclass(frozen=True)
class LeadLinks:
    """Makes the links the Slack alerts carry; ``url`` is None when the deployment has no public URL
    or no signing key (the alert then has no link)."""

    public_url: str
    key: Callable[[], str | None]  # read when a link is made (SSM, cached)
    ttl_seconds: float
    clock: Callable[[], float]

    def url(self, lead_id: str) -> str | None:
        try:
            key = self.key()
        except BatonError:  # the secret store is down: the alert goes out without its link, not later
            return None
        if not self.public_url or not key:
            return None
        expires = int(self.clock() + self.ttl_seconds)
        return f"{self.public_url.rstrip('/')}{page_path(lead_id)}?{signed_query(key, lead_id, expires)}"
