"""The outbox item, written in the same transaction as the lead state it announces, and where its
delivery to Slack stands (stored on the same item afterwards)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

DeliveryStatus = Literal["pending", "delivered", "parked"]
PARKED_MESSAGE = "baton.delivery.parked"  # the ``type`` of a parked alert's dead-letter pointer


@dataclass(frozen=True)
class OutboxItem:
    """A message that must reach the handoff topic: written with the state, delivered after."""

    id: str  # the transition id: also the consumer's dedupe key
    kind: str  # "handoff" | "reminder" | "escalation" | "digest"
    body: dict[str, Any]
    attributes: dict[str, str]
    created_at: float

    @property
    def lead_id(self) -> str | None:
        """The lead the message is about (digests are about many: None)."""
        lead_id = self.body.get("lead_id")
        return lead_id if isinstance(lead_id, str) else None


@dataclass(frozen=True)
class Delivery:
    """One outbox message on its way to Slack.

    ``pending`` until Slack acknowledges it (``published`` says whether the relay has put it on
    SNS yet), then ``delivered``; ``parked`` once its retries ran out (``outbox.schedule``) and it
    waits in the dead-letter queue for ``baton handoff redrive``. A delivered record keeps no body.
    """

    id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None
    created_at: float
    retry_from: float  # the retry window starts here: the commit, or the last redrive
    published: bool
    item: OutboxItem | None  # None once delivered
    last_error: str | None = None
    delivered_at: float | None = None
    slot_at: float | None = None  # the channel's send slot reserved for it (``outbox.pacing``)

    def summary(self) -> dict[str, Any]:
        """What the lead's API answer shows (``handoff.status``...), times as epoch seconds."""
        return {"status": self.status, "attempts": self.attempts,
                "next_attempt_at": self.next_attempt_at if self.status == "pending" else None,
                "delivered_at": self.delivered_at, "last_error": self.last_error}


def without_lead(digest: dict[str, Any], lead_id: str) -> dict[str, Any]:
    """A re-score digest's body without the erased lead's line (its count stays: no personal data)."""
    lines = digest.get("transitions")
    if not isinstance(lines, list):
        return digest
    return {**digest, "transitions": [t for t in lines if not (isinstance(t, dict) and t.get("lead_id") == lead_id)]}
