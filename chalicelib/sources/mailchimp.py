"""Mailchimp audience webhooks.

Mailchimp signs nothing: its documented advice is a secret in the webhook URL, so ``verify``
compares ``?key=`` with the configured secret in constant time. Mailchimp checks a new webhook URL
with a GET that must answer 200; that GET carries the same URL (and key), so it is verified too and
parses to no events. Bodies are ``application/x-www-form-urlencoded`` with PHP-style keys
(``data[merges][FNAME]``); ``fired_at`` is ``YYYY-MM-DD HH:MM:SS`` without a zone, taken as UTC.
Mailchimp sends no event id, so the dedupe key is a hash of the whole delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.attributes import coerce_trait
from chalicelib.errors import Unauthorized
from chalicelib.events import EMAIL_BOUNCE, IDENTIFY, SPAM_REPORT, UNSUBSCRIBE, content_event_id
from chalicelib.signing import constant_time_equal
from chalicelib.state import lead_id_for

from .base import WebhookRequest, WebhookResult, ok
from .payload import (
    at,
    make_event,
    normalize_email,
    obj_field,
    opt_str,
    parse_form,
    parse_naive_utc,
    setting_map,
    str_field,
)

KEY_PARAM = "key"
FIRED_AT_FORMAT = "%Y-%m-%d %H:%M:%S"

# Mailchimp's default merge tags plus common custom ones; settings["field_map"] adds or overrides.
_MERGE_TRAITS = {
    "FNAME": "first_name",
    "LNAME": "last_name",
    "COMPANY": "company",
    "PHONE": "phone",
    "TITLE": "job_title",
    "JOBTITLE": "job_title",
    "WEBSITE": "website",
    "COUNTRY": "country",
    "INDUSTRY": "industry",
}


class MailchimpSource:
    name = "mailchimp"

    def verify(self, request: WebhookRequest, secret: str, now: float) -> None:
        given = request.query.get(KEY_PARAM)
        if not given:
            raise Unauthorized(f"missing {KEY_PARAM} query parameter", details={"query": KEY_PARAM})
        if not constant_time_equal(secret, given):
            raise Unauthorized(f"bad {KEY_PARAM} query parameter", details={"query": KEY_PARAM})

    def parse(self, request: WebhookRequest, settings: Mapping[str, Any]) -> WebhookResult:
        if request.method.upper() in ("GET", "HEAD"):
            return ok([])  # Mailchimp's URL validation
        form = parse_form(request.raw_body)
        kind = str_field(form, "type", "")
        fired_at = parse_naive_utc(form.get("fired_at"), "fired_at", FIRED_AT_FORMAT)
        data = obj_field(form, "data", "", required=True)

        def event(type_: str, email: str, traits: Mapping[str, Any] | None = None, **more: str) -> WebhookResult:
            properties = {
                **more,
                "mailchimp_type": kind,
                "list_id": opt_str(data, "list_id", "data"),
                "campaign_id": opt_str(data, "campaign_id", "data"),
                "reason": opt_str(data, "reason", "data"),
                "action": opt_str(data, "action", "data"),
            }
            vendor_id = content_event_id(self.name, kind, fired_at, email, form)
            return ok(
                [
                    make_event(
                        self.name,
                        vendor_id,
                        type_,
                        fired_at,
                        email=email,
                        properties=properties,
                        traits=traits,
                    )
                ]
            )

        if kind in ("subscribe", "profile"):
            email = normalize_email(data.get("email"), at("data", "email"))
            traits = self._merge_traits(data, setting_map(settings, "field_map"))
            return event(IDENTIFY, email, {**traits, "email": email})
        if kind == "upemail":
            email = normalize_email(data.get("new_email"), at("data", "new_email"))
            old = normalize_email(data.get("old_email"), at("data", "old_email"))
            # The old lead by its id, not the old address: erasing either lead must leave no copy of it.
            return event(IDENTIFY, email, {"email": email}, previous_lead_id=lead_id_for(old))
        if kind == "unsubscribe":
            return event(UNSUBSCRIBE, normalize_email(data.get("email"), at("data", "email")))
        if kind == "cleaned":
            # Mailchimp cleans an address for a hard bounce ("hard") or a complaint ("abuse").
            type_ = SPAM_REPORT if data.get("reason") == "abuse" else EMAIL_BOUNCE
            return event(type_, normalize_email(data.get("email"), at("data", "email")))
        return ok([], ignored=1)  # "campaign" (a send finished) and anything newer

    def _merge_traits(self, data: Mapping[str, Any], field_map: Mapping[str, Any]) -> dict[str, Any]:
        mapping = {**_MERGE_TRAITS, **{str(k).upper(): str(v) for k, v in field_map.items()}}
        traits: dict[str, Any] = {}
        for tag, value in obj_field(data, "merges", "data").items():
            if tag.upper() == "EMAIL" or value in ("", None):
                continue
            name = mapping.get(tag.upper(), tag)
            path = at(at("data", "merges"), tag)
            name, value = coerce_trait(name, value, path)
            traits[name] = value
        return traits
