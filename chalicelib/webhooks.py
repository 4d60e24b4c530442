"""Vendor webhooks: look up the source's secret and settings, verify, parse, score."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from chalicelib.attributes import MAX_CUSTOM_NAME, custom_key
from chalicelib.errors import Misconfigured, Unauthorized, ValidationFailed
from chalicelib.leads import LeadService
from chalicelib.sources import WebhookRequest, WebhookResult, get_source


class SecretSource(Protocol):
    def get(self, name: str) -> str | None: ...


def webhook_request(
    method: str, headers: Mapping[str, str], query: Mapping[str, str], context_path: str | None, raw_body: bytes,
    source: str,
) -> WebhookRequest:
    """The request as the sender made it. HubSpot signs the URL it called, so rebuild that URL:
    behind API Gateway the path carries the stage prefix; ``BATON_PUBLIC_URL`` overrides the
    scheme and host when a proxy or custom domain rewrites them."""
    base = os.environ.get("BATON_PUBLIC_URL") or (
        f"{headers.get('x-forwarded-proto', 'https')}://{headers.get('host', 'localhost')}"
    )
    path = context_path or f"/v1/webhooks/{source}"
    url = base.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
    return WebhookRequest(method, url, dict(headers), dict(query), raw_body)


def source_settings(secrets: SecretSource, name: str) -> dict[str, Any]:
    """Per-source settings (field maps, demo forms...): JSON in ``sources/<name>/settings``, written
    by hand into SSM. A mistake there is ours, not the sender's (``Misconfigured``, naming it): a
    field map naming a trait no lead could store would otherwise refuse every delivery with a 422
    about the vendor's field, which the vendor drops."""
    parameter = f"sources/{name}/settings"
    raw = secrets.get(parameter)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Misconfigured(f"{parameter} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                            details={"setting": parameter}) from None
    if not isinstance(value, dict):
        raise Misconfigured(f"{parameter} must be a JSON object", details={"setting": parameter})
    field_map = value.get("field_map") or {}
    if not isinstance(field_map, dict):
        raise Misconfigured(f"{parameter}: field_map must be an object (a vendor's field -> a trait)",
                            details={"setting": parameter})
    for field, target in field_map.items():
        where = f"{parameter}: field_map[{json.dumps(field)}]"
        if not isinstance(target, str) or not target.strip():
            raise Misconfigured(f"{where} must name a trait", details={"setting": parameter})
        try:
            stored = custom_key(target, where)
        except ValidationFailed as exc:
            raise Misconfigured(exc.message, details={"setting": parameter}) from None
        if len(stored) > MAX_CUSTOM_NAME:
            raise Misconfigured(f"{where}: a custom attribute's name is at most {MAX_CUSTOM_NAME} characters",
                                details={"setting": parameter})
    return value


def receive(name: str, request: WebhookRequest, secrets: SecretSource, leads: LeadService, now: float
            ) -> WebhookResult:
    source = get_source(name)  # unknown source: 404 before anything else
    secret = secrets.get(f"sources/{name}/secret")
    if not secret:
        # Refuse rather than accept unsigned data: a missing secret is a deployment mistake.
        raise Unauthorized(f"webhook source {name} has no secret configured (sources/{name}/secret)")
    source.verify(request, secret, now)
    result = source.parse(request, source_settings(secrets, name))
    if result.events:
        summary = leads.ingest(result.events)
        if isinstance(result.body, dict):
            result = WebhookResult(result.events, result.status, {**result.body, "accepted": summary["accepted"],
                                                                  "duplicates": summary["duplicates"]})
    return result
