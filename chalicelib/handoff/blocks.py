"""Block Kit messages for Baton. Pure functions: no I/O, no clock, no Slack SDK.

Every string that comes from a lead (a web form, a vendor webhook) is untrusted. It is escaped
with :func:`escape` (Slack's control characters ``&``, ``<``, ``>``) in *every* text object,
plain or mrkdwn, and mrkdwn objects carry ``verbatim: true`` so Slack does not auto-link or
auto-mention anything in them. A lead named ``<!channel>`` therefore shows as that text and
notifies nobody. Only Baton's own tokens (``<!date^…>``, ``<@U…>``) are left for Slack to parse.

Texts are measured in UTF-16 code units (at least Slack's own count) and truncated with "…"
to Block Kit's limits (see :data:`LIMITS`); :func:`check_limits` verifies a whole message.

Builders that create a message return ``(fallback_text, blocks)``: the fallback is what
notifications and screen readers show, and it is escaped as well.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any, Iterable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib.display import score_text
from chalicelib.errors import BadRequest
from chalicelib.handoff.message import HandoffMessage

Block = dict[str, Any]

# Block Kit limits (docs.slack.dev/reference/block-kit), checked by check_limits().
LIMITS = {
    "blocks": 50,
    "block_id": 255,
    "header_text": 150,
    "section_text": 3000,
    "section_fields": 10,
    "field_text": 2000,
    "context_elements": 10,
    "context_text": 3000,
    "actions_elements": 25,
    "action_id": 255,
    "button_text": 75,
    "button_value": 2000,
    "button_url": 3000,
    "select_placeholder": 150,
    "select_options": 100,
    "option_text": 75,
    "option_value": 150,
}

# Limit for the top-level fallback text: Slack accepts far more, a notification shows far less.
FALLBACK_TEXT_LIMIT = 3000

ACTION_ACCEPT = "baton_accept"
ACTION_RECYCLE = "baton_recycle"
ACTION_REJECT = "baton_reject"
ACTIONS_BLOCK_ID = "baton_actions"
OUTCOME_BLOCK_ID = "baton_outcome"
ACTION_VIEW_LEAD = "baton_view_lead"  # a link button: Slack opens the URL and still posts the click
LEAD_LINK_BLOCK_ID = "baton_lead_link"

# Reject takes a reason: code (stored, sent in the option value) -> label (shown).
REJECT_REASONS: dict[str, str] = {
    "not_fit": "Not a fit",
    "no_budget": "No budget",
    "bad_timing": "Bad timing",
    "wrong_contact": "Wrong contact",
    "duplicate": "Duplicate",
    "other": "Other",
}

Action = Literal["accept", "recycle", "reject"]
ACTION_IDS: dict[str, Action] = {ACTION_ACCEPT: "accept", ACTION_RECYCLE: "recycle", ACTION_REJECT: "reject"}
_OUTCOME_WORDING: dict[str, tuple[str, str]] = {
    "accept": ("\u2705", "Accepted"),
    "recycle": ("\u267b\ufe0f", "Recycled"),
    "reject": ("\u274c", "Rejected"),
}

_TOP_REASONS = 5
_KEY_EVENTS = 5
_DIGEST_SHOWN = 20
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_DASH = "\u2014"


# --- text primitives -------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape Slack's control characters so the text renders literally and triggers nothing."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_length(text: str) -> int:
    """Length as Slack's (JavaScript) limits count it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def truncate(text: str, limit: int) -> str:
    """Cut an already escaped text to ``limit`` units, ending in "…".

    Never leaves half an entity (``&am``) or half a token (``<!date^…``) behind: a dangling
    ``<`` could otherwise pair with Slack's parsing of whatever follows.
    """
    if text_length(text) <= limit:
        return text
    budget = limit - 1
    kept: list[str] = []
    used = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > budget:
            break
        kept.append(ch)
        used += width
    cut = "".join(kept)
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    lt = cut.rfind("<")
    if lt != -1 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return cut.rstrip() + "\u2026"


