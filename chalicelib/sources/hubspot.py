"""HubSpot app webhooks (contact subscriptions), validated with the v3 request signature.

v3 (HubSpot "Validating requests"): ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(app client
secret, method + uri + body + timestamp)), ``X-HubSpot-Request-Timestamp`` in epoch milliseconds;
reject requests older than 5 minutes. In the URI, the percent-encodings listed by HubSpot are
decoded before signing (and nothing else); the ``?`` opening the query string is already literal.

HubSpot identifies contacts by ``objectId``, never by email, so events carry
``anonymous_id="hubspot:{objectId}"``; a change of the ``email`` property links the two.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from chalicelib.attributes import coerce_trait
from chalicelib.events import IDENTIFY
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
    epoch_number,
    int_field,
    make_event,
    normalize_email,
    opt_str,
    setting_map,
    str_field,
)

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
TOLERANCE_SECONDS = 300.0

# HubSpot's table of characters to decode in the request URI before computing the v3 signature.
_DECODED = {
    "3A": ":",
    "2F": "/",
    "3F": "?",
    "40": "@",
    "21": "!",
    "24": "$",
    "27": "'",
    "28": "(",
    "29": ")",
    "2A": "*",
    "2C": ",",
    "3B": ";",
}
_ENCODED = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)

# HubSpot default contact properties -> Baton lead traits; settings["field_map"] adds or overrides.
_PROPERTY_TRAITS = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "company": "company",
    "jobtitle": "job_title",
    "industry": "industry",
    "country": "country",
    "phone": "phone",
    "mobilephone": "phone",
    "website": "website",
    "numemployees": "company_size",
    "annualrevenue": "annual_revenue",
    "hs_analytics_source": "lead_source",
    "hs_seniority": "seniority",
    "hs_job_function": "department",
}


def decode_uri(uri: str) -> str:
    """The request URI as HubSpot signs it."""
    return _ENCODED.sub(lambda m: _DECODED[m.group(1).upper()], uri)


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = (
        method.upper().encode("utf-8") + decode_uri(uri).encode("utf-8") + body + timestamp.encode("utf-8")
    )
    return base64.b64encode(hmac_digest("sha256", secret, message)).decode("ascii")


class HubSpotSource:
    name = "hubspot"

    def verify(self, request: WebhookRequest, secret: str, now: float) -> None:
        signature = require_header(request.headers, SIGNATURE_HEADER)
        timestamp = require_header(request.headers, TIMESTAMP_HEADER)
        check_window(
            parse_unix_timestamp(timestamp, TIMESTAMP_HEADER, millis=True),
            now,
            TOLERANCE_SECONDS,
            TIMESTAMP_HEADER,
        )
        expected = signature_v3(secret, request.method, request.url, request.raw_body, timestamp)
        check_signature(expected, signature, SIGNATURE_HEADER)

    def parse(self, request: WebhookRequest, settings: Mapping[str, Any]) -> WebhookResult:
        mapping = {
            **_PROPERTY_TRAITS,
            **{str(k): str(v) for k, v in setting_map(settings, "field_map").items()},
        }
        events = []
        ignored = 0
        for i, item in enumerate(as_list(load_json(request.raw_body), "")):
            path = at("", i)
            item = as_object(item, path)
            # The docs' example names the field eventType; live deliveries say subscriptionType.
            kind = opt_str(item, "subscriptionType", path) or str_field(item, "eventType", path)
            if kind not in ("contact.creation", "contact.propertyChange"):
                ignored += 1  # deletions, merges, other objects: nothing to score
                continue
            event_id = int_field(item, "eventId", path)
            object_id = int_field(item, "objectId", path)
            ts = epoch_number(item.get("occurredAt"), at(path, "occurredAt"), millis=True)
            traits: dict[str, Any] = {}
            email = None
            properties = {
                "subscription_type": kind,
                "portal_id": item.get("portalId"),
                "change_source": opt_str(item, "changeSource", path),
            }
            if kind == "contact.propertyChange":
                prop = str_field(item, "propertyName", path)
                value = item.get("propertyValue")
                if value is None or value == "":
                    ignored += 1  # a cleared property: nothing to learn
                    continue
                trait = mapping.get(prop, prop)
                vpath = at(path, "propertyValue")
                if trait == "email":
                    email = normalize_email(value, vpath)
                name, value = coerce_trait(trait, value, vpath)
                traits[name] = value
                properties["property_name"] = prop
            events.append(
                make_event(
                    self.name,
                    str(event_id),
                    IDENTIFY,
                    ts,
                    email=email,
                    anonymous_id=f"hubspot:{object_id}",
                    properties=properties,
                    traits=traits,
                )
            )
        return ok(events, ignored=ignored)
