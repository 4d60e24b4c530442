"""Lazily created boto3 clients, one per service per process.

Created on first use, never at import: moto (and ``AWS_ENDPOINT_URL``) must be in place first,
and a Lambda that never touches SNS should not pay for an SNS client.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config

_clients: dict[str, Any] = {}
_lock = threading.Lock()

# Short timeouts and standard retries (which include throttling back-off): a webhook sender
# waits on us, so a hung dependency must fail fast and be retried by the sender or the sweeper.
_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"max_attempts": 4, "mode": "standard"},
)


def client(service: str) -> Any:
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            import boto3  # imported here so pure modules and the CLI's offline commands stay light

            _clients[service] = boto3.session.Session().client(service, config=_CONFIG)
        return _clients[service]


def reset_clients() -> None:
    """Forget cached clients (tests start a new moto mock per test)."""
    with _lock:
        _clients.clear()
