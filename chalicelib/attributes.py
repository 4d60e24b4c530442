"""The lead-attribute vocabulary: the attributes Baton knows, their types, the names people and
vendors give them, and how a value becomes the attribute's type.

Every path that writes attributes reads names and coerces values here (web forms, ``/v1/events``
and ``/v1/identify``, vendor webhooks, imported history), so ``company_size: "50-200"`` is 50
whichever way it arrives, and a value that cannot be read is refused naming its field. Rule sets
read the same list: a condition names one of these attributes directly, anything else lives
under ``custom.<name>``. A rule set may declare custom attributes with a type (``Declared``: text,
number, boolean, date, or enum with its values); their values are coerced here too
(``coerce_declared``), and custom attributes nobody declared pass through as sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.emails import normalize_email
from chalicelib.errors import ValidationFailed

AttributeType = Literal["text", "email", "integer", "number"]
DeclaredType = Literal["text", "number", "boolean", "date", "enum"]


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    type: AttributeType
    description: str
    aliases: tuple[str, ...] = ()  # other field names forms and exports use for it
    derived: bool = False  # set by Baton itself, never taken from a sender
    unit: str | None = None  # what one of a number is, where a threshold on it is written in words


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("email", "email", "the lead's address: it identifies the lead",
              ("e_mail", "email_address", "emailaddress")),
    Attribute("email_domain", "text", "the part of the address after @", derived=True),
    Attribute("first_name", "text", "given name", ("firstname", "fname", "given_name")),
    Attribute("last_name", "text", "family name", ("lastname", "lname", "family_name", "surname")),
    Attribute("company", "text", "the organisation",
              ("company_name", "organization", "organisation")),
    Attribute("job_title", "text", "job title", ("jobtitle", "title", "role")),
    Attribute("seniority", "text", "seniority level (e.g. executive, manager)"),
    Attribute("department", "text", "department or function"),
    Attribute("industry", "text", "the organisation's industry"),
    Attribute("company_size", "integer",
              "employees; a range such as 50-200 or 1000+ counts as its lower bound",
              ("employees", "num_employees", "numemployees", "number_of_employees"), unit="employees"),
    Attribute("annual_revenue", "number", "the organisation's yearly revenue", ("revenue",)),
    Attribute("country", "text", "country name or ISO code"),
    Attribute("phone", "text", "phone number", ("phone_number", "tel")),
    Attribute("website", "text", "the organisation's website"),
    Attribute("lead_source", "text", "where the lead came from, as the team names it"),
    Attribute("utm_source", "text", "campaign source (utm_source)"),
    Attribute("utm_medium", "text", "campaign medium (utm_medium)"),
    Attribute("utm_campaign", "text", "campaign name (utm_campaign)"),
    Attribute("utm_term", "text", "campaign term (utm_term)"),
    Attribute("utm_content", "text", "campaign content (utm_content)"),
)

# Sources nobody vouches for: a public web form can be posted by anyone, with anyone's address. What
# they send fills attributes that are blank and never replaces a value (``engine.fit.merge_traits``);
# every other source is verified (a vendor's signature, the Mailchimp key, the ingest or admin
# token, an import by an operator) and replaces values.
PUBLIC_SOURCES = frozenset({"form"})


def verified(source: str | None) -> bool:
    """Whether attributes from ``source`` replace values (a public form's only fill blanks)."""
    return source not in PUBLIC_SOURCES


BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}
# The attributes a rule condition may name directly (anything else is ``custom.<name>``).
LEAD_FIELDS = frozenset(BY_NAME)
# The longest name a custom attribute may have (a form's field name, an API trait's; a longer one a
# vendor sends is not kept: every name is stored with the lead, twice).
MAX_CUSTOM_NAME = 64
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
_ALIASES: dict[str, str] = {
    alias: a.name for a in ATTRIBUTES if not a.derived for alias in (a.name, *a.aliases)
}
_SEPARATORS = re.compile(r"[\s\-]+")
_RANGE = re.compile(r"(\d+)-\d+")


