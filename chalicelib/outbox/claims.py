"""Delivery claims: a consumer announces each outbox message once, however often it arrives.

SNS delivers at least once, and a failed Lambda is retried. Before posting, the consumer claims
the message's key; a key already claimed is a redelivery and is skipped. A failed post releases
its claim, so the retry (or a dead-letter redrive) posts it after all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

CLAIM_TTL = 14 * 86400  # longer than SNS retries and the dead-letter queue's retention


class DeliveryClaims(Protocol):
    def claim(self, key: str, ttl_seconds: int) -> bool:
        """Record ``key`` once; False when it was already claimed (a redelivery)."""
        ...

    def release(self, key: str) -> None: ...


def deliver_once(claims: DeliveryClaims, key: str, send: Callable[[], None], ttl_seconds: int = CLAIM_TTL) -> bool:
    """Call ``send`` unless ``key`` was delivered before; False when it was (nothing sent).

    When ``send`` raises, the claim is released and the error propagates.
    """
    if not claims.claim(key, ttl_seconds):
        return False
    try:
        send()
    except Exception:
        claims.release(key)
        raise
    return True
