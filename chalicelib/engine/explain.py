"""Why a lead scores what it does: each rule's current contribution, for people (sales, analysts)."""

from __future__ import annotations

from typing import Any

from chalicelib.engine.engagement import engagement_at, engagement_parts
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rules.conditions import Context
from chalicelib.state import LeadState


def explain(state: LeadState, rs: CompiledRuleset, now: float) -> dict[str, Any]:
    """Each rule's current contribution. The engagement parts sum to the engagement score (to rounding);
    an amount rule's part also has its ``rate``."""
    t = max(now, state.last_seen)
    ctx = Context(state.attributes)
    hits = [r for r in rs.fit if r.test(ctx)]
    fit_rules: list[dict[str, Any]] = [{"rule": r.id, "label": r.label, "points": r.points} for r in hits]
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
