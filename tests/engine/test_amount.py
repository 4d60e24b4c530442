"""Amount rules: points per amount of an event property ("1 point per 30 seconds on site"), with the
caps, windows and decay every engagement rule has."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.engine import apply_event, engagement_at, explain, new_lead
from chalicelib.engine.engagement import engagement_parts
from chalicelib.errors import ValidationFailed
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset, compile_ruleset
from chalicelib.rules.loader import parse_ruleset, parse_ruleset_text
from chalicelib.state import LeadState

DAY = 86400.0
T0 = 1_700_000_000.0
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_ids = itertools.count()


def ruleset(rule: dict[str, Any], half_life: float | None = None) -> CompiledRuleset:
    data = {
        "name": "amounts", "decay": {"half_life_days": half_life}, "grades": [{"grade": "D"}],
        "engagement": [{"id": "time-on-site", "label": "Time on site", "events": ["page_view"], "points": 1,
                        **rule}],
        "stages": {"mql": {"when": {"field": "engagement", "op": "gte", "value": 1e6}},
                   "sql": {"when": {"field": "engagement", "op": "gte", "value": 2e6}}},
    }
    return compile_ruleset(parse_ruleset(data), version=1)


def visit(at: float, seconds: Any = None, **properties: Any) -> Event:
    if seconds is not None:
        properties["seconds"] = seconds
    return Event(f"e{next(_ids)}", "page_view", at, "pat@acme.io", properties=properties)


def feed(rs: CompiledRuleset, events: list[Event], state: LeadState | None = None) -> LeadState:
    state = state or new_lead("L1", "pat@acme.io")
    for event in events:
        apply_event(state, event, rs, now=event.ts)
    return state


PER_30S = {"amount": {"property": "seconds", "per": 30}}


def test_points_in_proportion_to_the_amount() -> None:
    rs = ruleset(PER_30S)
    state = feed(rs, [visit(T0, 600), visit(T0 + 60, "45"), visit(T0 + 120, "1,200")])
    assert engagement_at(state, rs, T0 + 120) == pytest.approx(20 + 1.5 + 40)


def test_an_event_without_an_amount_scores_nothing_and_counts_toward_no_cap() -> None:
    rs = ruleset({**PER_30S, "caps": {"max_count": 1}})
    state = feed(rs, [visit(T0), visit(T0 + 1, "a while"), visit(T0 + 2, -30), visit(T0 + 3, 0),
                      visit(T0 + 4, True), visit(T0 + 5, 90), visit(T0 + 6, 90)])
    assert engagement_at(state, rs, T0 + 6) == pytest.approx(3)  # the first with an amount; the cap refuses the next


def test_a_nested_property_and_negative_points() -> None:
    rs = ruleset({"points": -2, "amount": {"property": "video.watched", "per": 60}})
    state = feed(rs, [visit(T0, video={"watched": 90}), visit(T0 + 1, video="none")])
    assert engagement_at(state, rs, T0 + 1) == pytest.approx(-3)


def test_max_points_caps_the_points_per_window() -> None:
    rs = ruleset({**PER_30S, "caps": {"max_points": 30, "window_days": 7}})
    state = feed(rs, [visit(T0, 600), visit(T0 + DAY, 600), visit(T0 + 2 * DAY, 600)])
    assert engagement_at(state, rs, T0 + 2 * DAY) == pytest.approx(30)  # 20, then 10 of 20, then none
    state = feed(rs, [visit(T0 + 7.5 * DAY, 600)], state)  # the first award has left the window
    assert engagement_at(state, rs, T0 + 7.5 * DAY) == pytest.approx(50)  # only day 1 (10) is left: 20 more


def test_a_lifetime_cap_and_max_count_together() -> None:
    rs = ruleset({**PER_30S, "caps": {"max_points": 50, "max_count": 2}})
    state = feed(rs, [visit(T0 + i * 100 * DAY, 900) for i in range(4)])
    assert engagement_at(state, rs, T0 + 400 * DAY) == pytest.approx(50)  # 30 + 20: the cap, at the second
    rs = ruleset({**PER_30S, "caps": {"max_count": 2}})
    state = feed(rs, [visit(T0 + i * 100 * DAY, 60) for i in range(4)])
    assert engagement_at(state, rs, T0 + 400 * DAY) == pytest.approx(4)


def test_a_late_event_fills_no_window_over_its_cap() -> None:
    rs = ruleset({**PER_30S, "caps": {"max_points": 30, "window_days": 7}})
    state = feed(rs, [visit(T0, 300), visit(T0 + 6 * DAY, 300), visit(T0 + 3 * DAY, 900)])
    # The late award shares a window with both earlier ones (10 + 10): it may add 10 of its 30.
    assert engagement_at(state, rs, T0 + 6 * DAY) == pytest.approx(30)
    state = feed(rs, [visit(T0 + 12 * DAY, 300), visit(T0 + 9.5 * DAY, 900)], state)
    # At 9.5 days the windows hold 10 + 10 (days 3 and 6) or 10 + 10 (days 6 and 12): 10 more.
    assert engagement_at(state, rs, T0 + 12 * DAY) == pytest.approx(30 + 10 + 10)


def test_decay_applies_to_amount_awards() -> None:
    rs = ruleset(PER_30S, half_life=10)
    state = feed(rs, [visit(T0, 600)])
    assert engagement_at(state, rs, T0 + 10 * DAY) == pytest.approx(10)


def test_explain_and_the_handoff_reason_say_the_rate() -> None:
    from chalicelib.handoff.body import handoff_body
    from chalicelib.handoff.message import HandoffMessage
    from chalicelib.state import Transition

    rs = ruleset(PER_30S)
    state = feed(rs, [visit(T0, 600)])
    (reason,) = explain(state, rs, T0)["engagement"]["rules"]
    assert reason == {"rule": "time-on-site", "label": "Time on site", "points": pytest.approx(20),
                      "rate": "1 point per 30 seconds"}
    transition = Transition(id="t1", lead_id="L1", from_stage="mql", to_stage="sql", at=T0, fast_track=False,
                            reason="engagement", ruleset_version=1)
    body = handoff_body(state, transition, rs, "api", explain(state, rs, T0))
    assert HandoffMessage.model_validate(body).reasons[0].label == "Time on site (1 point per 30 seconds)"
    assert ruleset({"points": 3, "amount": {"property": "minutes", "per": 1.5}}).engagement_by_id[
        "time-on-site"].rate == "3 points per 1.5 minutes"


@pytest.mark.parametrize(("rule", "path", "message"), [
    ({**PER_30S, "frequency": {"count": 2, "within_days": 7}}, "engagement[0]", "amount and frequency"),
    ({"amount": {"property": "seconds", "per": 0}}, "engagement[0].amount.per", "greater than 0"),
    ({"amount": {"property": "bad key", "per": 30}}, "engagement[0].amount.property", "pattern"),
    ({"amount": {"per": 30}}, "engagement[0].amount.property", "required"),
    ({"amount": {"property": "seconds", "per": 30, "every": 1}}, "engagement[0].amount.every", "not permitted"),
])
def test_invalid_amount_rules_name_the_key(rule: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        ruleset(rule)
    assert info.value.field == path and message in str(info.value), str(info.value)


def test_the_yaml_syntax_and_its_line() -> None:
    text = """
