"""Claims: a consumer acts on each message once, however often it arrives.

Before posting an alert (or recording a Slack click) the consumer claims a key; a key already
claimed is a redelivery, or an attempt in flight elsewhere, and is skipped. A failed post releases
its claim so the next attempt can post. A post that succeeded marks its claim ``posted`` before
recording the delivery: an attempt that finds a posted claim on a pending record completes it.

A claim taken with a lease can be taken over once the lease is over and nothing was posted: the
process that held it died mid-attempt (a Lambda timeout). Whether Slack had already shown that
post is unknowable (Slack has no idempotency key), and a lost SQL alert costs more than a twice
shown one, so the alert is tried again. The window is the time between Slack's answer and the
write that records it.
"""

from __future__ import annotations

from typing import Protocol

CLAIM_TTL = 30 * 86400  # as long as a delivered record is kept: longer than any redelivery or redrive
SEND_LEASE = 600  # longer than any attempt can take (Lambda timeouts: 30 s, the sweeper's 120 s)


class DeliveryClaims(Protocol):
    def claim(self, key: str, ttl_seconds: int, *, now: float | None = None, lease_seconds: float | None = None
              ) -> bool:
        """Record ``key`` once; False when it is held (a redelivery, or an attempt in flight).

        With ``lease_seconds``, a claim older than that which never posted is taken over.
        """
        ...

    def release(self, key: str) -> None: ...