# Slack's mrkdwn has no escape for its formatting characters: in lead-supplied text they become
# look-alikes that format nothing (a company "*FREE* ~Acme~" shows as ＊FREE＊ ～Acme～).
_INERT = str.maketrans({"*": "\uff0a", "_": "\uff3f", "~": "\uff5e", "`": "\uff40"})
# Bidirectional controls reorder what follows them: U+202E shows "moc.live" for "evil.com".
_BIDI = dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))


def _one_line(text: str) -> str:
    # Line breaks and control characters in a name would break the layout (and fake lines).
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text.translate(_BIDI))
    return " ".join(cleaned.split())


def _safe(value: object, limit: int = 200, *, inert: bool = True) -> str:
    """An untrusted value as escaped single-line text of at most ``limit`` units, its formatting
    characters made inert. ``inert=False`` keeps them for what is copied as it is shown (an email
    address, an id in a code span), where Slack formats nothing anyway."""
    if value is None:
        return ""
    text = _one_line(str(value))
    return truncate(escape(text.translate(_INERT) if inert else text), limit)


def _nonempty(text: str) -> str:
    # Slack rejects empty text objects (minimum length 1).
    return text if text.strip() else _DASH


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _nonempty(truncate(text, limit)), "emoji": True}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _nonempty(truncate(text, limit)), "verbatim": True}


def _number(value: float) -> str:
    rounded = round(float(value), 1)
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:.1f}"


def _signed(value: float) -> str:
    text = _number(value)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def _hours(value: float) -> str:
    return f"{_number(value)} h"