def attribute_for(field_name: str) -> str | None:
    """The attribute a form or export field names (``Company Name`` -> ``company``), or None."""
    return _ALIASES.get(_SEPARATORS.sub("_", field_name.strip().lower()))


def coerce(name: str, value: Any, path: str) -> Any:
    """``value`` as attribute ``name``'s type; a ``ValidationFailed`` naming ``path`` when it cannot
    be. Text attributes and custom ones pass through unchanged."""
    attribute = BY_NAME.get(name)
    if attribute is None or attribute.type == "text":
        return value
    if attribute.type == "email":
        if not isinstance(value, str):
            raise ValidationFailed(f"{path} must be an email address", field=path)
        return normalize_email(value, path)
    if attribute.type == "integer":
        size = whole_number(value)
        if size is None:
            raise ValidationFailed(
                f"{path} must be a whole number (a range such as 50-200 or 1000+ counts as its lower bound), "
                f"got {value!r:.40}", field=path)
        return size
    amount = non_negative_number(value)
    if amount is None:
        raise ValidationFailed(f"{path} must be a number, got {value!r:.40}", field=path)
    return amount


def custom_key(key: str, path: str) -> str:
    """A trait's name as a lead stores it: a custom attribute named as rules read it (``custom.plan``)
    is ``plan``, kept with the lead's other custom attributes like any name Baton does not know. A
    name of Baton's own under ``custom.`` is refused, naming ``path``: it would be read as Baton's own."""
    if not key.startswith("custom."):
        return key
    name = key.removeprefix("custom.")
    if name in LEAD_FIELDS:
        how = "Baton sets it from the email" if BY_NAME[name].derived else f"send it as {name}"
        raise ValidationFailed(f"{path}: {name} is Baton's own attribute, not a custom one: {how}", field=path)
    if not name or name == "custom":
        raise ValidationFailed(f"{path}: not a custom attribute name (custom.<name>)", field=path)
    return name


def coerce_trait(name: str, value: Any, path: str) -> tuple[str, Any]:
    """One trait a vendor's field gives, as a lead stores it: its name (``custom_key``: a field map
    may name ``custom.plan``, as rules read it) and its value coerced (``coerce``)."""
    key = custom_key(name, path)
    return key, coerce(key, value, path)


