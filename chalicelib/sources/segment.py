"""Segment Webhooks destination: one Segment Spec message per request.

Signature (Segment Webhooks destination, "Authentication"): ``X-Signature`` = hex HMAC-SHA1 of the
request body keyed with the destination's shared secret. No timestamp is sent, so there is no
replay window; duplicates are absorbed by the ``segment:{messageId}`` dedupe key.

Identity: Segment's ``userId`` / ``anonymousId`` become ``segment:user:ID`` / ``segment:anon:ID``;
an email in ``traits`` or ``context.traits`` identifies the lead directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.attributes import coerce, coerce_trait, stored_names
from chalicelib.errors import ValidationFailed
from chalicelib.events import (
    CONTENT_DOWNLOAD,
    DEMO_REQUEST,
    EMAIL_CLICK,
    EMAIL_OPEN,
    FORM_SUBMITTED,
    IDENTIFY,
    KNOWN_TYPES,
    MEETING_BOOKED,
    PAGE_VIEW,
    TRIAL_SIGNUP,
    UNSUBSCRIBE,
    WEBINAR_ATTENDED,
    content_event_id,
)
from chalicelib.json_body import load_json
from chalicelib.signing import check_signature, hmac_digest, require_header

from .base import WebhookRequest, WebhookResult, ok
from .payload import (
    as_object,
    at,
    make_event,
    normalize_email,
    obj_field,
    opt_str,
    parse_iso8601,
    setting_map,
    str_field,
)

SIGNATURE_HEADER = "X-Signature"

# Track event names (Segment's B2B SaaS / Email specs) -> Baton types; settings["track_map"] adds
# or overrides (map a name to null to ignore it). Matching ignores case and surrounding space.
DEFAULT_TRACK_MAP = {
    "Demo Requested": DEMO_REQUEST,
    "Trial Started": TRIAL_SIGNUP,
    "Webinar Attended": WEBINAR_ATTENDED,
    "Form Submitted": FORM_SUBMITTED,
    "Email Opened": EMAIL_OPEN,
    "Email Link Clicked": EMAIL_CLICK,
    "Unsubscribed": UNSUBSCRIBE,
    "Meeting Booked": MEETING_BOOKED,
    "Content Downloaded": CONTENT_DOWNLOAD,
    "Ebook Downloaded": CONTENT_DOWNLOAD,
}
# Segment reserved traits (camelCase or snake_case) -> Baton lead traits.
_TRAIT_NAMES = {
    "firstName": "first_name",
    "lastName": "last_name",
    "title": "job_title",
    "jobTitle": "job_title",
    "employees": "company_size",
    "employeeCount": "company_size",
    "employee_count": "company_size",
    "annualRevenue": "annual_revenue",
    "leadSource": "lead_source",
}
_CAMPAIGN_UTM = {
    "name": "utm_campaign",
    "source": "utm_source",
    "medium": "utm_medium",
    "term": "utm_term",
    "content": "utm_content",
}
_PAGE_KEYS = ("url", "path", "title", "referrer", "search", "name")


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _traits(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or value == "":
            continue
        if key == "company" and isinstance(value, dict):  # Segment's reserved company object
            cpath = at(path, "company")
            for sub, trait in (
                ("name", "company"),
                ("industry", "industry"),
                ("employee_count", "company_size"),
            ):
                if value.get(sub) not in (None, ""):
                    traits[trait] = coerce(trait, value[sub], at(cpath, sub))
            continue
        if key == "address" and isinstance(value, dict):
            if isinstance(value.get("country"), str) and value["country"]:
                traits["country"] = value["country"]
            traits["address"] = value
            continue
        if key == "custom":  # custom attributes as one object, as /v1/events takes them
            traits.update(stored_names({key: value}, path))
            continue
        name, value = coerce_trait(_TRAIT_NAMES.get(key, key), value, at(path, key))
        traits[name] = value
    return traits


class SegmentSource:
    name = "segment"

    def verify(self, request: WebhookRequest, secret: str, now: float) -> None:
        given = require_header(request.headers, SIGNATURE_HEADER)
        check_signature(hmac_digest("sha1", secret, request.raw_body).hex(), given.lower(), SIGNATURE_HEADER)

    def parse(self, request: WebhookRequest, settings: Mapping[str, Any]) -> WebhookResult:
        msg = as_object(load_json(request.raw_body), "")
        kind = str_field(msg, "type", "")
        stamp_key = "timestamp" if msg.get("timestamp") is not None else "receivedAt"
        ts = parse_iso8601(msg.get(stamp_key), stamp_key)
        context = obj_field(msg, "context", "")
        properties = dict(obj_field(msg, "properties", ""))
        utm = {
            utm_key: value
            for key, utm_key in _CAMPAIGN_UTM.items()
            if isinstance(value := obj_field(context, "campaign", "context").get(key), str) and value
        }

        if kind == "track":
            track_map = {
                _key(name): type_
                for name, type_ in {**DEFAULT_TRACK_MAP, **setting_map(settings, "track_map")}.items()
            }
            name = str_field(msg, "event", "")
            type_ = track_map.get(_key(name))
            if not isinstance(type_, str) or type_ not in KNOWN_TYPES:
                return ok([], ignored=1)
            properties = {**properties, **utm, "segment_event": name}
        elif kind in ("page", "screen"):
            type_ = PAGE_VIEW
            page = obj_field(context, "page", "context")
            for key in _PAGE_KEYS:
                if properties.get(key) is None and page.get(key) is not None:
                    properties[key] = page[key]
            if kind == "screen":
                properties["screen"] = opt_str(msg, "name", "")
            elif properties.get("name") is None:
                properties["name"] = opt_str(msg, "name", "")
            properties.update(utm)
        elif kind == "identify":
            type_ = IDENTIFY
        else:
            return ok([], ignored=1)  # alias, group, delete: no lead activity

        traits = _traits(obj_field(msg, "traits", ""), "traits") if kind == "identify" else {}
        context_traits = obj_field(context, "traits", "context")
        raw_email, email_path = (
            (traits.get("email"), "traits.email")
            if traits.get("email")
            else (context_traits.get("email"), "context.traits.email")
        )
        email = normalize_email(raw_email, email_path) if raw_email not in (None, "") else None
        user_id, anon_id = opt_str(msg, "userId", ""), opt_str(msg, "anonymousId", "")
        anonymous_id = (
            f"segment:user:{user_id}" if user_id else f"segment:anon:{anon_id}" if anon_id else None
        )
        if email is None and anonymous_id is None:
            raise ValidationFailed("message has no userId, anonymousId or traits.email", field="userId")
        if kind == "identify":
            traits.update({"email": email} if email else {})
            for key, value in utm.items():
                traits.setdefault(key, value)
        else:
            anonymous_id = None if email else anonymous_id  # one subject per event; identify links both

        message_id = opt_str(msg, "messageId", "") or content_event_id(
            self.name, kind, ts, email or anonymous_id or "", msg
        )
        event = make_event(
            self.name,
            message_id,
            type_,
            ts,
            email=email,
            anonymous_id=anonymous_id,
            properties=properties,
            traits=traits,
        )
        return ok([event])
