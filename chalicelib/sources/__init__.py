"""Webhook sources: sans-I/O adapters that verify a vendor's signature and turn its payload into
canonical events. ``get_source(name)`` is the one entry point app.py needs."""

from __future__ import annotations

from chalicelib.errors import NotFound

from .base import Source, WebhookRequest, WebhookResult
from .calendly import CalendlySource
from .hubspot import HubSpotSource
from .mailchimp import MailchimpSource
from .segment import SegmentSource
from .sendgrid import SendGridSource
from .typeform import TypeformSource

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        TypeformSource(),
        CalendlySource(),
        SendGridSource(),
        MailchimpSource(),
        HubSpotSource(),
        SegmentSource(),
    )
}


def get_source(name: str) -> Source:
    """The adapter registered under ``name``; NotFound (listing the known names) otherwise."""
    source = SOURCES.get(name)
    if source is None:
        known = sorted(SOURCES)
        raise NotFound(
            f"unknown webhook source {name!r}; known sources: {', '.join(known)}",
            details={"source": name, "known": known},
        )
    return source


__all__ = ["SOURCES", "Source", "WebhookRequest", "WebhookResult", "get_source"]
