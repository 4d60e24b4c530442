"""Who the lead is: its attributes (merged from traits, never erased by blanks) and the fit they score.

Every change to the attributes goes through ``merge_traits`` or ``set_email``: the fit is refreshed
from the attributes that changed (fit rules reading none of them keep their answer), and a lead's
stage plan, made from its attributes, is refreshed or dropped with them (``stages``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.attributes import ATTRIBUTES, LEAD_FIELDS, MAX_CUSTOM_NAME, verified
from chalicelib.emails import scored_domain
from chalicelib.events import data_size
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rules.conditions import Context
from chalicelib.state import LeadState

# What one lead's attributes may hold, whichever path they came by (a vendor's fields, a replay of
# events stored long ago): its item must stay within DynamoDB's 400 KB however often senders repeat.
MAX_CUSTOM = 100  # custom attributes kept per lead
MAX_TEXT = 500  # characters of a text value (longer ones are cut)
MAX_STRUCTURED = 1000  # bytes of a list or an object (as JSON; larger ones are not kept)
_NUMERIC = frozenset({"company_size", "annual_revenue"})


def new_lead(lead_id: str, email: str | None = None) -> LeadState:
    state = LeadState(lead_id=lead_id)
    if email:
        set_email(state, email)
    return state


def set_email(state: LeadState, email: str) -> None:
    """Give the lead its address; the fit (which reads the email domain) is recomputed at the next event."""
    _set_email(state, email)
    state.fit_version = -1  # (a full refit, which also drops the lead's stage plan)


def _set_email(state: LeadState, email: str) -> None:
    state.email = email
    state.attributes["email"] = email
    # A likely typo of a free-mail domain (gmial.com) is scored as that domain, before any rule (the
    # disposable list holds such typos) sees it; ``explain`` says so.
    state.attributes["email_domain"] = scored_domain(email)


def _clean(key: str, value: Any) -> Any:
    """The value as a lead keeps it; None when it is not kept (a list or object too large)."""
    if isinstance(value, (dict, list)):
        return value if data_size(value) <= MAX_STRUCTURED else None
    if isinstance(value, str):
        value = value.strip()[:MAX_TEXT]
        if key in _NUMERIC:
            try:
                number = float(value.replace(",", ""))
                return int(number) if number.is_integer() else number
            except ValueError:
                return value
    return value


LEAD_FIELDS_IN_ORDER = tuple(a.name for a in ATTRIBUTES)


def merge_traits(state: LeadState, traits: dict[str, Any] | Any, source: str | None = None, ts: float = 0.0
                 ) -> set[str]:
    """Fold attribute updates in (blank values never erase); returns the attributes that changed
    ("custom" for custom fields): the caller refits from them, and the stage plan is made again from them.

    A verified ``source`` replaces values; a public one (a web form anyone can post with anyone's
    address) fills blank attributes only. Each value set records its source and time in
    ``state.attribute_sources`` (custom fields as ``custom.<name>``). ``source`` None: verified,
    unrecorded (callers outside an event)."""
    changed: set[str] = set()
    attrs = state.attributes
    sources = state.attribute_sources
    trusted = verified(source)
    # One [source, time] for every value this call sets (never changed in place: replaced).
    entry: list[Any] = [source, ts]
    recording = source is not None
    # A verified source confirming a value a public form gave makes the value verified.
    vouches = trusted and recording and bool(sources)
    for key, raw in traits.items():
        if raw is None or raw == "" or key in ("email", "email_domain"):
            continue
        if key in LEAD_FIELDS:
            held = attrs.get(key)
            if not trusted and held is not None and held != "":
                continue  # a public form does not replace what is known
            if held == raw:  # unchanged (what is stored is already clean, so raw is too)
                if vouches:
                    _vouch(sources, key, entry)
                continue
            value = _clean(key, raw)
            if value is None:
                continue
            if held != value:
                attrs[key] = value
                changed.add(key)
                if recording:
                    sources[key] = entry
            elif vouches:
                _vouch(sources, key, entry)
        else:
            value = _clean(key, raw)
            if value is None or len(key) > MAX_CUSTOM_NAME:
                continue
            custom = attrs.setdefault("custom", {})
            if key in custom and not trusted:
                continue
            if custom.get(key) != value and (key in custom or len(custom) < MAX_CUSTOM):
                custom[key] = value
                changed.add("custom")
                if recording:
                    sources["custom." + key] = entry
    if state.email is None and isinstance(traits.get("email"), str) and "@" in traits["email"]:
        _set_email(state, traits["email"].strip().lower())
        changed.update(("email", "email_domain"))
    return changed


def unverified_fields(state: LeadState, fields: Iterable[str] = LEAD_FIELDS_IN_ORDER) -> list[str]:
    """Those of ``fields`` (by default every attribute of the vocabulary) whose value only a public
    form gave, unconfirmed by a verified source: anyone may post a form with anyone's address, so
    sales should know what is merely claimed."""
    sources = state.attribute_sources
    return [k for k in fields
            if state.attributes.get(k) not in (None, "") and k in sources and not verified(sources[k][0])]


def _vouch(sources: dict[str, list[Any]], key: str, entry: list[Any]) -> None:
    held = sources.get(key)
    if held is not None and not verified(held[0]):
        sources[key] = entry


def compute_fit(state: LeadState, rs: CompiledRuleset) -> None:
    """The fit afresh under ``rs``. The lead's stage plan goes with it: attributes may have changed in
    place (``set_email``) without anything naming them."""
    refit(state, rs, None)
    state.fit_version = rs.version
    rs.caches.leads.drop(state.lead_id)


def refit(state: LeadState, rs: CompiledRuleset, changed: set[str] | None) -> None:
    """The fit after the ``changed`` attributes changed (None: any)."""
    ctx = Context(state.attributes)
    memo = rs.caches.fit
    if memo is not None and memo.rules is rs.fit:  # (the memo stands for these rules only)
        hits = memo.hits(ctx)
    else:  # rules reading none of the changed attributes keep their answer
        held = set(state.fit_rules) if changed is not None else set()
        hits = [
            rule for rule in rs.fit
            if (rule.test(ctx) if changed is None or rule.reads is None or not rule.reads.isdisjoint(changed)
                else rule.id in held)
        ]
    state.fit = float(sum(rule.points for rule in hits))
    state.fit_rules = [rule.id for rule in hits]
