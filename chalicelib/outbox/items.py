"""The outbox item: a message written in the same transaction as the lead state it announces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OutboxItem:
    """A message that must reach the handoff topic: written with the state, delivered after."""

    id: str  # the transition id: also the consumer's dedupe key
    kind: str  # "handoff" | "reminder" | "escalation" | "digest"
    body: dict[str, Any]
    attributes: dict[str, str]
    created_at: float
