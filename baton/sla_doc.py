"""Render a rule set as the marketing/sales SLA: the agreement in words, generated from the rules.

Sales and marketing sign off the document, not the YAML; generating it means the two never drift.
``render_sla`` is pure: rule set in, Markdown out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from chalicelib.rules.model import (
    AllOf,
    AnyOf,
    Caps,
    Condition,
    EngagementRule,
    Frequency,
    Leaf,
    NotOf,
    RuleSet,
)

_FIELD_NAMES = {
    "fit": "fit score",
    "grade": "grade",
    "engagement": "engagement",
    "stage": "stage",
    "email_domain": "email domain",
    "job_title": "job title",
    "company_size": "company size (employees)",
    "annual_revenue": "annual revenue",
    "utm_source": "UTM source",
    "utm_medium": "UTM medium",
    "utm_campaign": "UTM campaign",
    "utm_term": "UTM term",
    "utm_content": "UTM content",
    "event.path": "page path",
    "event.url": "page URL",
    "event.offer": "offer (content or form)",
    "event.type": "activity type",
    "event.source": "source",
    "event.campaign": "campaign",
    "event.asset": "asset",
}
_COMPARE = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
_STAGE_NAMES = {"lead": "Lead", "mql": "MQL", "sql": "SQL", "opportunity": "Opportunity", "customer": "Customer"}
# ``(?i)\b(chief|ceo|vp)\b``: the usual "any of these words" pattern, worth saying in words.
_WORDS_PATTERN = re.compile(r"^(\(\?i\))?\\b\(([^()\\[\]{}*+?.^$]+)\)\\b$")


# --- conditions in words --------------------------------------------------------------------------


def describe(cond: Condition | None, hand_raisers: Iterable[str] = ()) -> str:
    """A condition as one plain-English phrase, e.g. ``grade is A or B and engagement ≥ 30``."""
    if cond is None:
        return "always"
    return _phrase(cond, tuple(hand_raisers), nested=False)


def _phrase(cond: Condition, hand_raisers: tuple[str, ...], nested: bool) -> str:
    if isinstance(cond, Leaf):
        return _leaf(cond, hand_raisers, negated=False)
    if isinstance(cond, NotOf):
        inner = cond.not_
        if isinstance(inner, Leaf) and inner.op not in _COMPARE:
            return _leaf(inner, hand_raisers, negated=True)
        return f"not ({_phrase(inner, hand_raisers, nested=False)})"
    if isinstance(cond, (AllOf, AnyOf)):
        parts = cond.all if isinstance(cond, AllOf) else cond.any
        joiner = " and " if isinstance(cond, AllOf) else " or "
        if len(parts) == 1:
            return _phrase(parts[0], hand_raisers, nested)
        text = joiner.join(_phrase(p, hand_raisers, nested=True) for p in parts)
        return f"({text})" if nested else text
    raise TypeError(f"not a condition: {type(cond).__name__}")


def field_name(name: str) -> str:
    if name in _FIELD_NAMES:
        return _FIELD_NAMES[name]
    head, _, rest = name.partition(".")
    if head == "custom":
        return f"custom field “{rest}”"
    if head == "event":
        sub, _, deeper = rest.partition(".")
        return f"event property “{deeper if sub == 'properties' else rest}”"
    return name.replace("_", " ")


def _value(value: Any, bare: bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return _num(value)
    if bare:
        return str(value)
    return f"“{value}”"


def _choices(values: list[Any], bare: bool) -> str:
    shown = [_value(v, bare) for v in values]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _leaf(leaf: Leaf, hand_raisers: tuple[str, ...], negated: bool) -> str:
    name, op, value = leaf.field, leaf.op, leaf.value
    is_ = "is not" if negated else "is"
    if name == "hand_raiser" and op in ("eq", "ne") and isinstance(value, bool):
        raised = value == (op == "eq")
        if negated:
            raised = not raised
        what = f" ({_choices([_event_name(t) for t in hand_raisers], bare=True)})" if hand_raisers else ""
        return f"they raise their hand{what}" if raised else "it is not a hand-raise"
    if name == "fast_track" and op in ("eq", "ne") and isinstance(value, bool):
        on = (value == (op == "eq")) != negated
        return "the lead is on the fast track" if on else "the lead is not on the fast track"
    bare = name in ("grade", "stage")
    label = field_name(name)
    if name == "stage":
        value = [_STAGE_NAMES.get(str(v).lower(), v) for v in value] if isinstance(value, list) else (
            _STAGE_NAMES.get(str(value).lower(), value)
        )
    if op in _COMPARE:
        return f"{label} {_COMPARE[op]} {_num(value)}"
    if op == "eq":
        return f"{label} {is_} {_value(value, bare)}"
    if op == "ne":
        return f"{label} {'is' if negated else 'is not'} {_value(value, bare)}"
    if op == "in":
        return f"{label} {is_} {_choices(value, bare)}"
    if op == "not_in":
        return f"{label} {'is' if negated else 'is not'} {_choices(value, bare)}"
    if op == "contains":
        return f"{label} {'does not contain' if negated else 'contains'} {_value(value, bare)}"
    if op == "starts_with":
        return f"{label} {'does not start' if negated else 'starts'} with {_value(value, bare)}"
    if op == "ends_with":
        return f"{label} {'does not end' if negated else 'ends'} with {_value(value, bare)}"
    if op == "matches":
        words = _WORDS_PATTERN.match(value)
        if words:
            listed = _choices(words.group(2).split("|"), bare=False)
            case = " (any case)" if words.group(1) else ""
            return f"{label} {'does not contain' if negated else 'contains'} the word {listed}{case}"
        return f"{label} {'does not match' if negated else 'matches'} the pattern `{value}`"
    if op == "exists":
        present = (value is None or bool(value)) != negated
        return f"{label} is known" if present else f"{label} is unknown"
    if op == "in_list":
        if value == "disposable":
            return f"{label} {is_} a disposable email domain (built-in list)"
        return f"{label} {is_} in the “{value}” list"
    raise ValueError(f"unknown op {op!r}")


# --- small formatting helpers ---------------------------------------------------------------------


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _days(days: float) -> str:
    return "day" if days == 1 else f"{_num(days)} days"


def _hours(hours: float) -> str:
    return "1 hour" if hours == 1 else f"{_num(hours)} hours"


def _points(points: float) -> str:
    return f"+{_num(points)}" if points > 0 else f"−{_num(-points)}"


def _event_name(event_type: str) -> str:
    return event_type.replace("_", " ")


def _cell(text: str) -> str:
    """Table cells: a pipe would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def caps_in_words(caps: Caps | None) -> str:
    if caps is None:
        return ""
    limits = []
    if caps.max_count is not None:
        limits.append("once" if caps.max_count == 1 else f"{caps.max_count} times")
    if caps.max_points is not None:
        limits.append(f"{caps.max_points} points")
    per = f"per {_days(caps.window_days)}" if caps.window_days is not None else "ever"
    return f"at most {' and '.join(limits)} {per}"