def stored_names(traits: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``traits`` under the names a lead stores them by (``custom_key``; a ``custom`` object's
    members as custom attributes), values as they are: the traits of a hand-written history are
    named as the live paths name them. A name given twice keeps the later value."""
    prefix = f"{path}." if path else ""
    return {custom_key(field, prefix + field): value for field, value in _flattened(traits, prefix)}


def coerce_all(traits: dict[str, Any], path: str, declared: dict[str, Declared] | None = None) -> dict[str, Any]:
    """``traits`` as a lead stores them: Baton's own attributes coerced to their types, custom ones
    under their stored names (sent as ``plan``, ``custom.plan`` or ``custom: {plan: ...}``:
    ``custom_key``) and coerced to their ``declared`` types. Errors name the field as sent (``path``
    prefixes it); a name given twice with two values is refused."""
    prefix = f"{path}." if path else ""
    out: dict[str, Any] = {}
    for field, value in _flattened(traits, prefix):
        key = custom_key(field, prefix + field)
        if len(key) > MAX_CUSTOM_NAME:
            cut = prefix + field[:len(field) - len(key) + MAX_CUSTOM_NAME]  # (custom. kept, the name cut)
            raise ValidationFailed(f"{cut}…: a custom attribute's name is at most {MAX_CUSTOM_NAME} characters",
                                   field=cut)
        if value in (None, ""):  # (blank: not given; it never erases, nor clashes with a value)
            out.setdefault(key, value)
            continue
        value = (coerce_declared(declared[key], value, prefix + field) if declared and key in declared
                 else coerce(key, value, prefix + field))
        if out.get(key) not in (None, "", value):
            raise ValidationFailed(f"{prefix}{field}: {key} is given twice, with two values", field=prefix + field)
        out[key] = value
    return out


def _flattened(traits: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in traits.items():
        if key != "custom":
            yield key, value
        elif isinstance(value, dict):
            yield from ((f"custom.{sub}", v) for sub, v in value.items())
        elif value is not None:
            raise ValidationFailed(f"{prefix}custom must be an object of custom attributes, e.g. {{\"plan\": \"pro\"}}",
                                   field=f"{prefix}custom")


def whole_number(value: Any) -> int | None:
    """A count as sent by forms and CRMs: 250, 250.0, "1,000", "50-200" (50), "1000+" (1000)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() and value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.replace(",", "").replace(" ", "").rstrip("+")
    if match := _RANGE.fullmatch(text):
        text = match.group(1)
    return int(text) if text.isdigit() and len(text) <= 15 else None


def non_negative_number(value: Any) -> float | None:
    """An amount as sent by forms and CRMs: 1200, 1200.5, "$1,200.50"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.replace(",", "").replace("$", "").replace(" ", "")
        if not re.fullmatch(r"\d{1,18}(\.\d+)?", text):
            return None
        number = float(text)
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


# -- custom attributes a rule set declares -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Declared:
    """A custom attribute as a rule set declares it (``custom.<name>``: ``name`` is the part after)."""

    name: str
    type: DeclaredType
    values: tuple[str, ...] = ()  # an enum's values, as declared


_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_NUMBER = re.compile(r"-?\d{1,18}(\.\d+)?")


def number(value: Any) -> int | float | None:
    """A number as sent: 12, -3.5, "1,200", "$1,200.50", " 7 " (whole numbers stay int); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return (int(value) if value.is_integer() else value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.replace(",", "").replace("$", "").replace(" ", "")
    if not _NUMBER.fullmatch(text):
        return None
    parsed = float(text)
    return int(parsed) if parsed.is_integer() and abs(parsed) < 2**53 else parsed


def boolean(value: Any) -> bool | None:
    """true/false, t/f, yes/no, y/n, 1/0, on/off (a checked HTML checkbox sends "on"), any case; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        folded = value.strip().casefold()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    return None


def iso_date(value: Any) -> str | None:
    """A date as ``YYYY-MM-DD`` (UTC) from ISO 8601 text (a date or a date and time); else None."""
    from datetime import datetime, timezone

    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc)
    return parsed.date().isoformat()


def enum_value(value: Any, values: tuple[str, ...]) -> str | None:
    """The declared value ``value`` names (case and blanks ignored), or None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    folded = str(value).strip().casefold()
    for option in values:
        if option.casefold() == folded:
            return option
    return None


def coerce_declared(declared: Declared, value: Any, path: str) -> Any:
    """``value`` as the declared attribute's type; a ``ValidationFailed`` naming ``path`` when it cannot be."""
    kind = declared.type
    if kind == "text":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValidationFailed(f"{path} must be text, got {value!r:.40}", field=path)
    result: Any
    if kind == "number":
        result, wanted = number(value), "a number"
    elif kind == "boolean":
        result, wanted = boolean(value), "true or false (yes/no, 1/0, on/off)"
    elif kind == "date":
        result, wanted = iso_date(value), "a date (ISO 8601, e.g. 2024-05-31)"
    else:
        import difflib  # (only to word a refusal)

        result = enum_value(value, declared.values)
        close = difflib.get_close_matches(str(value), declared.values, n=1) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        wanted = f"one of {', '.join(repr(v) for v in declared.values[:12])}{hint}"
    if result is None:
        raise ValidationFailed(f"{path} must be {wanted}, got {value!r:.40}", field=path)
    return result


def coerce_traits(traits: dict[str, Any], declared: dict[str, Declared], path: str) -> dict[str, Any]:
    """Traits with the declared custom attributes coerced (others as they are: already coerced by
    ``coerce_all`` where they are Baton's own, kept as sent where nobody declared them)."""
    if not declared or not any(k in declared for k in traits):
        return traits
    prefix = f"{path}." if path else ""
    return {k: coerce_declared(declared[k], v, prefix + k) if k in declared and v not in (None, "") else v
            for k, v in traits.items()}
