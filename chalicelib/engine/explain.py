"""Why a lead scores what it does, for people (sales, analysts): each rule's current contribution,
and each transition's reason with the threshold it crossed."""

from __future__ import annotations

import math
from typing import Any

from chalicelib.display import decimals, score_text, shown_points, shown_score
from chalicelib.emails import likely_typo
from chalicelib.engine.engagement import engagement_at, engagement_parts
from chalicelib.events import Event, iso
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rules.conditions import Context, Predicate
from chalicelib.state import LeadState


def explain(state: LeadState, rs: CompiledRuleset, now: float) -> dict[str, Any]:
    """Each rule's current contribution. The engagement parts sum to the engagement score (to rounding);
    an amount rule's part also has its ``rate``."""
    t = max(now, state.last_seen)
    ctx = Context(state.attributes)
    hits = [r for r in rs.fit if r.test(ctx)]
    typo = _typo_note(state)
    fit_rules: list[dict[str, Any]] = [
        {"rule": r.id, "label": f"{r.label} ({typo})" if typo and "email_domain" in (r.reads or ()) else r.label,
         "points": r.points}
        for r in hits
    ]
    fit = float(sum(r.points for r in hits))
    parts = engagement_parts(state, rs, t)
    engagement_rules: list[dict[str, Any]] = []
    for rid, value in sorted(parts.items(), key=lambda item: -abs(item[1])):
        rule = rs.engagement_by_id[rid]
        reason: dict[str, Any] = {"rule": rid, "label": rule.label, "points": value}
        if rule.amount is not None:
            reason["rate"] = rule.rate  # an amount rule says what it pays for: "1 point per 30 seconds"
        engagement_rules.append(reason)
    return {
        "fit": {"score": fit, "grade": rs.grade_for(fit), "rules": fit_rules},
        "engagement": {"score": engagement_at(state, rs, t), "rules": engagement_rules, "at": t},
        "disqualified": state.disqualified_reason,
        "ruleset_version": rs.version,
    }


def explanation_answer(explained: dict[str, Any]) -> dict[str, Any]:
    """``explain``'s answer as the API shows it: scores cut and points rounded for display, its time
    in ISO 8601."""
    fit, engagement = explained["fit"], explained["engagement"]
    return {
        **explained,
        "fit": {**fit, "score": shown_score(fit["score"])},
        "engagement": {
            "score": shown_score(engagement["score"]), "at": iso(engagement["at"]),
            "rules": [{**r, "points": shown_points(r["points"])} for r in engagement["rules"]],
        },
    }


def _typo_note(state: LeadState) -> str | None:
    # The domain was scored as the free-mail domain it is a likely typo of (fit.set_email).
    typed = (state.email or "").rpartition("@")[2]
    meant = likely_typo(typed)
    return f"likely typo of {meant}" if meant and state.attributes.get("email_domain") == meant else None


def event_label(rs: CompiledRuleset, event: Event) -> str:
    """What an event is called for people: the label of the first engagement rule it matches,
    else its type in words ("demo_request" -> "Demo request")."""
    ctx = Context({}, event)
    for rule in rs.engagement_by_type.get(event.type, ()):
        if rule.freq_count is None and (rule.test is None or rule.test(ctx)):
            return rule.label
    return event.type.replace("_", " ").capitalize()


def transition_reason(rs: CompiledRuleset, stage: str, ctx: Context, event: Event) -> str:
    """Why the lead reached ``stage`` (``mql``, ``sql`` or ``fast_track``) on ``event``: the
    hand-raise by its rule label, else the engagement reached against the threshold it crossed
    ("engagement 62.3 of 60 needed, fit A (70)")."""
    if ctx.hand_raiser:
        return f"hand-raiser: {event_label(rs, event)}"
    test = rs.mql if stage == "mql" else rs.sql if stage == "sql" else rs.fast_track
    floors = rs.floors.get(stage)
    needed = engagement_needed(floors, test, ctx) if floors is not None and test is not None else None
    fit = f"fit {ctx.grade} ({ctx.fit:g})"
    if needed is None:
        return f"{fit}, engagement {score_text(ctx.engagement)}"
    places = max(1, decimals(needed))
    return f"engagement {score_text(ctx.engagement, places)} of {needed:g} needed, {fit}"


def engagement_needed(floors: tuple[tuple[float, bool], ...], test: Predicate, ctx: Context) -> float | None:
    """The least engagement score at which ``test`` holds for the lead as it stands in ``ctx``, among
    its condition's engagement ``floors`` (``rules.compile.stage_floors``: compiled once per rule
    set); None when it holds whatever the score, or at none of them up to the lead's."""
    actual = ctx.engagement
    try:
        ctx.engagement = -math.inf
        if test(ctx):
            return None
        for bound, strict in floors:
            trial = math.nextafter(bound, math.inf) if strict else bound
            if trial > actual:
                break
            ctx.engagement = trial
            if test(ctx):
                return bound
        return None
    finally:
        ctx.engagement = actual


