"""Web form submissions (``POST /v1/forms/{form_id}``): plain HTML posts or JSON from ``fetch``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.attributes import (
    MAX_CUSTOM_NAME,
    UTM_KEYS,
    Declared,
    attribute_for,
    coerce,
    coerce_declared,
    custom_key,
)
from chalicelib.emails import normalize_email
from chalicelib.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from chalicelib.events import MAX_ID_LENGTH, Event, content_event_id, is_plain_id
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
        if len(name) > MAX_CUSTOM_NAME:
            raise ValidationFailed(f"field name {name[:MAX_CUSTOM_NAME]!r}… is longer than {MAX_CUSTOM_NAME} characters",
                                   field=name[:MAX_CUSTOM_NAME])
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is not None and not isinstance(v, (str, int, float, bool)):
                raise ValidationFailed(f"{name}: a form field must be text, a number or a list of them", field=name)
            if isinstance(v, str) and len(v) > MAX_VALUE:
                raise ValidationFailed(f"{name}: longer than {MAX_VALUE} characters", field=name)


def check_redirect(url: str, allowed: tuple[str, ...]) -> str:
    """Only redirect to pages we were told about: an open redirect is a phishing tool.

    The URL and each allowed prefix are compared parsed: the same scheme, host and port, then the
    path under the prefix's path. A string prefix let ``https://www.example.com.evil.net/`` and
    ``https://www.example.com@evil.net/`` through.
    """
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        # CR/LF would split the Location header (a 500, after the event was stored).
        raise ValidationFailed("_redirect may not contain spaces or control characters", field="_redirect")
    target = _url_parts(url)
    if target is None:
        raise ValidationFailed("_redirect must be an absolute http(s) URL without user info", field="_redirect")
    if not any(_under(target, prefix) for prefix in allowed):
        raise ValidationFailed(
            "_redirect is not on the allow-list (BATON_REDIRECT_ALLOWLIST)", field="_redirect",
            details={"origin": f"{target[0]}://{target[1]}:{target[2]}"},
        )
    return url


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _url_parts(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of an absolute http(s) URL; None when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unbalanced IPv6 bracket, a port out of range
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme], parts.path or "/"


def _under(target: tuple[str, str, int, str], prefix: str) -> bool:
    allowed = _url_parts(prefix)
    if allowed is None or target[:3] != allowed[:3]:
        return False
    base = allowed[3]
    return target[3] == base or target[3].startswith(base if base.endswith("/") else base + "/")


def parse_submission(
    form_id: str,
    content_type: str,
    raw_body: bytes,
    ruleset: RuleSet,
    now: float,
    redirect_allowlist: tuple[str, ...] = (),
    declared: dict[str, Declared] | None = None,
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
        key = attribute_for(name) or custom_key(name, name)
        if key == "email":
            email = email or value
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list) else value
        if text in (None, ""):
            traits[key] = text
        elif declared and key in declared:  # a custom attribute the rule set types
            traits[key] = coerce_declared(declared[key], text, name)
        else:
            traits[key] = coerce(key, text, name)
    if "name" in traits and "first_name" not in traits and isinstance(traits["name"], str):
        first, _, last = traits.pop("name").strip().partition(" ")
        traits["first_name"], traits["last_name"] = first, last
    email = normalize_email(email)
    anonymous_id = fields.get("anonymous_id") or fields.get("_anonymous_id")
    if anonymous_id is not None and (not isinstance(anonymous_id, str) or not is_plain_id(anonymous_id)):
        raise ValidationFailed(f"anonymous_id must be one id of at most {MAX_ID_LENGTH} printable characters",
                               field="anonymous_id")
    if anonymous_id and ":" in anonymous_id:
        # Vendors' visitors are "<source>:<id>" (segment:user:42, hubspot:123): an unverified form
        # naming one would have that vendor's signed events scored on the poster's lead.
        raise ValidationFailed("anonymous_id may not contain ':' (a vendor's namespaced visitor id)",
                               field="anonymous_id")
    offer = (spec.offer if spec else None) or form_id
    properties = {"form_id": form_id, "offer": offer, **{k: traits[k] for k in UTM_KEYS if k in traits}}
    event_type = spec.event if spec else "form_submitted"
    # A double-clicked submit arrives twice within seconds: same content in the same minute is one event.
    given_id = fields.get("_submission_id")
    if given_id not in (None, "") and (not isinstance(given_id, str) or not is_plain_id(given_id)):
        raise ValidationFailed(f"_submission_id must be one id of at most {MAX_ID_LENGTH} printable characters",
                               field="_submission_id")
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


THANKS = "Thank you: your submission was received."


def submit(
    form_id: str, content_type: str, raw_body: bytes, leads: LeadService, redirect_allowlist: tuple[str, ...] = (),
) -> FormReply:
    """A web form post, read against the active rule set's forms and scored like any event.

    The answer says the post arrived and nothing about the lead: anyone can post anyone's address,
    so a stage, a score or a hand-off in it would tell a stranger how sales sees that person."""
    active = leads.rulesets.active()
    submission = parse_submission(form_id, content_type, raw_body, active.source, leads.clock(), redirect_allowlist,
                                  active.declared)
    if submission.event is not None:
        leads.ingest([submission.event])
    body: dict[str, Any] = {"ok": True, "message": THANKS}
    if submission.redirect:
        body["redirect"] = submission.redirect
    return FormReply(body, submission.redirect if submission.is_browser_post else None)
