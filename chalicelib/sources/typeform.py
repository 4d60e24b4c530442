"""Typeform ``form_response`` webhooks.

Signature (Typeform "Secure your webhooks"): ``Typeform-Signature: sha256=<base64 HMAC-SHA256 of
the raw body keyed with the webhook secret>``. Typeform sends no timestamp, so there is no replay
window; duplicates are absorbed by the ``typeform:{event_id}`` dedupe key.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from chalicelib.attributes import coerce_trait
from chalicelib.errors import Unauthorized, ValidationFailed
from chalicelib.events import DEMO_REQUEST, FORM_SUBMITTED
from chalicelib.json_body import load_json
from chalicelib.signing import check_signature, hmac_digest, require_header

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
    setting_set,
    str_field,
    utm_from,
)

SIGNATURE_HEADER = "Typeform-Signature"

# Where each answer type keeps its value (Typeform webhook payload reference).
_VALUE_KEYS = (
    "text",
    "email",
    "phone_number",
    "number",
    "boolean",
    "date",
    "url",
    "file_url",
    "payment",
)


def _answer_value(answer: Mapping[str, Any], path: str) -> Any:
    kind = answer.get("type")
    if kind == "choice":
        choice = obj_field(answer, "choice", path)
        return choice.get("label") if choice.get("label") is not None else choice.get("other")
    if kind == "choices":
        choices = obj_field(answer, "choices", path)
        labels = list(as_list(choices.get("labels") or [], at(at(path, "choices"), "labels")))
        if choices.get("other") is not None:
            labels.append(choices["other"])
        return labels
    if isinstance(kind, str) and kind in _VALUE_KEYS:
        return answer.get(kind)
    return None  # unknown answer types carry nothing Baton can score


def _trait_name(ref: str, answer_type: Any, field_map: Mapping[str, Any]) -> str:
    if ref in field_map:
        return str(field_map[ref])
    if answer_type == "email":
        return "email"
    if answer_type == "phone_number":
        return "phone"
    return ref  # a ref equal to a lead trait name (company, job_title...) maps onto it as is


class TypeformSource:
    name = "typeform"

    def verify(self, request: WebhookRequest, secret: str, now: float) -> None:
        header = require_header(request.headers, SIGNATURE_HEADER)
        scheme, _, _ = header.partition("=")
        if scheme != "sha256":
            raise Unauthorized(
                f"bad signature in {SIGNATURE_HEADER} header: expected 'sha256=...'",
                details={"header": SIGNATURE_HEADER},
            )
        digest = base64.b64encode(hmac_digest("sha256", secret, request.raw_body)).decode("ascii")
        check_signature(f"sha256={digest}", header, SIGNATURE_HEADER)

    def parse(self, request: WebhookRequest, settings: Mapping[str, Any]) -> WebhookResult:
        body = as_object(load_json(request.raw_body), "")
        if body.get("event_type", "form_response") != "form_response":
            return ok([], ignored=1)  # e.g. partial responses: not a submission
        event_id = str_field(body, "event_id", "")
        response = obj_field(body, "form_response", "", required=True)
        path = "form_response"
        form_id = str_field(response, "form_id", path)
        ts = parse_iso8601(response.get("submitted_at"), at(path, "submitted_at"))
        definition = obj_field(response, "definition", path)
        hidden = obj_field(response, "hidden", path)

        traits = self._traits(response, definition, setting_map(settings, "field_map"))
        if "email" not in traits and hidden.get("email"):
            traits["email"] = normalize_email(hidden["email"], at(at(path, "hidden"), "email"))
        if "email" not in traits:
            raise ValidationFailed(
                "form_response.answers holds no email answer (nor a hidden 'email' field)",
                field="form_response.answers",
            )

        offers = setting_map(settings, "offers")
        properties: dict[str, Any] = {
            "form_id": form_id,
            "form_title": opt_str(definition, "title", at(path, "definition")),
            "offer": str(offers.get(form_id, form_id)),
            "response_token": opt_str(response, "token", path),
            "calculated_score": obj_field(response, "calculated", path).get("score"),
            **{key: value for key, value in hidden.items() if key != "email"},
        }
        for key, value in utm_from(hidden).items():
            traits.setdefault(key, value)  # first-touch attribution carried by the form
        type_ = DEMO_REQUEST if form_id in setting_set(settings, "demo_forms") else FORM_SUBMITTED
        event = make_event(
            self.name, event_id, type_, ts, email=traits["email"], properties=properties, traits=traits
        )
        return ok([event])

    def _traits(
        self, response: Mapping[str, Any], definition: Mapping[str, Any], field_map: Mapping[str, Any]
    ) -> dict[str, Any]:
        refs: dict[str, str] = {}
        for i, field in enumerate(as_list(definition.get("fields") or [], "form_response.definition.fields")):
            fpath = at("form_response.definition.fields", i)
            field = as_object(field, fpath)
            field_id, ref = opt_str(field, "id", fpath), opt_str(field, "ref", fpath)
            if field_id and ref:
                refs[field_id] = ref

        traits: dict[str, Any] = {}
        for i, answer in enumerate(as_list(response.get("answers") or [], "form_response.answers")):
            apath = at("form_response.answers", i)
            answer = as_object(answer, apath)
            field = obj_field(answer, "field", apath, required=True)
            fpath = at(apath, "field")
            field_id = opt_str(field, "id", fpath)
            ref = opt_str(field, "ref", fpath) or refs.get(field_id or "") or field_id
            if ref is None:
                raise ValidationFailed(f"{fpath} needs an id or a ref", field=fpath)
            value = _answer_value(answer, apath)
            if value is None:
                continue
            name = _trait_name(ref, answer.get("type"), field_map)
            value_path = at(apath, str(answer.get("type")))
            name, value = coerce_trait(name, value, value_path)
            traits.setdefault(name, value)  # the first answer for a trait wins
        return traits
