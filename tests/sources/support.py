"""Helpers shared by the source tests: recorded payloads and request builders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.sources.base import WebhookRequest

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"
NOW = 1_715_680_900.0  # 2024-05-14T10:01:40Z: "now" for signature windows


def payload(vendor: str, name: str) -> bytes:
    return (PAYLOADS / vendor / name).read_bytes()


def payload_json(vendor: str, name: str) -> Any:
    return json.loads(payload(vendor, name))


def request(
    body: bytes | str | Any,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "POST",
    url: str = "https://api.baton.example/v1/webhooks/test",
    query: Mapping[str, str] | None = None,
) -> WebhookRequest:
    if isinstance(body, str):
        raw = body.encode("utf-8")
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body).encode("utf-8")
    return WebhookRequest(
        method=method,
        url=url,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        query=dict(query or {}),
        raw_body=raw,
    )