def frequency_in_words(frequency: Frequency | None) -> str:
    if frequency is None:
        return ""
    return f"awarded each time {frequency.count} of these happen within {_days(frequency.within_days)}"


def _half_life(rule: EngagementRule, default: float | None) -> str:
    if rule.half_life_days is not None:
        return _days(rule.half_life_days)
    return f"{_days(default)} (default)" if default is not None else "none"


def _condition_lines(cond: Condition, hand_raisers: tuple[str, ...]) -> list[str]:
    """Top-level alternatives read best as a bullet list."""
    if isinstance(cond, AnyOf) and len(cond.any) > 1:
        return ["Any one of:", ""] + [f"- {describe(c, hand_raisers)}" for c in cond.any]
    return [f"When {describe(cond, hand_raisers)}."]


# --- the document ---------------------------------------------------------------------------------


def render_sla(ruleset: RuleSet, *, version: int | None = None) -> str:
    """The SLA document for ``ruleset`` in Markdown."""
    stages = ruleset.stages
    handoff = ruleset.handoff
    hands = tuple(stages.hand_raisers)
    said: tuple[str, ...] = ()  # hand-raisers are listed once, not inside every condition
    default_half_life = ruleset.decay.half_life_days
    title = f"Lead handoff SLA: {ruleset.name}" + (f" (rule set v{version})" if version is not None else "")
    out: list[str] = [f"# {title}", ""]
    if ruleset.description.strip():
        out += [ruleset.description.strip(), ""]
    out += [
        "This agreement between marketing and sales is generated from the rule set Baton scores leads with: "
        "what it says is exactly what the system does.",
        "",
        "## At a glance",
        "",
        f"- **MQL** (marketing qualified lead): {describe(stages.mql.when, said)}.",
        f"- **SQL** (sales qualified lead): {describe(stages.sql.when, said)}.",
    ]
    if stages.fast_track is not None:
        out.append(f"- **Fast track** straight to sales: {describe(stages.fast_track.when, said)}.")
    out += [
        f"- **Follow-up**: sales contacts every SQL within {_hours(handoff.sla_hours)}"
        + (" unless its route below sets a different time." if handoff.routes else "."),
        f"- **Disqualified**, never sent to sales: {len(ruleset.disqualifiers)} rule(s), listed below.",
        f"- **Hand-raisers**: {_choices([_event_name(t) for t in hands], bare=True) or 'none'}.",
        "",
        "Every lead is scored on two independent axes: **fit** (who they are, recomputed whenever their "
        "details change) and **engagement** (what they do, cumulative with caps and decay). "
        "Fit is summarised as a grade.",
        "",
    ]

    out += ["## What makes an MQL", ""]
    out += _condition_lines(stages.mql.when, said)
    if "mql" in handoff.notify:
        mql_alerts = f"MQL alerts go to {handoff.mql_channel}, never to a sales channel."
    else:
        mql_alerts = "Sales is not alerted for MQLs."
    out += ["", f"MQLs stay with marketing for nurture. {mql_alerts}", ""]

    out += ["## What makes an SQL", ""]
    out += _condition_lines(stages.sql.when, said)
    out += ["", f"Hand-raisers are: {_choices([_event_name(t) for t in hands], bare=True) or 'none'}.", ""]
    if stages.sql_requires_mql:
        out += ["Only MQLs become SQLs. A lead that meets both definitions with one action becomes an MQL "
                "and then an SQL at once, so it still counts as an MQL in the funnel.", ""]
    else:
        out += ["A lead may become an SQL without first being an MQL.", ""]
    notified = [_STAGE_NAMES[s] for s in ("mql", "sql") if s in handoff.notify]
    out += [f"Sales is alerted for: {', '.join(notified) or 'nothing'}. "
            "Each alert says why the lead qualified (its fit rules and engagement).", ""]

    out += ["## Fast track", ""]
    if stages.fast_track is not None:
        out += _condition_lines(stages.fast_track.when, said)
        out += ["", "These leads skip marketing nurture and go straight to sales as SQLs.", ""]
    else:
        out += ["There is no fast track: every lead qualifies through the MQL and SQL definitions.", ""]

    out += ["## Disqualifiers", ""]
    if ruleset.disqualifiers:
        out += ["A lead matching any of these never reaches sales, whatever its score:", ""]
        out += _table(
            ["Reason", "When"], [[d.reason, describe(d.when, said)] for d in ruleset.disqualifiers]
        )
    else:
        out.append("None: every lead can reach sales.")
    out.append("")

    out += ["## Fit: who they are", "",
            "Points for each rule the lead's current details match. Fit is recomputed from scratch whenever "
            "the details change; it never accumulates.", ""]
    if ruleset.fit:
        out += _table(["Rule", "When", "Points"],
                      [[f.label, describe(f.when, said), _points(f.points)] for f in ruleset.fit])
    else:
        out.append("No fit rules: every lead has fit 0.")
    out += ["", "### Grades", ""]
    bands = []
    for band in ruleset.grades:
        bands.append([band.grade, f"{band.min_fit} or more" if band.min_fit is not None else "everyone else"])
    out += _table(["Grade", "Fit score"], bands)
    out.append("")

    out += ["## Engagement: what they do", "",
            "Points for each matching activity, within the limits shown.", ""]
    if ruleset.engagement:
        rows = []
        for rule in ruleset.engagement:
            limits = "; ".join(x for x in (frequency_in_words(rule.frequency), caps_in_words(rule.caps)) if x)
            rows.append([
                rule.label,
                _choices([_event_name(t) for t in rule.events], bare=True),
                describe(rule.when, said) if rule.when is not None else "any",
                _points(rule.points) + (f" per {rule.amount.per:g} {rule.amount.property}" if rule.amount else ""),
                limits or "no limit",
                _half_life(rule, default_half_life),
            ])
        out += _table(["Activity", "Events", "When", "Points", "Limits", "Half-life"], rows)
    else:
        out.append("No engagement rules.")
    out += ["", "## Decay", ""]
    if default_half_life is not None:
        out += [f"Interest fades: engagement points lose half their value every {_days(default_half_life)} "
                "(rules with their own half-life are shown in the table above). Negative points fade the same "
                "way. Decay never moves a lead back a stage.", ""]
    else:
        own = [r for r in ruleset.engagement if r.half_life_days is not None]
        out += ["Engagement does not decay" + (" except for the rules with their own half-life above." if own else ".")
                + " A lead never moves back a stage.", ""]

    out += ["## Routing and follow-up", ""]
    route_rows = [
        [r.name, describe(r.when, said), r.channel, _hours(r.sla_hours if r.sla_hours is not None else handoff.sla_hours),
         r.escalation_channel or "—"]
        for r in handoff.routes
    ]
    route_rows.append(["default", "no route above applies", handoff.default_channel, _hours(handoff.sla_hours), "—"])
    out += ["Each SQL goes to the first route whose condition it meets.", ""]
    out += _table(["Route", "When", "Channel", "Follow up within", "Escalation"], route_rows)
    out += ["", f"Follow-up time: sales makes first contact with every SQL within {_hours(handoff.sla_hours)} "
            "of the handoff unless its route says otherwise; an SQL not accepted, rejected or recycled in "
            "time is escalated where a route names an escalation channel.", ""]

    out += ["## Sales feedback and recycling", "",
            "Sales records an outcome for every SQL: accepted, rejected, recycled, opportunity, won, lost or "
            "disqualified. Stages only move forward (lead → MQL → SQL → opportunity → customer) except "
            "through this feedback.", "",
            "Rejected, recycled and lost leads go back to marketing: their engagement starts again from zero",
            ]
    cooldown = stages.recycle_cooldown_days
    if cooldown:
        out[-1] += f" and they can qualify again after a cooldown of {_days(cooldown)}."
    else:
        out[-1] += " and they can qualify again straight away (no cooldown)."
    out.append("")

    if ruleset.lists:
        out += ["## Lists", ""]
        out += _table(["List", "Entries"], [[name, ", ".join(values)] for name, values in ruleset.lists.items()])
        out += ["", "The “disposable” list of temporary email domains is built in.", ""]

    forms = getattr(ruleset, "forms", None)
    if forms:
        out += ["## Web forms", ""]
        out += _table(
            ["Form", "Counts as", "Offer"],
            [[f"{form.label or form_id} (`{form_id}`)", _event_name(form.event), form.offer or form_id]
             for form_id, form in forms.items()],
        )
        out.append("")
    return "\n".join(out).rstrip() + "\n"
