"""A lead's scoring state: compact, bounded, JSON-serialisable.

Its size does not grow with the number of events: engagement is one decayed accumulator per rule,
caps keep at most the timestamps they can still need, dedupe memory and histories are bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Forward order of the funnel; "recycled" and "disqualified" are side states set by sales or
# disqualifiers, from which only explicit feedback (or re-qualification after recycling) moves on.
STAGE_ORDER = {"lead": 0, "recycled": 0, "mql": 1, "sql": 2, "opportunity": 3, "customer": 4, "disqualified": -1}

# Dedupe memory in the state: the last RECENT_IDS event ids at least, 2 * RECENT_IDS at most (trimmed
# in one go: deleting the oldest id one at a time leaves a dict slower to iterate with every delete).
# The store's conditional writes cover older ids. Ids come from senders (a public form's
# _submission_id up to events.MAX_ID_LENGTH), so the memory is bounded by bytes too: it is trimmed to
# the newest RECENT_ID_BYTES when its ids take more than twice that (ordinary 34-character ids never
# reach it: 512 of them take 17 KB).
RECENT_IDS = 256
RECENT_ID_BYTES = 16 * 1024
# Ids this short cannot take 2 * RECENT_ID_BYTES before 2 * RECENT_IDS of them reach the count bound,
# so the bytes are counted only while a longer id is remembered (``recent_bytes``, 0 otherwise): the
# engine's hot path pays one length check per event, the trims fall where counting every id puts them.
SHORT_ID = RECENT_ID_BYTES // RECENT_IDS
HISTORY = 20
KEY_EVENTS = 10


# A lead id is "L" and the first 12 bytes of a SHA-256 digest in hex (``lead_id_digests``).
LEAD_ID_PREFIX = "L"
LEAD_ID_DIGEST_BYTES = 12


def lead_id_for(email: str) -> str:
    """Leads are keyed by normalised email; the id is a digest so keys and logs carry no address."""
    return LEAD_ID_PREFIX + hashlib.sha256(email.encode()).hexdigest()[:2 * LEAD_ID_DIGEST_BYTES]


def lead_id_for_key(source: str, key: str) -> str:
    """The id of a lead another system knows by its own key and nobody by email yet (an imported
    CRM row). Derived, never invented: the same key from the same source is the same lead, so a
    later address can be linked to it by the key. (No email contains a NUL: the two kinds of id
    never meet.)"""
    return lead_id_from_digest(lead_id_digests(source, [key.encode()])[0])


def lead_id_digests(source: str | None, values: Iterable[bytes]) -> list[bytes]:
    """The SHA-256 digests lead ids are made of (``lead_id_from_digest``), for many values at once
    (an import hashes a million): of UTF-8 emails when ``source`` is None (``lead_id_for``), else of
    that source's keys (``lead_id_for_key``)."""
    seed = hashlib.sha256(b"" if source is None else f"key\0{source}\0".encode())
    out = []
    for value in values:
        digest = seed.copy()
        digest.update(value)
        out.append(digest.digest())
    return out


def lead_id_from_digest(digest: bytes) -> str:
    return LEAD_ID_PREFIX + digest[:LEAD_ID_DIGEST_BYTES].hex()


@dataclass(slots=True)
class Transition:
    id: str
    lead_id: str
    from_stage: str
    to_stage: str
    at: float
    reason: str
    ruleset_version: int | None
    event_id: str | None = None
    fast_track: bool = False
    manual: bool = False  # set by sales feedback, not by the rules

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # A flat tuple: backtest workers send transitions back by pickle (far faster than slots state).
        return (Transition, (self.id, self.lead_id, self.from_stage, self.to_stage, self.at, self.reason,
                             self.ruleset_version, self.event_id, self.fast_track, self.manual))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "lead_id": self.lead_id, "from_stage": self.from_stage, "to_stage": self.to_stage,
            "at": self.at, "reason": self.reason, "ruleset_version": self.ruleset_version,
            "event_id": self.event_id, "fast_track": self.fast_track, "manual": self.manual,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Transition":
        return cls(**d)


# Stored states written before these fields had their present names (the old keys are in DynamoDB).
_RENAMED = {"clock": "last_seen", "eng": "engagement_by_rule", "eng_total": "engagement_totals",
            "eng_basis": "totals_basis", "freq": "frequency_matches"}


def _counted(ids: Iterable[str]) -> int:
    """``LeadState.recent_bytes`` for a memory holding ``ids``."""
    lengths = list(map(len, ids))
    return sum(lengths) if lengths and max(lengths) > SHORT_ID else 0


