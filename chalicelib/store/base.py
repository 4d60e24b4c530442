"""Repository interfaces. Services depend on these, never on boto3."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.events import Event
from chalicelib.lead_list import LeadQuery, Position
from chalicelib.outbox.claims import DeliveryClaims
from chalicelib.outbox.items import Delivery, OutboxItem
from chalicelib.state import LeadState

# The outbox's queues (its items' ``queue``): not yet on SNS, waiting for Slack, retries ran out.
RELAY, SLACK, PARKED = "relay", "slack", "parked"

# DynamoDB transactions take at most 100 items; keep room for the state, outbox and links.
MAX_EVENTS_PER_COMMIT = 90


@dataclass(frozen=True)
class StoredLead:
    state: LeadState
    version: int  # optimistic-concurrency counter of the stored item


@dataclass(frozen=True)
class Erased:
    """What stays of an erased lead: when. Its key is a digest of the address; nothing personal."""

    at: float


@dataclass(frozen=True)
class VisitorLink:
    """Which lead an anonymous visitor is linked to, and whether a verified source made the link
    (links stored before the flag existed count as verified: they keep their lead, as they did)."""

    lead_id: str
    verified: bool = True


@dataclass(frozen=True)
class Commit:
    """Everything one conditional write stores for a lead, all or nothing."""

    state: LeadState
    expected_version: int  # 0: the lead must not exist yet (an erasure tombstone may)
    events: Sequence[Event] = ()
    outbox: Sequence[OutboxItem] = ()
    outcomes: Sequence[dict[str, Any]] = ()
    link_anonymous: str | None = None  # anonymous id to link to this lead (made again: re-pointed)
    link_verified: bool = True  # whether a verified source made that link (a public form's: False)
    consumed_anonymous: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (anonymous id, event id)


class LeadRepository(Protocol):
    def get(self, lead_id: str) -> StoredLead | None:
        """The lead, or None (never stored, or erased)."""
        ...

    def load(self, lead_id: str) -> StoredLead | Erased | None:
        """``get`` for writers, in the same one read: an erased lead's tombstone tells them which
        events predate its erasure (a replayed webhook must not bring it back)."""
        ...

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

    def history(self, lead_id: str) -> tuple[list[Event], list[dict[str, Any]]]:
        """The lead's events (oldest first) and outcomes read together, strongly consistent, in one
        round trip (paged for long histories): what a late event replays."""
        ...

    def visitor_link(self, anonymous_id: str) -> VisitorLink | None: ...

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

    def list_leads(self, query: LeadQuery, now: float) -> tuple[list[dict[str, Any]], Position | None]:
        """Up to ``query.limit`` leads of the list, newest in their stage first, each its
        ``lead_list.listing_attributes`` plus ``lead_id``; and where to go on from (None: the end)."""
        ...

    def erase(self, lead_id: str, at: float) -> int:
        """Delete everything stored about a lead (state, events, outcomes, identity links and its
        pending outbox messages) and leave its tombstone (``Erased(at)``); return how many items went."""
        ...


@dataclass(frozen=True)
class Backlog:
    """What the outbox still has to do: the "handoffs stuck" alarm watches the oldest."""

    unpublished: int  # not yet on SNS
    undelivered: int  # on SNS, not yet acknowledged by Slack (parked ones not counted)
    parked: int  # retries ran out: waiting for ``baton handoff redrive``
    oldest_created_at: float | None  # of the unpublished and undelivered ones


class OutboxRepository(DeliveryClaims, Protocol):
    """Outbox items (see ``chalicelib/outbox``): relayed to SNS, then delivered to Slack.

    An item is *pending* from its commit until Slack acknowledges it; the relay publishes it
    (``pending`` lists those it has not yet), the deliverer posts it (``due`` lists those whose
    next attempt has come). The same item records attempts, the next one, and the outcome.
    """

    def put(self, item: OutboxItem) -> None:
        """For messages not tied to a lead write (digests)."""
        ...

    def pending(self, limit: int = 50) -> list[OutboxItem]:
        """Items the relay has not published yet, oldest first."""
        ...

    def mark_published(self, item_id: str, first_attempt_at: float) -> None:
        """Published: from now on the deliverer tries it (at ``first_attempt_at`` at the latest)."""
        ...

    def delivery(self, item_id: str) -> Delivery | None: ...

    def due(self, until: float, limit: int = 50) -> list[tuple[float, str]]:
        """(next attempt, id) of pending deliveries whose next attempt is at or before ``until``."""
        ...

    def reschedule(self, item_id: str, at: float, attempts: int, error: str | None = None, *,
                   slot: bool = False) -> bool:
        """Try again at ``at``: after a failure, or (``slot``) at the channel's send slot reserved
        for it; False when the item is no longer pending (delivered, parked or erased meanwhile)."""
        ...

    def mark_posted(self, claim_key: str, now: float) -> None:
        """Slack acknowledged the post made under this claim: nobody takes it over, ever."""
        ...

    def posted(self, claim_key: str) -> bool:
        """Whether a post under this claim was acknowledged."""
        ...

    def mark_delivered(self, item_id: str, now: float, attempts: int) -> None:
        """Slack acknowledged it (after ``mark_posted``): the record drops its body and leaves the
        queues. Nothing happens to an item erased meanwhile."""
        ...

    def park(self, item_id: str, now: float, attempts: int, error: str) -> bool:
        """Retries ran out: False when it was no longer pending."""
        ...

    def parked(self, limit: int = 100) -> list[str]:
        """Ids of parked items, longest parked first."""
        ...

    def redrive(self, item_id: str, now: float) -> bool:
        """A parked item is pending again, due now, with a fresh retry window; False if it was not parked."""
        ...

    def backlog(self) -> Backlog: ...

    def erase_lead(self, lead_id: str) -> int:
        """Delete the lead's messages that are not delivered yet, and its delivery records; take
        it out of pending digests. Returns how many items were deleted or rewritten."""
        ...

    # Pacing (``outbox.pacing``): one send slot per channel, reserved with a conditional write.
    def reserve_slot(self, channel: str, now: float, interval: float) -> float:
        """The time this sender may post to ``channel`` (``now`` when it is free); the next
        sender's slot is ``interval`` later."""
        ...

    def hold_channel(self, channel: str, until: float) -> None:
        """Nobody posts to ``channel`` before ``until`` (Slack answered 429 with Retry-After)."""
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

    def erase_lead(self, lead_id: str) -> int:
        """Drop the lead from every job's sample transitions (they name it); return how many jobs changed."""
        ...
