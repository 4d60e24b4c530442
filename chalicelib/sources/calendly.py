"""Calendly v2 webhook subscriptions: ``invitee.created`` and ``invitee.canceled``.

Signature (Calendly "Webhook signatures"): ``Calendly-Webhook-Signature: t=<unix s>,v1=<hex
HMAC-SHA256 of "{t}.{raw body}" keyed with the webhook signing key>``; Calendly's own example
rejects timestamps older than three minutes, and so do we.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.attributes import coerce_trait
from chalicelib.errors import Unauthorized
from chalicelib.events import MEETING_BOOKED, MEETING_CANCELED
from chalicelib.json_body import load_json
from chalicelib.signing import (
    check_signature,
    check_window,
    hmac_digest,
    parse_unix_timestamp,
    require_header,
)

from .base import WebhookRequest, WebhookResult, ok
from .payload import (
    as_list,
    as_object,
    at,
    make_event,
    normalize_email,
    obj_field,
    opt_str,
    parse_iso8601,
    setting_map,
    str_field,
    utm_from,
)

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
TOLERANCE_SECONDS = 180.0

_TYPES = {"invitee.created": MEETING_BOOKED, "invitee.canceled": MEETING_CANCELED}

# Booking-form questions whose meaning is obvious; settings["field_map"] adds or overrides.
_QUESTION_TRAITS = {
    "company": "company",
    "company name": "company",
    "organization": "company",
    "job title": "job_title",
    "title": "job_title",
    "role": "job_title",
    "phone": "phone",
    "phone number": "phone",
    "website": "website",
    "company website": "website",
    "country": "country",
    "industry": "industry",
    "company size": "company_size",
    "number of employees": "company_size",
    "how many employees": "company_size",
    "employees": "company_size",
    "department": "department",
}


def _signature_parts(header: str) -> tuple[str, str]:
    parts = dict(item.strip().partition("=")[::2] for item in header.split(","))
    timestamp, signature = parts.get("t", ""), parts.get("v1", "")
    if not timestamp or not signature:
        raise Unauthorized(
            f"malformed {SIGNATURE_HEADER} header: expected 't=<unix>,v1=<hex>'",
            details={"header": SIGNATURE_HEADER},
        )
    return timestamp, signature


def _question_key(question: str) -> str:
    return " ".join(question.strip().rstrip("?:").split()).casefold()


def _split_name(name: str | None) -> tuple[str | None, str | None]:
    if not name:
        return None, None
    first, _, last = name.strip().partition(" ")
    return first or None, last.strip() or None


class CalendlySource:
    name = "calendly"

    def verify(self, request: WebhookRequest, secret: str, now: float) -> None:
        timestamp, signature = _signature_parts(require_header(request.headers, SIGNATURE_HEADER))
        check_window(
            parse_unix_timestamp(timestamp, SIGNATURE_HEADER), now, TOLERANCE_SECONDS, SIGNATURE_HEADER
        )
        expected = hmac_digest("sha256", secret, timestamp.encode("ascii") + b"." + request.raw_body).hex()
        check_signature(expected, signature.lower(), SIGNATURE_HEADER)

    def parse(self, request: WebhookRequest, settings: Mapping[str, Any]) -> WebhookResult:
        body = as_object(load_json(request.raw_body), "")
        name = str_field(body, "event", "")
        if name not in _TYPES:
            return ok([], ignored=1)  # no-shows, routing forms, event types: not lead activity
        ts = parse_iso8601(body.get("created_at"), "created_at")
        invitee = obj_field(body, "payload", "", required=True)
        path = "payload"
        uri = str_field(invitee, "uri", path)
        email = normalize_email(invitee.get("email"), at(path, "email"))
        meeting = obj_field(invitee, "scheduled_event", path)
        mpath = at(path, "scheduled_event")
        cancellation = obj_field(invitee, "cancellation", path)
        qa, question_traits = self._questions(invitee, setting_map(settings, "field_map"))

        first, last = _split_name(opt_str(invitee, "name", path))
        traits: dict[str, Any] = {
            "email": email,
            "first_name": opt_str(invitee, "first_name", path) or first,
            "last_name": opt_str(invitee, "last_name", path) or last,
            "phone": opt_str(invitee, "text_reminder_number", path),
        }
        traits.update(question_traits)
        tracking = obj_field(invitee, "tracking", path)
        for key, value in utm_from(tracking).items():
            traits.setdefault(key, value)

        start = meeting.get("start_time")
        properties: dict[str, Any] = {
            "invitee_uri": uri,
            "event_name": opt_str(meeting, "name", mpath),
            "event_uri": opt_str(meeting, "uri", mpath),
            "event_type_uri": opt_str(meeting, "event_type", mpath),
            "start_time": start,
            "start_ts": parse_iso8601(start, at(mpath, "start_time")) if start is not None else None,
            "questions_and_answers": qa or None,
            "rescheduled": invitee.get("rescheduled")
            if isinstance(invitee.get("rescheduled"), bool)
            else None,
            "cancel_reason": opt_str(cancellation, "reason", at(path, "cancellation")),
            "canceler_type": opt_str(cancellation, "canceler_type", at(path, "cancellation")),
            **utm_from(tracking),
        }
        event = make_event(
            self.name,
            f"{name}:{uri}",
            _TYPES[name],
            ts,
            email=email,
            properties=properties,
            traits={key: value for key, value in traits.items() if value is not None},
        )
        return ok([event])

    def _questions(
        self, invitee: Mapping[str, Any], field_map: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The booking form's questions and answers, and the traits the obvious ones give."""
        mapping = {**_QUESTION_TRAITS, **{_question_key(str(k)): str(v) for k, v in field_map.items()}}
        qpath = "payload.questions_and_answers"
        qa: list[dict[str, Any]] = []
        traits: dict[str, Any] = {}
        for i, item in enumerate(as_list(invitee.get("questions_and_answers") or [], qpath)):
            item = as_object(item, at(qpath, i))
            question, answer = opt_str(item, "question", at(qpath, i)), item.get("answer")
            if not question:
                continue
            qa.append({"question": question, "answer": answer})
            name = mapping.get(_question_key(question))
            if name and answer not in (None, ""):
                name, value = coerce_trait(name, answer, at(at(qpath, i), "answer"))
                traits.setdefault(name, value)
        return qa, traits