name: amounts
grades: [{grade: D}]
engagement:
  - id: time-on-site
    label: Time on site
    events: [page_view]
    points: 1
    amount: {property: seconds, per: 30}
    caps: {max_points: 40, window_days: 30}
  - id: watched
    label: Watched the demo video
    events: [page_view]
    points: 1
    amount: {property: minutes, per: -1}
stages: {mql: {when: {field: engagement, op: gte, value: 30}}, sql: {when: {field: engagement, op: gte, value: 60}}}
"""
    with pytest.raises(ValidationFailed) as info:
        parse_ruleset_text(text)
    assert info.value.details["errors"][0]["path"] == "engagement[1].amount.per"
    assert info.value.details["errors"][0]["line"] == 15
    rule = parse_ruleset_text(text.replace("per: -1", "per: 2")).engagement[0]
    assert rule.amount is not None and (rule.amount.property, rule.amount.per) == ("seconds", 30)


# --- invariants ----------------------------------------------------------------------------------------

amounts = st.one_of(st.none(), st.floats(0, 5000, allow_nan=False), st.integers(-10, 5000),
                    st.sampled_from(["600", "1,200", "n/a"]))
histories = st.lists(st.tuples(st.sampled_from([0.0, 60.0, DAY / 2, DAY, 3 * DAY, 8 * DAY]), amounts,
                               st.sampled_from([0.0, 0.0, 0.0, 4 * DAY])), min_size=0, max_size=25)
caps = st.one_of(
    st.none(),
    st.fixed_dictionaries({"max_points": st.integers(1, 60)},
                          # (windows longer than half the lateness: caps keep what lies within two
                          # windows of the newest event, as engagement.capped does)
                          optional={"window_days": st.sampled_from([7, 30]), "max_count": st.integers(1, 5)}),
)


def stream(history: list[tuple[float, Any, float]]) -> list[Event]:
    """Mostly in time order; some events arrive late (``back`` seconds before the latest)."""
    t, out = T0, []
    for gap, amount, back in history:
        t += gap
        out.append(visit(t - back, amount))
    return out


@FAST
@given(history=histories, cap=caps, points=st.integers(1, 5), per=st.sampled_from([1, 30, 60.5]),
       small=st.floats(0, 3000), extra=st.floats(0, 3000))
def test_points_are_monotone_in_the_amount(history: list[Any], cap: dict[str, Any] | None, points: int,
                                           per: float, small: float, extra: float) -> None:
    rs = ruleset({"points": points, "amount": {"property": "seconds", "per": per}, "caps": cap})
    before = feed(rs, stream(history))
    at = before.last_seen + 60
    scores = [engagement_at(feed(rs, [visit(at, amount)], before.copy()), rs, at) for amount in (small, small + extra)]
    assert scores[0] <= scores[1] + 1e-9
    assert scores[1] - engagement_at(before, rs, at) <= points * (small + extra) / per + 1e-9


@FAST
@given(history=histories, cap=caps.filter(lambda c: c is not None), points=st.sampled_from([1, 3, -2]))
def test_max_points_holds_in_every_window_whatever_the_order(history: list[Any], cap: dict[str, Any],
                                                             points: int) -> None:
    rs = ruleset({"points": points, "amount": {"property": "seconds", "per": 30}, "caps": cap})
    state = new_lead("L1", "pat@acme.io")
    awards: list[tuple[float, float]] = []
    for event in stream(history):
        before = engagement_parts(state, rs, T0 + 400 * DAY).get("time-on-site", 0.0)
        apply_event(state, event, rs, now=event.ts)
        gained = engagement_parts(state, rs, T0 + 400 * DAY).get("time-on-site", 0.0) - before
        if abs(gained) > 1e-9:
            awards.append((event.ts, abs(gained)))
    window = cap.get("window_days")
    for end, _ in awards:
        inside = [p for t, p in awards if window is None or end - window * DAY < t <= end]
        assert sum(inside) <= cap["max_points"] + 1e-6
    if "max_count" in cap:
        for end, _ in awards:
            assert len([t for t, _ in awards if window is None or end - window * DAY < t <= end]) <= cap["max_count"]


def test_the_sla_document_and_the_diff_give_the_rate() -> None:
    from baton.ruleset_diff import diff_rulesets, render_diff
    from baton.sla_doc import render_sla

    before = ruleset({})
    after = ruleset({**PER_30S, "caps": {"max_points": 40, "window_days": 30}})
    assert "| Time on site | page view | any | +1 per 30 seconds | at most 40 points per 30 days |" in render_sla(
        after.source)
    assert 'amount: (none) -> {property: "seconds", per: 30}' in render_diff(diff_rulesets(before.source, after.source))
