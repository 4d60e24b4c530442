"""Signed lead-page links: what is signed opens, until it expires; anything changed does not."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import Unavailable
from chalicelib.leadpage.links import LeadLinks, LinkRefused, signature, signed_query, verify

KEY = "k" * 32
NOW = 1_700_000_000.0
lead_ids = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=60)
futures = st.integers(min_value=int(NOW) + 1, max_value=10**11)


def _params(query: str) -> tuple[str, str]:
    parsed = parse_qs(query)
    return parsed["expires"][0], parsed["sig"][0]


@given(lead_ids, futures)
def test_a_signed_link_opens_its_lead_until_it_expires(lead_id: str, expires: int) -> None:
    got_expires, sig = _params(signed_query(KEY, lead_id, expires))
    verify(KEY, lead_id, got_expires, sig, NOW)  # opens
    with pytest.raises(LinkRefused, match="expired"):
        verify(KEY, lead_id, got_expires, sig, expires)


@given(lead_ids, lead_ids, futures, st.integers(min_value=1, max_value=10**6))
def test_a_link_changed_anywhere_is_refused_as_not_valid(lead_id: str, other: str, expires: int, later: int) -> None:
    expires_raw, sig = _params(signed_query(KEY, lead_id, expires))
    if other != lead_id:  # another lead's page with this link
        with pytest.raises(LinkRefused, match="not valid"):
            verify(KEY, other, expires_raw, sig, NOW)
    with pytest.raises(LinkRefused, match="not valid"):  # a later expiry, even a far one: forged, not expired
        verify(KEY, lead_id, str(expires + later), sig, NOW)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    with pytest.raises(LinkRefused, match="not valid"):
        verify(KEY, lead_id, expires_raw, flipped, NOW)
    with pytest.raises(LinkRefused, match="not valid"):  # another key's link
        verify("another key", lead_id, expires_raw, sig, NOW)


@pytest.mark.parametrize(("expires", "sig", "reason"), [
    (None, "a" * 64, "incomplete"), ("1700000100", None, "incomplete"), ("soon", "a" * 64, "not valid"),
    ("1700000100", "A" * 64, "not valid"), ("1700000100", "a" * 63, "not valid"), ("-5", "a" * 64, "not valid"),
    ("1" * 13, "a" * 64, "not valid"),
])
def test_a_malformed_link_is_refused_without_echoing_it(expires: str | None, sig: str | None, reason: str) -> None:
    with pytest.raises(LinkRefused) as caught:
        verify(KEY, "L1", expires, sig, NOW)
    assert reason in caught.value.reason
    assert (sig or "\0") not in caught.value.reason and (expires or "\0") not in caught.value.reason


def test_no_key_no_pages() -> None:
    expires, sig = _params(signed_query(KEY, "L1", int(NOW) + 60))
    for missing in (None, ""):
        with pytest.raises(LinkRefused, match="not set up"):
            verify(missing, "L1", expires, sig, NOW)


def test_the_signature_is_hmac_sha256_of_the_id_and_expiry() -> None:
    import hashlib
    import hmac

    assert signature(KEY, "L1", 1700000100) == hmac.new(KEY.encode(), b"L1\x001700000100", hashlib.sha256).hexdigest()


def test_alerts_link_to_the_public_url_for_the_ttl() -> None:
    links = LeadLinks("https://api.example.com/prod/", lambda: KEY, 3600, lambda: NOW)
    url = links.url("Labc")
    assert url is not None
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "api.example.com", "/prod/v1/leads/Labc/page")
    expires, sig = _params(parts.query)
    assert int(expires) == NOW + 3600
    verify(KEY, "Labc", expires, sig, NOW + 3599)


def test_without_a_public_url_or_a_key_an_alert_has_no_link() -> None:
    def down() -> str:
        raise Unavailable("the secret store is unavailable")

    assert LeadLinks("", lambda: KEY, 3600, lambda: NOW).url("L1") is None
    assert LeadLinks("https://x", lambda: None, 3600, lambda: NOW).url("L1") is None
    assert LeadLinks("https://x", down, 3600, lambda: NOW).url("L1") is None
