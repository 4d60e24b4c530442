"""Web form submissions (``POST /v1/forms/{form_id}``): plain HTML posts or JSON from ``fetch``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.attributes import UTM_KEYS, attribute_for, coerce
from chalicelib.emails import normalize_email
from chalicelib.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from chalicelib.events import Event, content_event_id
from chalicelib.rules.model import RuleSet

if TYPE_CHECKING:
    from chalicelib.leads import LeadService

MAX_BODY = 32 * 1024
MAX_FIELDS = 60
MAX_VALUE = 2000
HONEYPOTS = ("_gotcha", "_honeypot")  # hidden fields people never fill and naive bots always do



@dataclass
class Submission:
    event: Event | None  # None when the honeypot caught a bot: answer as usual, store nothing
    redirect: str | None = None
    is_browser_post: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _read_fields(content_type: str, raw_body: bytes) -> dict[str, Any]:
    if len(raw_body) > MAX_BODY:
        raise PayloadTooLarge(f"a form submission may be at most {MAX_BODY} bytes", details={"field": "body"})
    media = _media_type(content_type)
    if media == "application/x-www-form-urlencoded":
        try:
            text = raw_body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the form body is not UTF-8", details={"field": "body"}) from None
        try:
            parsed = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except ValueError:
            raise PayloadTooLarge(f"a form may have at most {MAX_FIELDS} fields", details={"field": "body"}) from None
        return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}
    if media == "application/json":
        from chalicelib.json_body import load_json

        data = load_json(raw_body)
        if not isinstance(data, dict):
            raise BadRequest("a JSON form submission must be an object of field names to values",
                             details={"field": "body"})
        return data
    raise UnsupportedMediaType(
        f"content type {media or '(none)'} is not accepted; send application/x-www-form-urlencoded or JSON",
        details={"field": "Content-Type"},
    )


def _check_values(fields: dict[str, Any]) -> None:
    if len(fields) > MAX_FIELDS:
        raise PayloadTooLarge(f"a form may have at most {MAX_FIELDS} fields", details={"field": "body"})
    for name, value in fields.items():
        if len(name) > 64:
            raise ValidationFailed(f"field name {name[:64]!r}… is longer than 64 characters", field=name[:64])
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is not None and not isinstance(v, (str, int, float, bool)):
                raise ValidationFailed(f"{name}: a form field must be text, a number or a list of them", field=name)
            if isinstance(v, str) and len(v) > MAX_VALUE:
                raise ValidationFailed(f"{name}: longer than {MAX_VALUE} characters", field=name)


def check_redirect(url: str, allowed: tuple[str, ...]) -> str:
    """Only redirect to pages we were told about: an open redirect is a phishing tool."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        raise ValidationFailed("_redirect is not a readable URL", field="_redirect") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed("_redirect must be an absolute http(s) URL", field="_redirect")
    origin = f"{parts.scheme}://{parts.netloc}"
    if not any(url.startswith(prefix) or origin == prefix.rstrip("/") for prefix in allowed):
        raise ValidationFailed(
            "_redirect is not on the allow-list (BATON_REDIRECT_ALLOWLIST)", field="_redirect",
            details={"origin": origin},
        )
    return url


def parse_submission(
    form_id: str,
    content_type: str,
    raw_body: bytes,
    ruleset: RuleSet,
    now: float,
    redirect_allowlist: tuple[str, ...] = (),
) -> Submission:
    spec = ruleset.forms.get(form_id)
    if spec is None and not ruleset.accept_unknown_forms:
        raise NotFound(f"unknown form {form_id!r}; the active rule set lists: {', '.join(sorted(ruleset.forms))}",
                       details={"field": "form_id"})
    fields = _read_fields(content_type, raw_body)
    _check_values(fields)
    browser = _media_type(content_type) == "application/x-www-form-urlencoded"
    redirect = fields.get("_redirect")
    if redirect is not None:
        if not isinstance(redirect, str):
            raise ValidationFailed("_redirect must be one URL", field="_redirect")
        redirect = check_redirect(redirect, redirect_allowlist)
    if any(fields.get(h) not in (None, "") for h in HONEYPOTS):
        return Submission(None, redirect, browser)
    traits: dict[str, Any] = {}
    email: Any = None
    for name, value in fields.items():
        if name.startswith("_") or name in ("anonymous_id", "event_id"):
            continue
        key = attribute_for(name) or name
        if key == "email":
            email = email or value
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list) else value
        traits[key] = coerce(key, text, name) if text not in (None, "") else text
    if "name" in traits and "first_name" not in traits and isinstance(traits["name"], str):
        first, _, last = traits.pop("name").strip().partition(" ")
        traits["first_name"], traits["last_name"] = first, last
    email = normalize_email(email)
    anonymous_id = fields.get("anonymous_id") or fields.get("_anonymous_id")
    offer = (spec.offer if spec else None) or form_id
    properties = {"form_id": form_id, "offer": offer, **{k: traits[k] for k in UTM_KEYS if k in traits}}
    event_type = spec.event if spec else "form_submitted"
    # A double-clicked submit arrives twice within seconds: same content in the same minute is one event.
    given_id = fields.get("_submission_id")
    event_id = (
        f"form:{given_id}" if isinstance(given_id, str) and given_id
        else content_event_id("form", event_type, now // 60 * 60, email, {**properties, **traits})
    )
    event = Event(
        event_id, event_type, now, email, anonymous_id if isinstance(anonymous_id, str) and anonymous_id else None,
        properties, traits, "form",
    )
    return Submission(event, redirect, browser, fields)


@dataclass(frozen=True)
class FormReply:
    body: dict[str, Any]
    redirect: str | None = None  # a browser's plain HTML post is sent on to this page (303)


def submit(
    form_id: str, content_type: str, raw_body: bytes, leads: LeadService, redirect_allowlist: tuple[str, ...] = (),
) -> FormReply:
    """A web form post, read against the active rule set's forms and scored like any event."""
    submission = parse_submission(form_id, content_type, raw_body, leads.rulesets.active().source, leads.clock(),
                                  redirect_allowlist)
    body: dict[str, Any] = {"ok": True}
    if submission.event is not None:
        result = leads.ingest([submission.event])
        body |= _form_answer(result["leads"][0])
    return FormReply(body, submission.redirect if submission.is_browser_post else None)


def _form_answer(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in ("lead_id", "stage", "fit", "grade", "engagement", "handed_to_sales")}