@dataclass(slots=True)
class LeadState:
    lead_id: str
    email: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # attribute (custom ones as "custom.<name>") -> [source, event time] of the value it holds. States
    # stored before it have none: their values count as set (a public form fills blanks only, so it
    # cannot replace them either way) and show no source until a sender sets them again.
    attribute_sources: dict[str, list[Any]] = field(default_factory=dict)
    stage: str = "lead"
    stage_history: list[dict[str, Any]] = field(default_factory=list)
    last_seen: float = 0.0  # the newest event time: engagement is evaluated here, never in the past
    last_outcome_at: float | None = None  # the newest sales outcome: an event before it arrives late
    first_seen: float | None = None
    # rule id -> [value at ref time, ref time]: decays lazily, so an event touches only its rules
    engagement_by_rule: dict[str, list[float]] = field(default_factory=dict)
    # one [value, ref time] per half-life of the rule set (None until a rule of it scores): the sum of
    # ``engagement_by_rule``, kept as it goes so the engagement score costs one term per half-life
    engagement_totals: list[list[float] | None] = field(default_factory=list)
    totals_basis: str | None = None  # the rule set grouping the totals were made under (its decay_basis)
    # rule id -> counted hit times still inside a window that may matter ([count] for lifetime caps)
    caps: dict[str, list[float]] = field(default_factory=dict)
    # rule id -> [last award time, match times since]
    frequency_matches: dict[str, list[float]] = field(default_factory=dict)
    recent_ids: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    # The characters of ``recent_ids`` while one of them is longer than SHORT_ID, else 0 (kept as
    # they change, never stored: from_dict counts them).
    recent_bytes: int = field(default=0, compare=False, repr=False)
    key_events: list[dict[str, Any]] = field(default_factory=list)
    fit: float = 0.0
    fit_rules: list[str] = field(default_factory=list)
    fit_version: int | None = -1  # rule-set version fit was computed with (-1: never)
    disqualified_reason: str | None = None
    recycled_at: float | None = None
    fast_track: bool = False
    handed_off_at: float | None = None
    route: str | None = None  # the handoff route (Slack channel rule) chosen when it became an SQL
    sla_deadline: float | None = None  # sales should act on the SQL before this time
    sla_reminders: int = 0  # 1 after the reminder, 2 after the escalation
    accepted_at: float | None = None
    owner: str | None = None  # who accepted the lead for sales (a Slack user, an API actor)
    transitions_count: int = 0
    event_count: int = 0
    ruleset_version: int | None = None
    rescored_version: int | None = None  # the version a publish-time re-score last replayed us under
    # [window start, posts]: public form posts counted for the per-address limit (form_limit.FormRateLimit);
    # kept by the live service at its clock, never by replays.
    form_window: list[float] | None = None
    # A pilot rule set's view of this lead: {"version": n, "state": {...}}; scored, never alerted.
    shadow: dict[str, Any] | None = None
    # An earlier lead at this address was erased then: its events (replayed or late) stay out.
    erased_at: float | None = None

    def seen(self, event_id: str) -> bool:
        return event_id in self.recent_ids

    def predates_erasure(self, ts: float) -> bool:
        return self.erased_at is not None and ts <= self.erased_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id, "email": self.email, "attributes": self.attributes,
            "attribute_sources": self.attribute_sources, "stage": self.stage,
            "stage_history": self.stage_history, "last_seen": self.last_seen,
            "last_outcome_at": self.last_outcome_at, "first_seen": self.first_seen,
            "engagement_by_rule": self.engagement_by_rule, "engagement_totals": self.engagement_totals,
            "totals_basis": self.totals_basis, "caps": self.caps, "frequency_matches": self.frequency_matches,
            "recent_ids": list(self.recent_ids),
            "key_events": self.key_events, "fit": self.fit, "fit_rules": self.fit_rules,
            "fit_version": self.fit_version, "disqualified_reason": self.disqualified_reason,
            "recycled_at": self.recycled_at, "fast_track": self.fast_track, "handed_off_at": self.handed_off_at,
            "route": self.route, "sla_deadline": self.sla_deadline, "sla_reminders": self.sla_reminders,
            "accepted_at": self.accepted_at, "owner": self.owner, "transitions_count": self.transitions_count,
            "event_count": self.event_count, "ruleset_version": self.ruleset_version,
            "rescored_version": self.rescored_version, "form_window": self.form_window, "shadow": self.shadow,
            "erased_at": self.erased_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LeadState":
        """A stored state; states stored before the fields were renamed load under the new names."""
        data = {_RENAMED.get(k, k): v for k, v in d.items()}
        data["recent_ids"] = dict.fromkeys(data.get("recent_ids") or ())
        data["recent_bytes"] = _counted(data["recent_ids"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def count_recent(self, event_id: str) -> None:
        """``event_id`` was just added to the dedupe memory (the engine adds ids inline, on the hot
        path) and it or another remembered id is longer than SHORT_ID: count the bytes, trim past a bound."""
        self.recent_bytes = self.recent_bytes + len(event_id) if self.recent_bytes else sum(map(len, self.recent_ids))
        if len(self.recent_ids) > 2 * RECENT_IDS or self.recent_bytes > 2 * RECENT_ID_BYTES:
            self.trim_recent()

    def trim_recent(self) -> None:
        """Keep the newest ids of the dedupe memory: at most RECENT_IDS, within RECENT_ID_BYTES (the
        engine calls this once the memory holds twice either)."""
        kept: list[str] = []
        size = 0
        for kept_id in reversed(self.recent_ids):
            size += len(kept_id)
            if len(kept) == RECENT_IDS or (kept and size > RECENT_ID_BYTES):
                break
            kept.append(kept_id)
        self.recent_ids = dict.fromkeys(reversed(kept))
        self.recent_bytes = _counted(kept)

    def copy(self) -> "LeadState":
        import copy

        return copy.deepcopy(self)