def slack_date(at: datetime) -> str:
    """Slack date token: shown in each reader's time zone, with a UTC fallback."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    utc = at.astimezone(timezone.utc)
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{utc:%Y-%m-%d %H:%M} UTC>"


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text, LIMITS["section_text"])}


def _context(*texts: str, block_id: str | None = None) -> Block:
    block: Block = {
        "type": "context",
        "elements": [_mrkdwn(t, LIMITS["context_text"]) for t in texts[: LIMITS["context_elements"]]],
    }
    if block_id:
        block["block_id"] = block_id
    return block


def _sections_from_lines(title: str, lines: Sequence[str]) -> list[Block]:
    """Bulleted lines under a bold title, split over sections so none exceeds 3000 units."""
    blocks: list[Block] = []
    current = f"*{title}*"
    for line in lines:
        candidate = f"{current}\n{line}"
        if text_length(candidate) > LIMITS["section_text"] and current:
            blocks.append(_section(current))
            current = line
        else:
            current = candidate
    if current:
        blocks.append(_section(current))
    return blocks


# --- the handoff message ---------------------------------------------------------------------


def action_value(lead_id: str, transition_id: str, reason: str | None = None) -> str:
    """Compact JSON carried by a button (``{"l","t"}``) or a reject option (``{"l","t","r"}``)."""
    data = {"l": lead_id, "t": transition_id}
    if reason is not None:
        data["r"] = reason
    return json.dumps(data, separators=(",", ":"))


def _who(msg: HandoffMessage) -> str:
    """'Jane Doe, VP Sales at Acme', escaped."""
    who = _safe(msg.display_name, 80)
    if msg.lead.job_title:
        who += f", {_safe(msg.lead.job_title, 60)}"
    if msg.lead.company:
        who += f" at {_safe(msg.lead.company, 60)}"
    return who


def _headline(msg: HandoffMessage) -> str:
    return f"New {msg.stage.upper()}: {_who(msg)}"


UNVERIFIED = " _(web form, unverified)_"


def _fields(msg: HandoffMessage) -> list[dict[str, Any]]:
    lead, scores = msg.lead, msg.scores
    size = f"{lead.company_size:,}" if lead.company_size is not None else None
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p)
    claimed = set(lead.unverified)
    name_claimed = bool(claimed & {"first_name", "last_name"})
    pairs: list[tuple[str, str | None, bool]] = [
        ("Name", _safe(name), name_claimed),  # (not the email again when there is no name)
        ("Title", _safe(lead.job_title), "job_title" in claimed),
        ("Company", _safe(lead.company), "company" in claimed),
        ("Country", _safe(lead.country), "country" in claimed),
        ("Company size", size, "company_size" in claimed),
        ("Industry", _safe(lead.industry), "industry" in claimed),
        ("Email", _safe(lead.email, 320, inert=False), False),
        ("Fit", f"*{_safe(scores.grade, 16)}* \u00b7 {score_text(scores.fit)} pts", False),
        ("Engagement", score_text(scores.engagement), False),
        ("Source", _safe(msg.source, 100), False),
    ]
    # An unknown company is left out, not "—"; a value only a public form gave says so.
    known = [(label, value + (UNVERIFIED if claimed_ else "")) for label, value, claimed_ in pairs if value]
    return [_mrkdwn(f"*{label}*\n{value}", LIMITS["field_text"]) for label, value in known[: LIMITS["section_fields"]]]


def _why(msg: HandoffMessage) -> Block:
    label = "Why now" if msg.stage == "sql" else "Marketing qualified"
    text = f"*{label}:* {_safe(msg.reason, 1000, inert=False)}"
    if msg.fast_track:
        text += " \u00b7 \u26a1 *Fast track*"
    text += f"\n*Stage:* {_safe(msg.from_stage.upper(), 32)} \u2192 {msg.stage.upper()}"
    if msg.rescore is not None:
        before = f"v{msg.rescore.from_version}" if msg.rescore.from_version else "the default rule set"
        text += f"\n*Caused by:* re-scoring with rule set v{msg.rescore.to_version} (was {before})"
    return _section(text)


def _reason_lines(msg: HandoffMessage) -> list[str]:
    ranked = sorted(enumerate(msg.reasons), key=lambda pair: (-abs(pair[1].points), pair[0]))
    lines = [
        f"\u2022 `{_signed(r.points)}` {_safe(r.label, 300)} _({r.kind})_" for _, r in ranked[:_TOP_REASONS]
    ]
    if len(ranked) > _TOP_REASONS:
        lines.append(f"_and {len(ranked) - _TOP_REASONS} more rules_")
    return lines


def _event_lines(msg: HandoffMessage) -> list[str]:
    recent = sorted(msg.key_events, key=lambda e: e.at, reverse=True)[:_KEY_EVENTS]
    return [f"\u2022 {_safe(e.label, 300)} \u00b7 {slack_date(e.at)}" for e in recent]


def _sla(msg: HandoffMessage) -> Block | None:
    if msg.sla_deadline is None:
        return None
    return _section(
        f"*Follow up by:* {slack_date(msg.sla_deadline)} "
        f"({_hours(msg.route.sla_hours)} SLA, route {_safe(msg.route.name, 100)})"
    )


def _footer(msg: HandoffMessage) -> Block:
    ruleset = f"Rule set v{msg.ruleset_version}" if msg.ruleset_version else "Default rule set"
    return _context(
        f"{ruleset} \u00b7 transition `{_safe(msg.transition_id, 60, inert=False)}` "
        f"\u00b7 lead `{_safe(msg.lead_id, 60, inert=False)}` \u00b7 {slack_date(msg.occurred_at)}"
    )


def actions_block(lead_id: str, transition_id: str) -> Block:
    """Accept (primary), Recycle, and Reject as a select: rejecting takes a reason."""
    value = action_value(lead_id, transition_id)
    return {
        "type": "actions",
        "block_id": ACTIONS_BLOCK_ID,
        "elements": [
            {
                "type": "button",
                "action_id": ACTION_ACCEPT,
                "text": _plain("Accept", LIMITS["button_text"]),
                "style": "primary",
                "value": value,
            },
            {
                "type": "button",
                "action_id": ACTION_RECYCLE,
                "text": _plain("Recycle", LIMITS["button_text"]),
                "value": value,
            },
            {
                "type": "static_select",
                "action_id": ACTION_REJECT,
                "placeholder": _plain("Reject\u2026", LIMITS["select_placeholder"]),
                "options": [
                    {
                        "text": _plain(label, LIMITS["option_text"]),
                        "value": action_value(lead_id, transition_id, code),
                    }
                    for code, label in REJECT_REASONS.items()
                ],
            },
        ],
    }


def lead_link_block(url: str) -> Block:
    """"View lead": the lead page, through a signed link that expires. A section of its own, so it
    stays when a decision replaces the actions (Slack still sends the click: it is ignored)."""
    return {
        "type": "section",
        "block_id": LEAD_LINK_BLOCK_ID,
        "text": _mrkdwn("Score over time, reasons, events and outcomes", LIMITS["section_text"]),
        "accessory": {"type": "button", "action_id": ACTION_VIEW_LEAD, "text": _plain("View lead", LIMITS["button_text"]),
                      "url": url},
    }


def handoff_blocks(msg: HandoffMessage, lead_url: str | None = None) -> tuple[str, list[Block]]:
    """The alert for one transition: SQLs for sales (with actions and, given its URL, a link to the
    lead page), MQLs for marketing (FYI)."""
    headline = _headline(msg)
    blocks: list[Block] = [
        {"type": "header", "text": _plain(headline, LIMITS["header_text"])},
        _why(msg),
        {"type": "section", "fields": _fields(msg)},
    ]
    reasons = _reason_lines(msg)
    if reasons:
        blocks.extend(_sections_from_lines("Top reasons", reasons))
    events = _event_lines(msg)
    if events:
        blocks.extend(_sections_from_lines("Recent activity", events))
    sla = _sla(msg)
    if sla is not None:
        blocks.append(sla)
    if lead_url:
        blocks.append(lead_link_block(lead_url))
    blocks.append(_footer(msg))
    if msg.stage == "sql":
        blocks.append(actions_block(msg.lead_id, msg.transition_id))
    fallback = (
        f"{headline} (fit {_safe(msg.scores.grade, 16)} {score_text(msg.scores.fit)}, "
        f"engagement {score_text(msg.scores.engagement)}): {_safe(msg.reason, 1000, inert=False)}"
    )
    return truncate(fallback, FALLBACK_TEXT_LIMIT), blocks[: LIMITS["blocks"]]


# --- after a click ---------------------------------------------------------------------------


def _is_baton_actions(block: Mapping[str, Any]) -> bool:
    if block.get("type") != "actions":
        return False
    if block.get("block_id") == ACTIONS_BLOCK_ID:
        return True
    elements = block.get("elements") or []
    return any(isinstance(e, Mapping) and e.get("action_id") in ACTION_IDS for e in elements)


def outcome_line(action: Action, user: str, reason: str | None, at: datetime) -> str:
    """'✅ Accepted by <@U123> at <date>' (reject adds its reason)."""
    if action not in _OUTCOME_WORDING:
        raise ValueError(f"unknown action {action!r}")
    emoji, verb = _OUTCOME_WORDING[action]
    who = f"<@{user}>" if _USER_ID.match(user) else _safe(user, 100)
    line = f"{emoji} {verb} by {who} at {slack_date(at)}"
    if action == "reject" and reason:
        line += f" \u00b7 reason: {_safe(REJECT_REASONS.get(reason, reason), 100)}"
    return line


def outcome_blocks(
    original_blocks: Sequence[Mapping[str, Any]],
    action: Action,
    user: str,
    reason: str | None,
    at: datetime,
) -> list[Block]:
    """The original message with its buttons replaced by who did what, and when.

    ``original_blocks`` is the message as Slack sends it back in the interaction payload (text
    already escaped by Slack or by us): it is copied, never re-escaped. Applying it twice
    replaces the previous outcome line instead of adding a second one.
    """
    outcome = _context(outcome_line(action, user, reason, at), block_id=OUTCOME_BLOCK_ID)
    result: list[Block] = []
    replaced = False
    for block in original_blocks:
        if _is_baton_actions(block):
            if not replaced:
                result.append(outcome)
                replaced = True
            continue
        if block.get("block_id") == OUTCOME_BLOCK_ID:
            if not replaced:
                result.append(outcome)
                replaced = True
            continue
        result.append(copy.deepcopy(dict(block)))
    if not replaced:
        result.append(outcome)
    if len(result) > LIMITS["blocks"]:
        result = [*result[: LIMITS["blocks"] - 1], outcome]
    return result


# --- reminders and escalations ---------------------------------------------------------------


def reminder_blocks(
    msg: HandoffMessage, kind: Literal["reminder", "escalation"], overdue_hours: float, lead_url: str | None = None
) -> tuple[str, list[Block]]:
    """A nudge for an SQL nobody acted on: ``reminder`` in the route's channel, ``escalation``
    in its escalation channel. Carries the same actions, so it can be handled where it lands."""
    if kind not in ("reminder", "escalation"):
        raise ValueError(f"unknown reminder kind {kind!r}")
    who = _who(msg)
    late = f"overdue by {_hours(overdue_hours)}" if overdue_hours > 0 else "due now"
    deadline = f" (deadline {slack_date(msg.sla_deadline)})" if msg.sla_deadline else ""
    if kind == "reminder":
        text = f"\u23f0 *SLA reminder:* {msg.stage.upper()} *{who}* is waiting, {late}{deadline}."
        fallback = f"\u23f0 SLA reminder: {msg.stage.upper()} {who} is waiting, {late}"
    else:
        channel = _safe(msg.route.channel, 100)
        text = (
            f"\U0001f6a8 *Escalation:* nobody in {channel} has accepted {msg.stage.upper()} *{who}*, "
            f"{late}{deadline}."
        )
        fallback = f"\U0001f6a8 Escalation: {msg.stage.upper()} {who} unhandled in {channel}, {late}"
    blocks: list[Block] = [
        _section(text),
        _why(msg),
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Fit*\n*{_safe(msg.scores.grade, 16)}* \u00b7 {score_text(msg.scores.fit)} pts", 2000),
                _mrkdwn(f"*Engagement*\n{score_text(msg.scores.engagement)}", 2000),
                _mrkdwn(f"*Email*\n{_nonempty(_safe(msg.lead.email, 320, inert=False))}", 2000),
                _mrkdwn(f"*Route*\n{_safe(msg.route.name, 100)}", 2000),
            ],
        },
        *([lead_link_block(lead_url)] if lead_url else []),
        _footer(msg),
    ]
    if msg.stage == "sql":
        blocks.append(actions_block(msg.lead_id, msg.transition_id))
    return truncate(fallback, FALLBACK_TEXT_LIMIT), blocks


# --- re-score digest -------------------------------------------------------------------------


class DigestTransition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lead_id: str = Field(min_length=1, max_length=200)
    name: str | None = None
    company: str | None = None
    from_stage: str = Field(min_length=1, max_length=64)
    stage: str = Field(min_length=1, max_length=64)


class RescoreDigest(BaseModel):
    """What a re-score under a new rule set changed: ``total`` may exceed the listed sample."""

    model_config = ConfigDict(extra="ignore")

    ruleset_version: int = Field(ge=0)
    transitions: list[DigestTransition] = Field(default_factory=list)
    total: int | None = Field(default=None, ge=0)
    sql_alerts: int = Field(default=0, ge=0)  # new SQLs, alerted to their routes one by one instead


def _digest_line(t: DigestTransition) -> str:
    who = _safe(t.name, 80) or "Unknown lead"
    if t.company:
        who += f" ({_safe(t.company, 60)})"
    return (
        f"\u2022 {who}: {_safe(t.from_stage.upper(), 64)} \u2192 {_safe(t.stage.upper(), 64)} "
        f"\u00b7 `{_safe(t.lead_id, 60, inert=False)}`"
    )


def digest_blocks(summary: Mapping[str, Any]) -> tuple[str, list[Block]]:
    """Stage changes caused by a re-score: the first 20, then 'and N more'."""
    try:
        digest = RescoreDigest.model_validate(summary)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "summary"
        raise BadRequest(f"invalid digest summary: {field}: {err['msg']}", details={"field": field}) from None
    total = max(digest.total if digest.total is not None else 0, len(digest.transitions))
    shown = digest.transitions[:_DIGEST_SHOWN]
    noun = "stage change" if total == 1 else "stage changes"
    headline = f"Re-score with rule set v{digest.ruleset_version}: {total} {noun}"
    blocks: list[Block] = [{"type": "header", "text": _plain(headline, LIMITS["header_text"])}]
    if shown:
        lines = [_digest_line(t) for t in shown]
        if total > len(shown):
            lines.append(f"_and {total - len(shown)} more_")
        blocks.extend(_sections_from_lines("Leads that moved", lines))
    else:
        blocks.append(_section("No lead changed stage."))
    if digest.sql_alerts:
        sqls = "new SQL was" if digest.sql_alerts == 1 else "new SQLs were"
        blocks.append(_context(f"{digest.sql_alerts} {sqls} alerted to their routes, each on its own."))
    return headline, blocks[: LIMITS["blocks"]]


# --- limits ----------------------------------------------------------------------------------


def _text_of(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, Mapping) else ""


def check_limits(blocks: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every Block Kit limit this module relies on that ``blocks`` breaks (empty when fine)."""
    problems: list[str] = []

    def over(path: str, text: str, key: str) -> None:
        if text_length(text) > LIMITS[key]:
            problems.append(f"{path}: {text_length(text)} > {LIMITS[key]} ({key})")
        if not text.strip():
            problems.append(f"{path}: empty text")

    if len(blocks) > LIMITS["blocks"]:
        problems.append(f"blocks: {len(blocks)} > {LIMITS['blocks']}")
    for i, block in enumerate(blocks):
        path = f"blocks[{i}]"
        if len(str(block.get("block_id", ""))) > LIMITS["block_id"]:
            problems.append(f"{path}.block_id too long")
        kind = block.get("type")
        if kind == "header":
            over(f"{path}.text", _text_of(block.get("text")), "header_text")
        elif kind == "section":
            if "text" in block:
                over(f"{path}.text", _text_of(block["text"]), "section_text")
            fields = block.get("fields") or []
            if len(fields) > LIMITS["section_fields"]:
                problems.append(f"{path}.fields: {len(fields)} > {LIMITS['section_fields']}")
            for j, f in enumerate(fields):
                over(f"{path}.fields[{j}]", _text_of(f), "field_text")
            accessory = block.get("accessory")
            if isinstance(accessory, Mapping) and accessory.get("type") == "button":
                over(f"{path}.accessory.text", _text_of(accessory.get("text")), "button_text")
                over(f"{path}.accessory.url", str(accessory.get("url", "")), "button_url")
        elif kind == "context":
            elements = block.get("elements") or []
            if len(elements) > LIMITS["context_elements"]:
                problems.append(f"{path}.elements: {len(elements)} > {LIMITS['context_elements']}")
            for j, e in enumerate(elements):
                over(f"{path}.elements[{j}]", _text_of(e), "context_text")
        elif kind == "actions":
            problems.extend(_check_actions(path, block))
    return problems


