"""The redirect allow-list compares parsed URLs, never string prefixes (issue: open redirects)."""

from __future__ import annotations

import pytest

from chalicelib.errors import ValidationFailed
from chalicelib.forms import check_redirect

ALLOWED = ("https://www.example.com", "http://127.0.0.1:8080/", "https://go.acme.io/landing")


@pytest.mark.parametrize("url", [
    "https://www.example.com/thanks", "https://www.example.com", "https://www.example.com:443/a?b=c",
    "http://127.0.0.1:8080/thanks.html", "https://go.acme.io/landing", "https://go.acme.io/landing/ok",
    "https://WWW.EXAMPLE.COM/x",
])
def test_allowed_pages(url: str) -> None:
    assert check_redirect(url, ALLOWED) == url


@pytest.mark.parametrize("url", [
    "https://www.example.com.evil.net/phish",  # a longer host that starts with an allowed one
    "https://www.example.com@evil.net/",  # user info: the host is evil.net
    "https://evil.net/https://www.example.com/",
    "http://www.example.com/",  # another scheme
    "https://www.example.com:8443/",  # another port
    "http://127.0.0.1:8081/", "https://go.acme.io/landingpage", "https://go.acme.io/",
    "javascript:alert(1)", "//www.example.com/", "/thanks",
])
def test_refused_pages(url: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_redirect(url, ALLOWED)
    assert caught.value.field == "_redirect"


@pytest.mark.parametrize("url", ["https://www.example.com/\r\nSet-Cookie: a=b", "https://www.example.com/a b",
                                 "https://www.example.com/\x00", "https://www.example.com/\t"])
def test_control_characters_are_refused_before_anything_is_stored(url: str) -> None:
    with pytest.raises(ValidationFailed, match="control characters"):
        check_redirect(url, ALLOWED)
