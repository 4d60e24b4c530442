"""Strict, path-aware reading of vendor payloads, shared by the sources.

Every helper either returns a value of the expected shape or raises ``BadRequest`` (the body is
not a form; JSON bodies are read by ``chalicelib.json_body``) or ``ValidationFailed`` naming the
JSON path (``form_response.answers[2]``), so no ``KeyError`` / ``TypeError`` ever escapes a parser.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from chalicelib.attributes import UTM_KEYS
from chalicelib.emails import normalize_email as shared_normalize_email
from chalicelib.errors import BadRequest, Misconfigured, ValidationFailed
from chalicelib.events import MAX_DATA_BYTES, Event, bounded_id, data_size

_MAX_FORM_DEPTH = 8
# Epoch seconds accepted as an event time: 1970 .. year 3000 (keeps datetime arithmetic safe).
_MAX_EPOCH = 32503680000.0
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})$")


# ---------------------------------------------------------------- form bodies


_FORM_KEY = re.compile(r"^([^\[\]]*)((?:\[[^\[\]]*\])+)$")
_FORM_PART = re.compile(r"\[([^\[\]]*)\]")


def _form_key_parts(key: str) -> list[str]:
    match = _FORM_KEY.match(key)
    if match is None:
        return [key]
    return [match.group(1), *_FORM_PART.findall(match.group(2))]


def parse_form(raw: bytes) -> dict[str, Any]:
    """An urlencoded body with PHP-style keys (``data[merges][FNAME]``) as nested dicts."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("form body is not UTF-8") from None
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=1000)
    except ValueError as exc:
        raise BadRequest(f"form body is not valid: {exc}") from None
    result: dict[str, Any] = {}
    for key, value in pairs:
        parts = _form_key_parts(key)
        if len(parts) > _MAX_FORM_DEPTH:
            raise ValidationFailed(f"form field {key!r} is nested too deeply", field=key)
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValidationFailed(f"form field {key!r} conflicts with another field", field=key)
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise ValidationFailed(f"form field {key!r} conflicts with another field", field=key)
        node.setdefault(parts[-1], value)  # a repeated key keeps its first value
    return result


# ---------------------------------------------------------------- shapes


def at(path: str, key: str | int) -> str:
    """Extend a JSON path: at("a", "b") == "a.b", at("a", 0) == "a[0]", at("", "b") == "b"."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def as_object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{path or 'body'} must be a JSON object", field=path or "body")
    return value


def as_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationFailed(f"{path or 'body'} must be a JSON array", field=path or "body")
    return value


def obj_field(data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> Mapping[str, Any]:
    """A nested object; an absent/null optional one reads as empty."""
    value = data.get(key)
    if value is None:
        if required:
            raise ValidationFailed(f"{at(path, key)} is required", field=at(path, key))
        return {}
    return as_object(value, at(path, key))


def str_field(data: Mapping[str, Any], key: str, path: str) -> str:
    """A required non-blank string (numbers are accepted as ids and turned into text)."""
    value = opt_str(data, key, path)
    if value is None:
        raise ValidationFailed(f"{at(path, key)} is required", field=at(path, key))
    return value


def opt_str(data: Mapping[str, Any], key: str, path: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationFailed(f"{at(path, key)} must be a string", field=at(path, key))
    text = str(value).strip()
    return text or None


def int_field(data: Mapping[str, Any], key: str, path: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{at(path, key)} must be an integer", field=at(path, key))
    return value


# ---------------------------------------------------------------- time


def parse_iso8601(value: Any, path: str) -> float:
    """Strict ISO 8601 date-time with ``Z`` or an offset (``2018-01-18T18:17:02Z``) -> epoch s."""
    match = _ISO.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationFailed(
            f"{path} must be an ISO 8601 date-time with a time zone, got {value!r:.60}", field=path
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    try:
        if zone in ("Z", "z"):
            tz = UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            if offset >= timedelta(hours=24) or int(digits[2:]) >= 60:
                raise ValueError("offset out of range")
            tz = timezone(sign * offset)
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz
        )
    except ValueError:
        raise ValidationFailed(f"{path} is not a valid date-time: {value!r:.60}", field=path) from None
    return check_epoch(moment.timestamp(), path)


def parse_naive_utc(value: Any, path: str, fmt: str) -> float:
    """A vendor's own zone-less format (Mailchimp's ``2009-03-26 21:35:57``), taken as UTC."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{path} must be a date-time string", field=path)
    try:
        moment = datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
    except ValueError:
        raise ValidationFailed(f"{path} must look like {fmt!r}, got {value!r:.60}", field=path) from None
    return check_epoch(moment.timestamp(), path)


def epoch_number(value: Any, path: str, *, millis: bool = False) -> float:
    """A JSON number holding epoch seconds (or milliseconds) -> epoch seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationFailed(f"{path} must be a number (epoch {'ms' if millis else 's'})", field=path)
    seconds = value / 1000.0 if millis else float(value)
    return check_epoch(seconds, path)


def check_epoch(seconds: float, path: str) -> float:
    if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_EPOCH:
        raise ValidationFailed(f"{path} is out of range", field=path)
    return seconds


# ---------------------------------------------------------------- identity and traits


def normalize_email(value: Any, path: str) -> str:
    """The same normalisation as every other entry point (leads are keyed by it)."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{path} must be an email address", field=path)
    return shared_normalize_email(value, path)


def utm_from(data: Mapping[str, Any]) -> dict[str, str]:
    """The ``utm_*`` string values of a mapping (hidden fields, tracking objects)."""
    return {key: value for key in UTM_KEYS if isinstance(value := data.get(key), str) and value}


def compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Drop absent values so events carry only what the vendor said."""
    return {key: value for key, value in data.items() if value is not None and value != ""}


def bounded(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` within ``MAX_DATA_BYTES`` (the API's limit): when it is larger, its largest values are
    left out, so the event is kept with everything else the vendor said. A vendor's webhook body may
    be 1 MB; a real sender's event stays far below. (A lead keeps 500 characters of a text anyway.)"""
    size = data_size(data)
    if size <= MAX_DATA_BYTES:
        return data
    sizes = {key: data_size(key) + 1 + data_size(value) + 1 for key, value in data.items()}
    kept = dict(data)
    for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if size <= MAX_DATA_BYTES:
            break
        del kept[key]
        size -= sizes[key]
    return kept


def make_event(
    source: str,
    vendor_id: str,
    type_: str,
    ts: float,
    *,
    email: str | None = None,
    anonymous_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    traits: Mapping[str, Any] | None = None,
) -> Event:
    return Event(
        event_id=f"{source}:{bounded_id(vendor_id)}",
        type=type_,
        ts=ts,
        email=email,
        anonymous_id=bounded_id(anonymous_id) if anonymous_id else None,
        properties=bounded(compact(properties or {})),
        traits=bounded(dict(traits or {})),
        source=source,
    )


# ---------------------------------------------------------------- settings


def setting_map(settings: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A mapping-valued setting. A wrongly typed setting is our misconfiguration, not the
    sender's fault, hence ``Misconfigured`` (500) rather than a 4xx."""
    value = settings.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Misconfigured(f"source setting {key!r} must be an object", details={"setting": key})
    return value


def setting_set(settings: Mapping[str, Any], key: str) -> frozenset[str]:
    value = settings.get(key)
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise Misconfigured(f"source setting {key!r} must be a list", details={"setting": key})
    return frozenset(str(item) for item in value)