def _check_actions(path: str, block: Mapping[str, Any]) -> Iterable[str]:
    elements = block.get("elements") or []
    if len(elements) > LIMITS["actions_elements"]:
        yield f"{path}.elements: {len(elements)} > {LIMITS['actions_elements']}"
    for j, e in enumerate(elements):
        epath = f"{path}.elements[{j}]"
        if len(str(e.get("action_id", ""))) > LIMITS["action_id"]:
            yield f"{epath}.action_id too long"
        if e.get("type") == "button":
            if text_length(_text_of(e.get("text"))) > LIMITS["button_text"]:
                yield f"{epath}.text too long"
            if text_length(str(e.get("value", ""))) > LIMITS["button_value"]:
                yield f"{epath}.value too long"
        elif e.get("type") == "static_select":
            if text_length(_text_of(e.get("placeholder"))) > LIMITS["select_placeholder"]:
                yield f"{epath}.placeholder too long"
            options = e.get("options") or []
            if len(options) > LIMITS["select_options"]:
                yield f"{epath}.options: too many"
            for k, o in enumerate(options):
                if text_length(_text_of(o.get("text"))) > LIMITS["option_text"]:
                    yield f"{epath}.options[{k}].text too long"
                if text_length(str(o.get("value", ""))) > LIMITS["option_value"]:
                    yield f"{epath}.options[{k}].value too long"
