"""In-memory twins of the repositories: same contract as DynamoDB, for tests, notebooks and benches.

States are stored serialised (as DynamoDB stores them), so a caller can never mutate what is stored.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from chalicelib.errors import ConcurrencyConflict, Conflict, DuplicateEvents, NotFound
from chalicelib.events import Event
from chalicelib.lead_list import LeadQuery, Position, listing_attributes, matches
from chalicelib.outbox.items import Delivery, OutboxItem, without_lead
from chalicelib.outbox.pacing import slot_after
from chalicelib.state import LeadState
from chalicelib.store.base import (
    PARKED,
    RELAY,
    SLACK,
    ActivePointer,
    Backlog,
    Commit,
    Erased,
    RulesetVersion,
    StoredLead,
    VisitorLink,
)


class InMemoryLeads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, tuple[str, int]] = {}
        self._events: dict[str, dict[str, Event]] = {}
        self._outcomes: dict[str, list[dict[str, Any]]] = {}
        self._links: dict[str, VisitorLink] = {}
        self._anonymous: dict[str, dict[str, Event]] = {}
        self._erased: dict[str, float] = {}  # tombstones: lead id -> erased at
        self.outbox = InMemoryOutbox()
        self.calls = 0  # round trips, to check the hot-path budget in tests

    def get(self, lead_id: str) -> StoredLead | None:
        found = self.load(lead_id)
        return found if isinstance(found, StoredLead) else None

    def load(self, lead_id: str) -> StoredLead | Erased | None:
        with self._lock:
            self.calls += 1
            found = self._states.get(lead_id)
            erased_at = self._erased.get(lead_id)
        if found is not None:
            return StoredLead(LeadState.from_dict(json.loads(found[0])), found[1])
        return Erased(erased_at) if erased_at is not None else None

    def commit(self, commit: Commit) -> int:
        lead_id = commit.state.lead_id
        with self._lock:
            self.calls += 1
            current = self._states.get(lead_id)
            version = current[1] if current else 0
            if version != commit.expected_version:
                raise ConcurrencyConflict(f"lead changed (version {version}, expected {commit.expected_version})")
            stored = self._events.get(lead_id, {})
            dupes = [e.event_id for e in commit.events if e.event_id in stored]
            if dupes:
                raise DuplicateEvents(dupes)
            for item in commit.outbox:
                if self.outbox.has(item.id):
                    raise ConcurrencyConflict(f"outbox item {item.id} exists")
            self._states[lead_id] = (json.dumps(commit.state.to_dict()), version + 1)
            events = self._events.setdefault(lead_id, {})
            for event in commit.events:
                events[event.event_id] = event
            self._outcomes.setdefault(lead_id, []).extend(commit.outcomes)
            if commit.link_anonymous:
                self._links[commit.link_anonymous] = VisitorLink(lead_id, commit.link_verified)
            for anonymous_id, event_id in commit.consumed_anonymous:
                self._anonymous.get(anonymous_id, {}).pop(event_id, None)
            for item in commit.outbox:
                self.outbox.put(item)
            return version + 1

    def events(self, lead_id: str) -> list[Event]:
        with self._lock:
            return sorted(self._events.get(lead_id, {}).values(), key=lambda e: (e.ts, e.event_id))

    def outcomes(self, lead_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._outcomes.get(lead_id, []))

    def history(self, lead_id: str) -> tuple[list[Event], list[dict[str, Any]]]:
        with self._lock:
            self.calls += 1
            events = sorted(self._events.get(lead_id, {}).values(), key=lambda e: (e.ts, e.event_id))
            return events, list(self._outcomes.get(lead_id, []))

    def visitor_link(self, anonymous_id: str) -> VisitorLink | None:
        with self._lock:
            self.calls += 1
            return self._links.get(anonymous_id)

    def save_anonymous(self, anonymous_id: str, events: Sequence[Event]) -> int:
        with self._lock:
            self.calls += 1
            bucket = self._anonymous.setdefault(anonymous_id, {})
            new = 0
            for event in events:
                if event.event_id not in bucket:
                    bucket[event.event_id] = event
                    new += 1
            return new

    def anonymous_events(self, anonymous_id: str) -> list[Event]:
        with self._lock:
            return sorted(self._anonymous.get(anonymous_id, {}).values(), key=lambda e: (e.ts, e.event_id))

    def sla_due(self, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            due = []
            for lead_id, (data, _) in self._states.items():
                state = json.loads(data)
                deadline = state.get("sla_deadline")
                if state["stage"] == "sql" and state.get("accepted_at") is None and deadline and deadline <= now:
                    due.append((deadline, lead_id))
            return [lead_id for _, lead_id in sorted(due)[:limit]]

    def lead_ids(self, segment: int = 0, segments: int = 1) -> list[str]:
        with self._lock:
            ids = sorted(self._states)
        return ids[segment::segments]

    def list_leads(self, query: LeadQuery, now: float) -> tuple[list[dict[str, Any]], Position | None]:
        with self._lock:
            states = [LeadState.from_dict(json.loads(data)) for data, _ in self._states.values()]
        entries = [{**listing_attributes(s), "lead_id": s.lead_id} for s in states]
        found = sorted((e for e in entries if matches(e, query, now)),
                       key=lambda e: (e["stage_at"], e["lead_id"]), reverse=True)
        page = found[: query.limit]
        more = len(found) > query.limit
        return page, Position(page[-1]["stage_at"], page[-1]["lead_id"]) if more else None

    def erase(self, lead_id: str, at: float) -> int:
        with self._lock:
            count = int(self._states.pop(lead_id, None) is not None)
            self._erased[lead_id] = at
            count += len(self._events.pop(lead_id, {})) + len(self._outcomes.pop(lead_id, []))
            for anonymous_id in [a for a, linked in self._links.items() if linked.lead_id == lead_id]:
                del self._links[anonymous_id]
                count += 2  # the link and its reverse entry, as DynamoDB stores them
            count += self.outbox.erase_lead(lead_id)
            return count


class InMemoryOutbox:
    """The outbox table as a dict of records (the DynamoDB attributes, as Python values)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = {}
        self._claims: dict[str, dict[str, float]] = {}
        self._slots: dict[str, float] = {}

    def has(self, item_id: str) -> bool:
        return item_id in self._items

    def _pending(self, item_id: str) -> dict[str, Any] | None:
        record = self._items.get(item_id)
        return record if record is not None and record.get("delivery", "pending") == "pending" else None

    def _queue(self, queue: str, until: float = float("inf")) -> list[dict[str, Any]]:
        found = [r for r in self._items.values() if r.get("queue") == queue and r["queue_at"] <= until]
        return sorted(found, key=lambda r: r["queue_at"])

    # -- the relay ---------------------------------------------------------------------------------
    def put(self, item: OutboxItem) -> None:
        with self._lock:
            if item.id not in self._items:
                self._items[item.id] = {"item": item, "created_at": item.created_at, "lead_id": item.lead_id,
                                        "queue": RELAY, "queue_at": item.created_at}

    def pending(self, limit: int = 50) -> list[OutboxItem]:
        with self._lock:
            return [r["item"] for r in self._queue(RELAY)[:limit]]

    def mark_published(self, item_id: str, first_attempt_at: float) -> None:
        with self._lock:
            record = self._items.get(item_id)
            if record is not None and "delivery" not in record:
                record.update(queue=SLACK, queue_at=first_attempt_at, next_attempt_at=first_attempt_at,
                              delivery="pending")

    # -- delivery records --------------------------------------------------------------------------
    def delivery(self, item_id: str) -> Delivery | None:
        with self._lock:
            r = self._items.get(item_id)
            if r is None:
                return None
            return Delivery(
                id=item_id, status=r.get("delivery", "pending"), attempts=r.get("attempts", 0),
                next_attempt_at=r.get("next_attempt_at"), created_at=r["created_at"],
                retry_from=r.get("retry_from", r["created_at"]), published=r.get("queue") != RELAY,
                item=r.get("item"), last_error=r.get("last_error"), delivered_at=r.get("delivered_at"),
                slot_at=r.get("slot_at"),
            )

    def due(self, until: float, limit: int = 50) -> list[tuple[float, str]]:
        with self._lock:
            return [(r["queue_at"], r["item"].id) for r in self._queue(SLACK, until)[:limit]]

    def reschedule(self, item_id: str, at: float, attempts: int, error: str | None = None, *,
                   slot: bool = False) -> bool:
        with self._lock:
            record = self._pending(item_id)
            if record is None:
                return False
            record.update(queue=SLACK, queue_at=at, next_attempt_at=at, delivery="pending", attempts=attempts,
                          slot_at=at if slot else None)
            if error:
                record["last_error"] = error
            return True

    def mark_posted(self, claim_key: str, now: float) -> None:
        with self._lock:
            self._claims.setdefault(claim_key, {"claimed_at": now})["posted_at"] = now

    def posted(self, claim_key: str) -> bool:
        with self._lock:
            return "posted_at" in self._claims.get(claim_key, {})

    def mark_delivered(self, item_id: str, now: float, attempts: int) -> None:
        with self._lock:
            record = self._items.get(item_id)
            if record is not None:
                for key in ("queue", "queue_at", "next_attempt_at", "slot_at"):
                    record.pop(key, None)
                record.update(delivery="delivered", delivered_at=now, attempts=attempts,
                              item=None)  # the body goes: it is personal data, and delivered

    def park(self, item_id: str, now: float, attempts: int, error: str) -> bool:
        with self._lock:
            record = self._pending(item_id)
            if record is None:
                return False
            record.pop("next_attempt_at", None)
            record.pop("slot_at", None)
            record.update(delivery="parked", queue=PARKED, queue_at=now, attempts=attempts, last_error=error)
            return True

    def parked(self, limit: int = 100) -> list[str]:
        with self._lock:
            return [r["item"].id for r in self._queue(PARKED)[:limit]]

    def redrive(self, item_id: str, now: float) -> bool:
        with self._lock:
            record = self._items.get(item_id)
            if record is None or record.get("delivery") != "parked":
                return False
            record.update(delivery="pending", queue=SLACK, queue_at=now, next_attempt_at=now, attempts=0,
                          retry_from=now)
            return True

    def backlog(self) -> Backlog:
        with self._lock:
            waiting = self._queue(RELAY) + self._queue(SLACK)
            return Backlog(len(self._queue(RELAY)), len(self._queue(SLACK)), len(self._queue(PARKED)),
                           min((r["created_at"] for r in waiting), default=None))

    def erase_lead(self, lead_id: str) -> int:
        with self._lock:
            count = 0
            for key, record in list(self._items.items()):
                item = record.get("item")
                if record.get("lead_id") == lead_id:
                    del self._items[key]
                    count += 1
                elif item is not None and item.kind == "digest" and lead_id in json.dumps(item.body):
                    record["item"] = replace(item, body=without_lead(item.body, lead_id))
                    count += 1
            return count

    # -- claims ------------------------------------------------------------------------------------
    def claim(self, key: str, ttl_seconds: int, *, now: float | None = None, lease_seconds: float | None = None
              ) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            held = self._claims.get(key)
            stale = (lease_seconds is not None and held is not None and "posted_at" not in held
                     and held["claimed_at"] < now - lease_seconds)
            if held is not None and not stale:
                return False
            self._claims[key] = {"claimed_at": now}
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._claims.pop(key, None)

    # -- pacing ------------------------------------------------------------------------------------
    def reserve_slot(self, channel: str, now: float, interval: float) -> float:
        with self._lock:
            slot, self._slots[channel] = slot_after(self._slots.get(channel), now, interval)
            return slot

    def hold_channel(self, channel: str, until: float) -> None:
        with self._lock:
            self._slots[channel] = max(self._slots.get(channel, until), until)


