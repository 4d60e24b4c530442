"""The canonical event: what every source (forms, API, vendor webhooks) is turned into.

A plain frozen dataclass rather than a pydantic model: the engine and the backtest handle millions
of these, and validation belongs at the edges (``schemas.py`` and ``sources/``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

# Event types Baton understands. Sources map vendor events onto these; rules match on them.
PAGE_VIEW = "page_view"
EMAIL_OPEN = "email_open"
EMAIL_CLICK = "email_click"
FORM_SUBMITTED = "form_submitted"
CONTENT_DOWNLOAD = "content_download"
WEBINAR_REGISTERED = "webinar_registered"
WEBINAR_ATTENDED = "webinar_attended"
TRIAL_SIGNUP = "trial_signup"
DEMO_REQUEST = "demo_request"
CONTACT_SALES = "contact_sales"
MEETING_BOOKED = "meeting_booked"
MEETING_CANCELED = "meeting_canceled"
UNSUBSCRIBE = "unsubscribe"
SPAM_REPORT = "spam_report"
EMAIL_BOUNCE = "email_bounce"
IDENTIFY = "identify"

KNOWN_TYPES = frozenset(
    {
        PAGE_VIEW, EMAIL_OPEN, EMAIL_CLICK, FORM_SUBMITTED, CONTENT_DOWNLOAD, WEBINAR_REGISTERED,
        WEBINAR_ATTENDED, TRIAL_SIGNUP, DEMO_REQUEST, CONTACT_SALES, MEETING_BOOKED,
        MEETING_CANCELED, UNSUBSCRIBE, SPAM_REPORT, EMAIL_BOUNCE, IDENTIFY,
    }
)


EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # the shape of any event type, built in or declared


def unknown_type(kind: str, known: frozenset[str]) -> str:
    """Why ``kind`` is refused, naming the closest known type."""
    import difflib

    close = difflib.get_close_matches(kind, sorted(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown event type {kind!r:.70}{hint}; the active rule set knows {', '.join(sorted(known))} "
            "(a rule set declares more under event_types)")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a lead did (or one update of who they are).

    ``ts`` is seconds since the epoch (UTC): the engine does arithmetic on it millions of times.
    ``traits`` are lead attribute updates carried by the event (a form's fields, an identify call);
    ``properties`` describe the event itself (url, path, asset, campaign, utm_*...).
    Exactly one of ``email`` / ``anonymous_id`` identifies the subject, or both for an identify.
    Imported history may instead name a lead known by no email by its id (``lead_id``, derived from
    the exporting system's key: ``state.lead_id_for_key``); live paths never set it.
    """

    event_id: str
    type: str
    ts: float
    email: str | None = None
    anonymous_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)
    source: str = "api"
    lead_id: str | None = None

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.ts, tz=timezone.utc)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "event_id": self.event_id,
            "type": self.type,
            "ts": self.ts,
            "email": self.email,
            "anonymous_id": self.anonymous_id,
            "properties": dict(self.properties),
            "traits": dict(self.traits),
            "source": self.source,
        }
        if self.lead_id is not None:  # (only imported history has one: stored items keep their shape)
            out["lead_id"] = self.lead_id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Event":
        return cls(
            event_id=str(data["event_id"]),
            type=str(data["type"]),
            ts=float(data["ts"]),
            email=data.get("email"),
            anonymous_id=data.get("anonymous_id"),
            properties=dict(data.get("properties") or {}),
            traits=dict(data.get("traits") or {}),
            source=str(data.get("source") or "api"),
            lead_id=data.get("lead_id"),
        )


# An event's properties, and its traits, at most, as JSON bytes (``data_size``): the API refuses more,
# and a vendor's largest values are left out (``chalicelib.sources.payload.bounded``). Each event is an
# item of at most 400 KB, and a lead page answers up to 200 of them within Lambda's 6 MB.
MAX_DATA_BYTES = 8192


def data_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


# Ids a sender gives end up in DynamoDB keys (at most 1,024 bytes per sort key) and in the lead's
# memory of recent ids: each is bounded before it gets there (see ``bounded_id``).
MAX_ID_LENGTH = 128
_PLAIN_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")


def is_plain_id(raw: str) -> bool:
    """At most ``MAX_ID_LENGTH`` printable ASCII characters, no spaces."""
    return _PLAIN_ID.fullmatch(raw) is not None


def bounded_id(raw: str) -> str:
    """A vendor's id as Baton stores it: as sent when plain, else a digest (the same id always
    gives the same digest, so dedupe and identity links still work)."""
    if is_plain_id(raw):
        return raw
    return "h_" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def content_event_id(source: str, type_: str, ts: float, subject: str, properties: Mapping[str, Any]) -> str:
    """A stable id for senders that give none: the same delivery twice hashes the same."""
    canonical = json.dumps([source, type_, round(ts, 3), subject, properties], sort_keys=True, default=str)
    return "h_" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def to_epoch(value: datetime) -> float:
    """Aware datetimes as they are; naive ones are taken as UTC (what every vendor here sends)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with a ``Z`` (the inverse of :func:`to_epoch`); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")
