"""Repository interfaces. Services depend on these, never on boto3."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.events import Event
from chalicelib.outbox.claims import DeliveryClaims
from chalicelib.outbox.items import OutboxItem
from chalicelib.state import LeadState

# DynamoDB transactions take at most 100 items; keep room for the state, outbox and links.
MAX_EVENTS_PER_COMMIT = 90


@dataclass(frozen=True)
class StoredLead:
    state: LeadState
    version: int  # optimistic-concurrency counter of the stored item


@dataclass(frozen=True)
class Commit:
    """Everything one conditional write stores for a lead, all or nothing."""

    state: LeadState
    expected_version: int  # 0: the lead must not exist yet
    events: Sequence[Event] = ()
    outbox: Sequence[OutboxItem] = ()
    outcomes: Sequence[dict[str, Any]] = ()
    link_anonymous: str | None = None  # anonymous id to link to this lead
    consumed_anonymous: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (anonymous id, event id)


class LeadRepository(Protocol):
    def get(self, lead_id: str) -> StoredLead | None: ...

    def commit(self, commit: Commit) -> int:
        """Store atomically; return the new version.

        Raises ``ConcurrencyConflict`` when the stored version moved on, ``DuplicateEvents`` when
        some events were already recorded (nothing is written then: the caller drops them, retries).
        """
        ...

    def events(self, lead_id: str) -> list[Event]:
        """All of a lead's events, oldest first."""
        ...

    def outcomes(self, lead_id: str) -> list[dict[str, Any]]: ...

    def linked_lead(self, anonymous_id: str) -> str | None: ...

    def save_anonymous(self, anonymous_id: str, events: Sequence[Event]) -> int:
        """Keep events of a not-yet-known visitor; returns how many were new."""
        ...

    def anonymous_events(self, anonymous_id: str) -> list[Event]: ...

    def sla_due(self, now: float, limit: int = 100) -> list[str]:
        """Lead ids of SQLs past their SLA deadline that sales has not accepted."""
        ...

    def lead_ids(self, segment: int = 0, segments: int = 1) -> list[str]:
        """Every lead id (optionally one segment of a parallel scan)."""
        ...

    def erase(self, lead_id: str) -> int:
        """Delete everything stored about a lead (state, events, outcomes, identity links and its
        pending outbox messages); return how many items went."""
        ...


class OutboxRepository(DeliveryClaims, Protocol):
    """Pending outbox items (see ``chalicelib/outbox``) and the consumers' delivery claims."""

    def pending(self, limit: int = 50) -> list[OutboxItem]: ...

    def delete(self, item_id: str) -> None: ...

    def put(self, item: OutboxItem) -> None:
        """For messages not tied to a lead write (reminders, digests)."""
        ...


@dataclass(frozen=True)
class RulesetVersion:
    version: int
    name: str
    body: dict[str, Any]
    created_at: float
    checksum: str


@dataclass(frozen=True)
class ActivePointer:
    version: int | None
    history: tuple[int, ...]  # previously active versions, oldest first (rollback pops the last)
    updated_at: float | None


class RulesetRepository(Protocol):
    def create(self, name: str, body: dict[str, Any], checksum: str, now: float) -> RulesetVersion: ...

    def get(self, version: int) -> RulesetVersion | None: ...

    def versions(self) -> list[RulesetVersion]: ...

    def active(self) -> ActivePointer: ...

    def set_active(self, expected: ActivePointer, version: int, history: tuple[int, ...], now: float) -> None:
        """Point ``active`` at ``version`` only if it still is ``expected``; else ``Conflict``."""
        ...

    def shadow(self) -> int | None:
        """The version piloted alongside the active one, if any."""
        ...

    def set_shadow(self, version: int | None) -> None: ...


class JobRepository(Protocol):
    """Re-score jobs (``rescore.jobs``): a spec plus counters that the workers of each page add to atomically."""

    def create(self, job: dict[str, Any]) -> None: ...

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    def for_version(self, version: int) -> list[dict[str, Any]]:
        """The jobs of a rule-set version, oldest first."""
        ...

    def add(self, job_id: str, counts: dict[str, int], samples: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """Add to the job's counters (and keep up to 50 sample transitions); return the job."""
        ...

    def claim_flag(self, job_id: str, flag: str) -> bool:
        """Set ``flag`` once; False when it was already set (e.g. the digest was sent)."""
        ...
