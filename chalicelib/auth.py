"""Bearer-token checks for admin and ingestion routes (constant time, tokens kept in SSM)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Protocol

from chalicelib.errors import Unauthorized


class SecretSource(Protocol):
    def get(self, name: str) -> str | None: ...


def bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_token(headers: Mapping[str, str], secrets: SecretSource, *names: str) -> str:
    """Accept a bearer token equal to one of the named secrets; return which one matched."""
    token = bearer(headers)
    if token is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'",
                           details={"field": "Authorization"})
    for name in names:
        expected = secrets.get(name)
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return name
    raise Unauthorized("the bearer token is not valid", details={"field": "Authorization"})