class InMemoryRulesets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[int, RulesetVersion] = {}
        self._active = ActivePointer(None, (), None)
        self._shadow: int | None = None

    def create(self, name: str, body: dict[str, Any], checksum: str, now: float) -> RulesetVersion:
        with self._lock:
            version = RulesetVersion(len(self._versions) + 1, name, body, now, checksum)
            self._versions[version.version] = version
            return version

    def get(self, version: int) -> RulesetVersion | None:
        return self._versions.get(version)

    def versions(self) -> list[RulesetVersion]:
        return sorted(self._versions.values(), key=lambda v: v.version)

    def active(self) -> ActivePointer:
        return self._active

    def set_active(self, expected: ActivePointer, version: int, history: tuple[int, ...], now: float) -> None:
        with self._lock:
            if version not in self._versions:
                raise NotFound(f"rule set version {version} does not exist")
            if self._active.version != expected.version or self._active.updated_at != expected.updated_at:
                raise Conflict("the active rule set changed meanwhile; read it again and retry")
            self._active = ActivePointer(version, history, now)

    def shadow(self) -> int | None:
        return self._shadow

    def set_shadow(self, version: int | None) -> None:
        if version is not None and version not in self._versions:
            raise NotFound(f"rule set version {version} does not exist")
        self._shadow = version


class InMemoryJobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}

    def create(self, job: dict[str, Any]) -> None:
        with self._lock:
            if job["job_id"] in self._jobs:
                raise Conflict(f"re-score job {job['job_id']} exists")
            counters = {"planned": 0, "total": 0, "done": 0, "failed": 0, "transitions": 0, "alerted": 0,
                        "samples": [], "digest_sent": False}
            self._jobs[job["job_id"]] = {**counters, **json.loads(json.dumps(job))}

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return json.loads(json.dumps(job)) if job else None

    def for_version(self, version: int) -> list[dict[str, Any]]:
        with self._lock:
            found = [j for j in self._jobs.values() if j["version"] == version]
        return sorted((json.loads(json.dumps(j)) for j in found), key=lambda j: j["created_at"])

    def add(self, job_id: str, counts: dict[str, int], samples: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        with self._lock:
            job = self._jobs[job_id]
            for key, value in counts.items():
                job[key] = job.get(key, 0) + value
            job["samples"] = (job.get("samples", []) + list(samples))[:50]
            return json.loads(json.dumps(job))

    def erase_lead(self, lead_id: str) -> int:
        with self._lock:
            changed = 0
            for job in self._jobs.values():
                kept = [x for x in job.get("samples", []) if x.get("lead_id") != lead_id]
                changed += len(kept) != len(job.get("samples", []))
                job["samples"] = kept
            return changed

    def claim_flag(self, job_id: str, flag: str) -> bool:
        with self._lock:
            job = self._jobs[job_id]
            if job.get(flag):
                return False
            job[flag] = True
            return True
