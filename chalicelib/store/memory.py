"""In-memory twins of the repositories: same contract as DynamoDB, for tests, notebooks and benches.

States are stored serialised (as DynamoDB stores them), so a caller can never mutate what is stored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from chalicelib.errors import ConcurrencyConflict, Conflict, DuplicateEvents, NotFound
from chalicelib.events import Event
from chalicelib.outbox.items import OutboxItem
from chalicelib.state import LeadState
from chalicelib.store.base import ActivePointer, Commit, RulesetVersion, StoredLead


class InMemoryLeads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, tuple[str, int]] = {}
        self._events: dict[str, dict[str, Event]] = {}
        self._outcomes: dict[str, list[dict[str, Any]]] = {}
        self._links: dict[str, str] = {}
        self._anonymous: dict[str, dict[str, Event]] = {}
        self.outbox = InMemoryOutbox()
        self.calls = 0  # round trips, to check the hot-path budget in tests

    def get(self, lead_id: str) -> StoredLead | None:
        with self._lock:
            self.calls += 1
            found = self._states.get(lead_id)
        if found is None:
            return None
        return StoredLead(LeadState.from_dict(json.loads(found[0])), found[1])

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
                self._links[commit.link_anonymous] = lead_id
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

    def linked_lead(self, anonymous_id: str) -> str | None:
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

    def erase(self, lead_id: str) -> int:
        with self._lock:
            count = int(self._states.pop(lead_id, None) is not None)
            count += len(self._events.pop(lead_id, {})) + len(self._outcomes.pop(lead_id, []))
            for anonymous_id in [a for a, linked in self._links.items() if linked == lead_id]:
                del self._links[anonymous_id]
                count += 2  # the link and its reverse entry, as DynamoDB stores them
            count += self.outbox.erase_lead(lead_id)
            return count


class InMemoryOutbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, OutboxItem] = {}
        self._claims: set[str] = set()

    def erase_lead(self, lead_id: str) -> int:
        with self._lock:
            doomed = [k for k, item in self._items.items() if item.body.get("lead_id") == lead_id]
            for key in doomed:
                del self._items[key]
            return len(doomed)

    def has(self, item_id: str) -> bool:
        return item_id in self._items

    def put(self, item: OutboxItem) -> None:
        with self._lock:
            self._items.setdefault(item.id, item)

    def pending(self, limit: int = 50) -> list[OutboxItem]:
        with self._lock:
            return sorted(self._items.values(), key=lambda i: i.created_at)[:limit]

    def delete(self, item_id: str) -> None:
        with self._lock:
            self._items.pop(item_id, None)

    def claim(self, key: str, ttl_seconds: int) -> bool:
        with self._lock:
            if key in self._claims:
                return False
            self._claims.add(key)
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._claims.discard(key)


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
            counters = {"planned": 0, "total": 0, "done": 0, "failed": 0, "transitions": 0, "samples": [],
                        "digest_sent": False}
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

    def claim_flag(self, job_id: str, flag: str) -> bool:
        with self._lock:
            job = self._jobs[job_id]
            if job.get(flag):
                return False
            job[flag] = True
            return True
