"""Scenario tests of the engine on the default rule set: what marketing and sales agreed, in code."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from chalicelib.engine import OUTCOMES, apply_event, apply_outcome, engagement_at, explain, new_lead, score
from chalicelib.engine.engagement import engagement_parts
from chalicelib.engine.scoring import FUTURE_SKEW
from chalicelib.engine.stages import context
from chalicelib.events import Event
from chalicelib.rules.compile import compile_ruleset
from chalicelib.rules.loader import default_ruleset
from chalicelib.rules.model import RuleSet
from chalicelib.state import LeadState, Transition, lead_id_for

RS = compile_ruleset(default_ruleset(), version=1)
DAY = 86400.0
T0 = 1_700_000_000.0

# Personas and their fit under the default rules (title, department, size, industry, country, email).
A_TRAITS = {  # 30 exec + 10 dept + 20 mid-market + 10 industry + 5 country + 10 corporate = 85
    "job_title": "VP Marketing", "department": "Marketing", "company_size": "250", "industry": "Software",
    "country": "US",
}
B_TRAITS = {"job_title": "Marketing Manager", "company_size": 250}  # 15 + 20 + 10 corporate = 45
C_TRAITS = {"job_title": "Analyst", "company_size": 250}  # 20 + 10 = 30
D_TRAITS = {"job_title": "Analyst", "company_size": 5}  # -10 tiny + (-10 free mail) = -20 with gmail

_ids = itertools.count()


def ev(type_: str, at: float, *, path: str | None = None, traits: dict[str, Any] | None = None,
       event_id: str | None = None, **properties: Any) -> Event:
    if path is not None:
        properties["url"] = f"https://acme.example{path}"
    return Event(event_id=event_id or f"ev-{next(_ids)}", type=type_, ts=at, properties=properties,
                 traits=traits or {})


def lead(email: str = "pat@acme.com") -> LeadState:
    return new_lead(lead_id_for(email), email)


def feed(state: LeadState, events: Iterable[Event]) -> list[Transition]:
    out: list[Transition] = []
    for event in events:
        out += apply_event(state, event, RS, now=event.ts)
    return out


def persona(traits: dict[str, Any], email: str = "pat@acme.com", at: float = T0) -> LeadState:
    state = lead(email)
    assert feed(state, [ev("identify", at, traits=traits)]) == []
    return state


def stages(transitions: list[Transition]) -> list[tuple[str, str]]:
    return [(t.from_stage, t.to_stage) for t in transitions]


def decayed(points: float, at: float, now: float, half_life_days: float = 30.0) -> float:
    return points * 0.5 ** ((now - at) / (half_life_days * DAY))


# --- fit ------------------------------------------------------------------------------------------


def test_persona_fit_and_grades() -> None:
    expected = [(A_TRAITS, "pat@acme.com", 85, "A"), (B_TRAITS, "pat@acme.com", 45, "B"),
                (C_TRAITS, "pat@acme.com", 30, "C"), (D_TRAITS, "pat@gmail.com", -20, "D")]
    for traits, email, fit, grade in expected:
        state = persona(traits, email)
        assert state.fit == fit, traits
        assert RS.grade_for(state.fit) == grade


def test_fit_is_recomputed_not_accumulated() -> None:
    state = persona(A_TRAITS)
    assert state.fit == 85
    assert set(state.fit_rules) == {
        "title-executive", "department-revenue", "size-mid-market", "industry-target", "country-covered",
        "corporate-email",
    }
    feed(state, [ev("form_submitted", T0 + 60, traits=A_TRAITS, form_id="contact")])  # same answers again
    assert state.fit == 85
    feed(state, [ev("identify", T0 + 120, traits={"job_title": "Analyst"})])  # lost the exec title
    assert state.fit == 55
    assert "title-executive" not in state.fit_rules
    feed(state, [ev("identify", T0 + 180, traits={"company_size": "5,000"})])  # mid-market -> enterprise
    assert state.fit == 50
    assert state.attributes["company_size"] == 5000  # numbers from forms are stored as numbers
    feed(state, [ev("identify", T0 + 240, traits={"company_size": ""})])  # blank never erases
    assert state.fit == 50


def test_fit_is_recomputed_when_the_rule_set_changes() -> None:
    state = persona(B_TRAITS)
    assert state.fit == 45
    stricter = default_ruleset().model_dump(by_alias=True)
    stricter["fit"] = [r for r in stricter["fit"] if r["id"] != "title-manager"]
    rs2 = compile_ruleset(RuleSet.model_validate(stricter), version=2)
    apply_event(state, ev("email_open", T0 + 60), rs2, now=T0 + 60)
    assert state.fit == 30
    assert state.fit_version == 2
    assert state.ruleset_version == 2


@pytest.mark.parametrize(
    ("fit", "grade"),
    [(1000, "A"), (60, "A"), (59.9, "B"), (35, "B"), (34, "C"), (15, "C"), (14, "D"), (0, "D"), (-50, "D")],
)
def test_grade_bands(fit: float, grade: str) -> None:
    assert RS.grade_for(fit) == grade


# --- engagement: points, caps, frequency, decay ---------------------------------------------------


def test_engagement_points_per_event() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("email_open", T0), ev("email_click", T0), ev("webinar_attended", T0),
                 ev("content_download", T0, offer="ebook"), ev("page_view", T0, path="/blog/how-to")])
    assert engagement_parts(state, RS, T0) == {
        "email-open": 1, "email-click": 3, "webinar-attended": 15, "content-download": 10, "blog-view": 1,
    }
    assert engagement_at(state, RS, T0) == 30


def test_events_without_a_matching_rule_score_nothing() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("page_view", T0, path="/"), ev("page_view", T0, path="/about"), ev("identify", T0)])
    assert engagement_at(state, RS, T0) == 0
    assert state.event_count == 4


def test_plain_form_submissions_count_a_little_and_are_capped() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("form_submitted", T0, form_id="newsletter") for _ in range(4)])
    assert engagement_parts(state, RS, T0) == {"form-submitted": 10}  # 5 points, twice per 30 days


def test_caps_per_rolling_window() -> None:
    """product-view: 3 points, at most 15 points (5 views) per 7 days."""
    state = persona(C_TRAITS)
    views = [ev("page_view", T0 + i, path=f"/product/{i}") for i in range(8)]
    feed(state, views)
    assert engagement_parts(state, RS, T0 + 7)["product-view"] == pytest.approx(15, rel=1e-5)
    counted = [T0 + i for i in range(5)]
    # Still inside the 7 days that began with the first counted view: refused.
    feed(state, [ev("page_view", T0 + 7 * DAY - 10, path="/product/x")])
    # Once the earliest counted views fall out of the window, views count again.
    late = T0 + 7 * DAY + 10
    feed(state, [ev("page_view", late, path="/integrations/slack")])
    counted.append(late)
    expected = sum(decayed(3, at, late) for at in counted)
    assert engagement_parts(state, RS, late)["product-view"] == pytest.approx(expected)


def test_email_opens_stop_counting_after_the_cap() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("email_open", T0 + i * 3600) for i in range(12)])
    now = T0 + 11 * 3600
    assert engagement_parts(state, RS, now)["email-open"] == pytest.approx(
        sum(decayed(1, T0 + i * 3600, now) for i in range(5))
    )


def test_lifetime_caps() -> None:
    """careers-view: -10, at most twice ever; unsubscribe: -15, once ever."""
    state = persona(C_TRAITS)
    times = [T0 + i * 40 * DAY for i in range(5)]
    feed(state, [ev("page_view", t, path="/careers") for t in times])
    feed(state, [ev("unsubscribe", t) for t in times])
    now = times[-1]
    parts = engagement_parts(state, RS, now)
    assert parts["careers-view"] == pytest.approx(decayed(-10, times[0], now) + decayed(-10, times[1], now))
    assert parts["unsubscribe"] == pytest.approx(decayed(-15, times[0], now))


def test_frequency_bonus_three_pricing_views_within_seven_days() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("page_view", T0, path="/pricing"), ev("page_view", T0 + 3 * DAY, path="/pricing")])
    assert "pricing-burst" not in engagement_parts(state, RS, T0 + 3 * DAY)
    # Day 8: the view on day 0 has left the window, so only two views are within 7 days.
    feed(state, [ev("page_view", T0 + 8 * DAY, path="/pricing/enterprise")])
    assert "pricing-burst" not in engagement_parts(state, RS, T0 + 8 * DAY)
    # Day 9: days 3, 8 and 9 are within 7 days: the bonus.
    feed(state, [ev("page_view", T0 + 9 * DAY, path="/pricing")])
    now = T0 + 9 * DAY
    assert engagement_parts(state, RS, now)["pricing-burst"] == pytest.approx(15)
    # After an award the count starts again: two more views are not another burst, a third is.
    feed(state, [ev("page_view", now + 60, path="/pricing"), ev("page_view", now + 120, path="/pricing")])
    assert engagement_parts(state, RS, now + 120)["pricing-burst"] == pytest.approx(15, rel=1e-4)
    feed(state, [ev("page_view", now + 180, path="/pricing")])
    assert engagement_parts(state, RS, now + 180)["pricing-burst"] == pytest.approx(30, rel=1e-4)


def test_pricing_views_capped_while_burst_counts() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("page_view", T0 + i, path="/pricing") for i in range(6)])
    parts = engagement_parts(state, RS, T0 + 5)
    assert parts["pricing-view"] == pytest.approx(30, rel=1e-5)  # 3 per 7 days
    assert parts["pricing-burst"] == pytest.approx(30, rel=1e-5)  # views 1-3 and 4-6


def test_decay_halves_after_one_half_life() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("trial_signup", T0)])
    assert engagement_at(state, RS, T0) == 25
    assert engagement_at(state, RS, T0 + 30 * DAY) == pytest.approx(12.5)
    assert engagement_at(state, RS, T0 + 60 * DAY) == pytest.approx(6.25)


def test_rules_may_have_their_own_half_life() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("page_view", T0, path="/blog/post")])  # blog-view: 14-day half-life
    assert engagement_parts(state, RS, T0 + 14 * DAY)["blog-view"] == pytest.approx(0.5)


def test_decayed_sum_does_not_depend_on_arrival_order() -> None:
    events = [ev("trial_signup", T0), ev("webinar_attended", T0 + 5 * DAY), ev("email_click", T0 + 9 * DAY)]
    forward, backward = persona(C_TRAITS), persona(C_TRAITS)
    feed(forward, events)
    feed(backward, reversed(events))
    now = T0 + 20 * DAY
    assert engagement_at(backward, RS, now) == pytest.approx(engagement_at(forward, RS, now))


def test_negative_points() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("page_view", T0, path="/jobs/open-roles"), ev("meeting_canceled", T0), ev("spam_report", T0),
                 ev("email_bounce", T0)])
    assert engagement_parts(state, RS, T0) == {
        "careers-view": -10, "meeting-canceled": -20, "spam-report": -40, "email-bounce": -10,
    }
    assert engagement_at(state, RS, T0) == -80
    # Negative engagement fades too: the penalty halves after a half-life.
    assert engagement_at(state, RS, T0 + 30 * DAY) == pytest.approx(-40)


def test_future_timestamps_are_clamped() -> None:
    state = persona(C_TRAITS)
    feed(state, [])
    apply_event(state, ev("trial_signup", T0 + 365 * DAY), RS, now=T0)
    assert state.last_seen == T0 + FUTURE_SKEW
    assert state.engagement_by_rule["trial-signup"][1] == T0 + FUTURE_SKEW


def test_redelivered_event_changes_nothing() -> None:
    state = persona(B_TRAITS)
    event = ev("trial_signup", T0 + 60, traits={"phone": "+1 555"})
    feed(state, [event])
    before = state.to_dict()
    assert apply_event(state, event, RS, now=T0 + 3600) == []
    assert state.to_dict() == before


# --- disqualifiers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "traits", "reason"),
    [
        ("spy@leadlytics.com", A_TRAITS, "Works for a competitor"),
        ("someone@mailinator.com", A_TRAITS, "Disposable or temporary email address"),
        ("kim@mit.edu", A_TRAITS, "Student or academic-only interest"),
        ("kim@ox.ac.uk", A_TRAITS, "Student or academic-only interest"),
        ("kim@acme.com", {**A_TRAITS, "job_title": "Student"}, "Student or academic-only interest"),
        ("kim@acme.com", {**A_TRAITS, "job_title": "Looking for a job in sales"}, "Job seeker, not a buyer"),
        ("kim@acme.com", {**A_TRAITS, "inquiry_type": "Job application"}, "Job seeker, not a buyer"),
    ],
)
def test_disqualifiers_stop_the_lead_reaching_sales(email: str, traits: dict[str, Any], reason: str) -> None:
    state = lead(email)
    transitions = feed(state, [ev("identify", T0, traits=traits)])
    assert stages(transitions) == [("lead", "disqualified")]
    assert transitions[0].reason == f"disqualified: {reason}"
    assert state.disqualified_reason == reason
    # A-grade fit and a hand-raise would otherwise fast-track: nothing moves now.
    assert feed(state, [ev("demo_request", T0 + 60), ev("meeting_booked", T0 + 120)]) == []
    assert state.stage == "disqualified"
    assert apply_outcome(state, "accepted", RS, T0 + 180) == []
    assert state.stage == "disqualified"


def test_disqualifier_applies_to_an_mql_too() -> None:
    state = persona(B_TRAITS)
    assert stages(feed(state, [ev("trial_signup", T0), ev("page_view", T0, path="/pricing")])) == [("lead", "mql")]
    transitions = feed(state, [ev("identify", T0 + 60, traits={"job_title": "PhD candidate"})])
    assert stages(transitions) == [("mql", "disqualified")]


def test_free_mail_is_not_a_disqualifier_by_default() -> None:
    state = persona(A_TRAITS, email="pat@gmail.com")
    assert state.stage == "lead"
    assert state.fit == 65  # 85 - 10 corporate + (-10) free mail


# --- stages ---------------------------------------------------------------------------------------


def test_mql_at_grade_b_and_30_points() -> None:
    state = persona(B_TRAITS)
    assert feed(state, [ev("trial_signup", T0)]) == []  # 25 points: not yet
    transitions = feed(state, [ev("email_click", T0 + 60), ev("email_click", T0 + 120)])
    assert stages(transitions) == [("lead", "mql")]
    # 25 decayed a minute, + 3 + 3: the engagement shown cut, with the threshold it crossed
    assert transitions[0].reason == "engagement 30.9 of 30 needed, fit B (45)"
    assert transitions[0].event_id is not None
    assert state.stage == "mql"
    assert state.handed_off_at is None  # MQLs are nurtured by marketing, not handed to sales


def test_grade_c_engagement_alone_is_not_an_mql() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("trial_signup", T0), ev("webinar_attended", T0), ev("webinar_registered", T0)])
    assert engagement_at(state, RS, T0) == 45
    assert state.stage == "lead"


def test_hand_raiser_with_fit_c_becomes_mql_then_sql_in_one_event() -> None:
    state = persona(C_TRAITS)
    transitions = feed(state, [ev("demo_request", T0 + 60, form_id="demo")])
    assert stages(transitions) == [("lead", "mql"), ("mql", "sql")]
    assert all(t.reason == "hand-raiser: Requested a demo" for t in transitions)  # the rule's label
    assert not any(t.fast_track for t in transitions)
    assert state.handed_off_at == T0 + 60
    assert state.key_events[-1]["label"] == "Requested a demo"


def test_hand_raiser_with_fit_d_stays_a_lead() -> None:
    state = persona(D_TRAITS, email="pat@gmail.com")
    assert feed(state, [ev("contact_sales", T0)]) == []
    assert state.stage == "lead"


def test_grade_a_reaches_sql_on_engagement() -> None:
    state = persona(A_TRAITS)
    transitions = feed(state, [ev("webinar_attended", T0), ev("webinar_attended", T0)])
    assert stages(transitions) == [("lead", "mql")]  # 30 points
    transitions = feed(state, [ev("trial_signup", T0), ev("content_download", T0 + 3, offer="roi-guide")])
    assert stages(transitions) == [("mql", "sql")]  # 65 points
    assert not transitions[0].fast_track


def test_grade_b_needs_a_hand_raise_for_sql() -> None:
    state = persona(B_TRAITS)
    feed(state, [ev("trial_signup", T0), ev("webinar_attended", T0), ev("webinar_attended", T0),
                 ev("content_download", T0, offer="x"), ev("content_download", T0, offer="y")])
    assert engagement_at(state, RS, T0) == 75
    assert state.stage == "mql"
    assert stages(feed(state, [ev("meeting_booked", T0 + 60)])) == [("mql", "sql")]


def test_fast_track_for_a_grade_hand_raiser() -> None:
    state = persona(A_TRAITS)
    transitions = feed(state, [ev("demo_request", T0 + 60, form_id="demo")])
    assert stages(transitions) == [("lead", "sql")]  # no marketing nurture
    assert transitions[0].fast_track
    assert transitions[0].reason == "fast track: hand-raiser: Requested a demo"
    assert state.fast_track
    route = RS.route_for(context(state, RS, state.last_seen))
    assert (route.name, route.channel, route.sla_hours) == ("fast-track", "#sales", 2)


def test_routes() -> None:
    enterprise = persona({**A_TRAITS, "company_size": 20000})
    emea = persona({**B_TRAITS, "country": "Germany"})
    other = persona(B_TRAITS)
    assert RS.route_for(context(enterprise, RS, T0)).channel == "#sales-enterprise"
    assert RS.route_for(context(enterprise, RS, T0)).escalation_channel == "#sales-leadership"
    assert RS.route_for(context(emea, RS, T0)).channel == "#sales-emea"
    assert RS.route_for(context(other, RS, T0)) == RS.default_route
    assert RS.default_route.sla_hours == 24


def test_stages_only_move_forward_decay_never_demotes() -> None:
    state = persona(B_TRAITS)
    feed(state, [ev("trial_signup", T0), ev("content_download", T0, offer="ebook")])
    assert state.stage == "mql"
    # A year later engagement has faded far below 30 and the lead turned negative: still an MQL.
    later = T0 + 365 * DAY
    assert feed(state, [ev("unsubscribe", later), ev("page_view", later, path="/careers")]) == []
    assert engagement_at(state, RS, later) < 0
    assert state.stage == "mql"
    # SQL is not undone by anything the lead does either.
    assert stages(feed(state, [ev("demo_request", later + 60)])) == [("mql", "sql")]
    assert feed(state, [ev("spam_report", later + 120), ev("identify", later + 180, traits={"company_size": 2})]) == []
    assert state.stage == "sql"


# --- sales feedback -------------------------------------------------------------------------------


def test_recycle_rearms_after_the_cooldown() -> None:
    state = persona(A_TRAITS)
    feed(state, [ev("demo_request", T0)])
    assert state.stage == "sql"
    recycled_at = T0 + DAY
    transitions = apply_outcome(state, "recycled", RS, recycled_at, reason="no budget this year")
    assert stages(transitions) == [("sql", "recycled")]
    assert transitions[0].manual
    assert transitions[0].reason == "sales: recycled (no budget this year)"
    assert state.engagement_by_rule == {} and state.caps == {} and state.frequency_matches == {}
    assert not state.fast_track
    assert state.handed_off_at is None
    # Within the 14-day cooldown even a hand-raise does not requalify it.
    assert feed(state, [ev("demo_request", recycled_at + 13 * DAY)]) == []
    assert state.stage == "recycled"
    # After the cooldown it qualifies again on what it has done since.
    transitions = feed(state, [ev("email_open", recycled_at + 15 * DAY)])
    assert stages(transitions) == [("recycled", "mql")]
    transitions = feed(state, [ev("contact_sales", recycled_at + 16 * DAY)])
    assert stages(transitions) == [("mql", "sql")]


def test_recycled_hand_raiser_can_fast_track_again() -> None:
    state = persona(A_TRAITS)
    feed(state, [ev("demo_request", T0)])
    apply_outcome(state, "rejected", RS, T0)
    transitions = feed(state, [ev("meeting_booked", T0 + 15 * DAY)])
    assert stages(transitions) == [("recycled", "sql")]
    assert transitions[0].fast_track


def test_recycling_twice_is_a_no_op() -> None:
    state = persona(A_TRAITS)
    feed(state, [ev("demo_request", T0)])
    assert len(apply_outcome(state, "recycled", RS, T0 + 1)) == 1
    assert apply_outcome(state, "rejected", RS, T0 + 2) == []


def test_outcomes_through_the_funnel() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("demo_request", T0)])
    assert state.stage == "sql"
    assert apply_outcome(state, "accepted", RS, T0 + 3600) == []  # already an SQL: only recorded
    assert state.accepted_at == T0 + 3600
    assert stages(apply_outcome(state, "opportunity", RS, T0 + DAY)) == [("sql", "opportunity")]
    assert apply_outcome(state, "opportunity", RS, T0 + DAY) == []
    won = apply_outcome(state, "won", RS, T0 + 30 * DAY)
    assert stages(won) == [("opportunity", "customer")]
    assert won[0].manual and won[0].reason == "sales: won"
    assert apply_outcome(state, "opportunity", RS, T0 + 31 * DAY) == []  # never backwards
    # A customer's later activity does not move it anywhere.
    assert feed(state, [ev("demo_request", T0 + 40 * DAY)]) == []
    assert state.stage == "customer"


def test_lost_deal_is_recycled() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("demo_request", T0)])
    apply_outcome(state, "opportunity", RS, T0 + DAY)
    assert stages(apply_outcome(state, "lost", RS, T0 + 2 * DAY, reason="chose a competitor")) == [
        ("opportunity", "recycled")
    ]


def test_accepting_an_mql_makes_it_an_sql() -> None:
    state = persona(B_TRAITS)
    feed(state, [ev("trial_signup", T0), ev("content_download", T0, offer="x")])
    transitions = apply_outcome(state, "accepted", RS, T0 + 60)
    assert stages(transitions) == [("mql", "sql")]
    assert transitions[0].manual
    assert state.handed_off_at == T0 + 60


def test_sales_can_disqualify() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("demo_request", T0)])
    transitions = apply_outcome(state, "disqualified", RS, T0 + 60, reason="fake company")
    assert stages(transitions) == [("sql", "disqualified")]
    assert state.disqualified_reason == "fake company"
    assert apply_outcome(state, "disqualified", RS, T0 + 120) == []


def test_sales_disqualification_without_reason() -> None:
    state = persona(C_TRAITS)
    apply_outcome(state, "disqualified", RS, T0)
    assert state.disqualified_reason == "disqualified by sales"


def test_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        apply_outcome(persona(C_TRAITS), "maybe", RS, T0)
    assert set(OUTCOMES) == {"accepted", "rejected", "recycled", "opportunity", "won", "lost", "disqualified"}


# --- transitions ----------------------------------------------------------------------------------


def _journey(email: str) -> list[Transition]:
    state = persona(C_TRAITS, email=email)
    out = feed(state, [ev("demo_request", T0, event_id="demo-1")])
    out += apply_outcome(state, "recycled", RS, T0 + DAY)
    out += feed(state, [ev("contact_sales", T0 + 20 * DAY, event_id="contact-1")])
    out += apply_outcome(state, "won", RS, T0 + 40 * DAY)
    return out


def test_transition_ids_are_deterministic() -> None:
    first, second = _journey("pat@acme.com"), _journey("pat@acme.com")
    assert [t.to_dict() for t in first] == [t.to_dict() for t in second]
    ids = [t.id for t in first]
    assert len(set(ids)) == len(ids) == 6  # mql, sql, recycled, mql, sql, customer
    assert all(i.startswith("t_") for i in ids)
    other = _journey("sam@acme.com")
    assert not set(ids) & {t.id for t in other}


def test_transition_records_and_history() -> None:
    state = persona(C_TRAITS)
    [to_mql, to_sql] = feed(state, [ev("demo_request", T0 + 5, event_id="demo-1")])
    assert to_sql.lead_id == state.lead_id
    assert to_sql.at == T0 + 5
    assert to_sql.event_id == "demo-1"
    assert to_sql.ruleset_version == 1
    assert Transition.from_dict(to_sql.to_dict()) == to_sql
    assert [h["transition_id"] for h in state.stage_history] == [to_mql.id, to_sql.id]
    assert state.transitions_count == 2


# --- explain --------------------------------------------------------------------------------------


def test_explain() -> None:
    state = persona(A_TRAITS)
    feed(state, [ev("page_view", T0, path="/pricing"), ev("email_open", T0), ev("page_view", T0, path="/careers")])
    now = T0 + 30 * DAY
    report = explain(state, RS, now)
    assert report["fit"]["score"] == 85
    assert report["fit"]["grade"] == "A"
    assert {r["rule"] for r in report["fit"]["rules"]} == set(state.fit_rules)
    assert {"rule": "title-executive", "label": "Executive or VP title", "points": 30} in report["fit"]["rules"]
    rules = report["engagement"]["rules"]
    assert [r["rule"] for r in rules] == ["pricing-view", "careers-view", "email-open"]  # largest first
    assert [r["points"] for r in rules] == pytest.approx([5, -5, 0.5])
    assert rules[1]["label"] == "Visited the careers page (job seeker signal)"
    assert report["engagement"]["score"] == pytest.approx(0.5)
    assert report["engagement"]["score"] == engagement_at(state, RS, now)
    assert report["engagement"]["at"] == now
    assert report["disqualified"] is None
    assert report["ruleset_version"] == 1


def test_explain_never_looks_into_the_past() -> None:
    state = persona(C_TRAITS)
    feed(state, [ev("trial_signup", T0 + 10 * DAY)])
    assert explain(state, RS, T0)["engagement"]["at"] == T0 + 10 * DAY


def test_explain_names_the_disqualifier() -> None:
    state = lead("x@mailinator.com")
    feed(state, [ev("identify", T0, traits=A_TRAITS)])
    assert explain(state, RS, T0)["disqualified"] == "Disposable or temporary email address"


def test_score_is_the_functional_form() -> None:
    state = persona(B_TRAITS)
    before = state.to_dict()
    updated, transitions = score(state, ev("demo_request", T0 + 60), RS, now=T0 + 60)
    assert stages(transitions) == [("lead", "mql"), ("mql", "sql")]
    assert updated.stage == "sql"
    assert state.to_dict() == before
    assert LeadState.from_dict(updated.to_dict()).to_dict() == updated.to_dict()


# --- caps and frequency together (custom rule set) ------------------------------------------------


def _burst_ruleset(caps: dict[str, Any] | None) -> Any:
    rule: dict[str, Any] = {
        "id": "burst", "label": "2 pricing views in 7 days", "events": ["page_view"], "points": 15,
        "when": {"field": "event.path", "op": "starts_with", "value": "/pricing"},
        "frequency": {"count": 2, "within_days": 7},
    }
    if caps:
        rule["caps"] = caps
    data = {
        "name": "burst", "decay": {"half_life_days": None}, "grades": [{"grade": "D"}], "engagement": [rule],
        "stages": {"mql": {"when": {"field": "engagement", "op": "gte", "value": 1000}},
                   "sql": {"when": {"field": "engagement", "op": "gte", "value": 2000}}},
    }
    return compile_ruleset(RuleSet.model_validate(data), version=1)


def test_a_frequency_bonus_can_be_capped() -> None:
    """"At most one burst bonus a month": the cap counts awards of the frequency rule."""
    uncapped, capped = _burst_ruleset(None), _burst_ruleset({"max_count": 1, "window_days": 30})
    views = [ev("page_view", T0 + i * 60, path="/pricing") for i in range(6)]
    for rs, expected in ((uncapped, 45), (capped, 15)):
        state = lead()
        for view in views:
            apply_event(state, view, rs, now=view.ts)
        assert engagement_at(state, rs, T0 + DAY) == expected
    state = lead()
    for view in [*views, ev("page_view", T0 + 31 * DAY, path="/pricing"), ev("page_view", T0 + 31 * DAY + 60, path="/pricing")]:
        apply_event(state, view, capped, now=view.ts)
    assert engagement_at(state, capped, T0 + 32 * DAY) == 30  # a new month, a new bonus


def test_a_late_event_does_not_make_a_burst_from_views_further_apart_than_the_window() -> None:
    rs = _burst_ruleset(None)
    state = lead()
    for view in [ev("page_view", T0 + 20 * DAY, path="/pricing"), ev("page_view", T0 + 11 * DAY, path="/pricing")]:
        apply_event(state, view, rs, now=T0 + 20 * DAY)
    assert engagement_at(state, rs, T0 + 20 * DAY) == 0  # 9 days apart: no burst
    apply_event(state, ev("page_view", T0 + 15 * DAY, path="/pricing"), rs, now=T0 + 20 * DAY)
    assert engagement_at(state, rs, T0 + 20 * DAY) == 15  # days 15 and 20 (or 11 and 15) are within 7


def test_a_very_late_capped_event_then_more_events() -> None:
    """A late hit older than any window still open is pruned at once; later hits must still count."""
    state = persona(C_TRAITS)
    feed(state, [ev("email_open", T0 + 100 * DAY)])
    apply_event(state, ev("email_click", T0), RS, now=T0 + 100 * DAY)  # 100 days late: pruned, list empty
    apply_event(state, ev("email_click", T0 + 1), RS, now=T0 + 100 * DAY)
    apply_event(state, ev("email_click", T0 + 100 * DAY), RS, now=T0 + 100 * DAY)
    assert engagement_parts(state, RS, T0 + 100 * DAY)["email-click"] == pytest.approx(
        decayed(3, T0, T0 + 100 * DAY) + decayed(3, T0 + 1, T0 + 100 * DAY) + 3
    )
