"""The sans-I/O contract every webhook source implements.

A source never touches the network, AWS or the clock: the caller hands it the request exactly as
received (raw body bytes, lower-cased headers, the full URL the sender called), the secret and
"now". That keeps each adapter a pair of pure functions tested on recorded vendor payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from chalicelib.events import Event


@dataclass(frozen=True)
class WebhookRequest:
    """One inbound webhook call, as the sender made it.

    ``headers`` keys must be lower-cased by the caller (HTTP header names are case-insensitive and
    every vendor capitalises differently). ``url`` is the full URL including the query string,
    because HubSpot's v3 signature covers it.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    raw_body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class WebhookResult:
    """What a source made of a request: canonical events plus what to answer the vendor."""

    events: list[Event]
    status: int = 200
    body: Any = field(default=None)


@runtime_checkable
class Source(Protocol):
    """A vendor adapter. ``verify`` raises ``Unauthorized``; ``parse`` raises ``BadRequest`` or
    ``ValidationFailed`` naming the offending path. Neither does I/O."""

    name: str

    def verify(self, request: WebhookRequest, secret: str, now: float) -> None: ...

    def parse(self, request: WebhookRequest, settings: Mapping[str, Any]) -> WebhookResult: ...


def ok(events: list[Event], ignored: int = 0) -> WebhookResult:
    """The usual answer: 200 with how many vendor events were deliberately skipped."""
    return WebhookResult(events=events, status=200, body={"ok": True, "ignored": ignored})
