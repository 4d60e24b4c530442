"""What people are told about a lead: transition reasons with their thresholds, rule labels, the
events that count as activity, scores that never contradict the stage, and free-mail typos."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.display import shown_score
from chalicelib.emails import _NEIGHBOURS, FREE_MAIL, likely_typo
from chalicelib.engine import apply_event, explain
from chalicelib.engine.explain import engagement_needed
from chalicelib.rules.compile import compile_ruleset, stage_floors
from chalicelib.rules.conditions import Context, compile_condition
from chalicelib.rules.model import RuleSet
from tests.engine.test_engine import A_TRAITS, B_TRAITS, DAY, RS, T0, ev, feed, lead, persona


def test_an_sql_on_engagement_says_the_threshold_it_crossed() -> None:
    state = persona(A_TRAITS)
    feed(state, [ev("webinar_attended", T0), ev("webinar_attended", T0)])  # 30: MQL
    [sql] = feed(state, [ev("trial_signup", T0), ev("content_download", T0, offer="roi-guide")])
    assert sql.to_stage == "sql"
    assert sql.reason == "engagement 65 of 60 needed, fit A (85)"


def test_a_hand_raiser_reason_uses_the_rule_label() -> None:
    state = persona(B_TRAITS)
    [mql, sql] = feed(state, [ev("meeting_booked", T0)])
    assert mql.reason == sql.reason == "hand-raiser: Booked a meeting"


def test_a_hand_raiser_no_engagement_rule_scores_is_named_in_words() -> None:
    body = RS.source.model_dump(by_alias=True)
    body["engagement"] = [r for r in body["engagement"] if r["id"] != "demo-request"]
    compiled = compile_ruleset(RuleSet.model_validate(body), version=2)
    state = persona(B_TRAITS)
    transitions = apply_event(state, ev("demo_request", T0 + 60, form_id="demo"), compiled, T0 + 60)
    assert [t.reason for t in transitions] == ["hand-raiser: Demo request"] * 2
    assert state.key_events[-1]["label"] == "Demo request"


def test_the_event_that_tipped_the_lead_over_is_a_key_event() -> None:
    state = persona(B_TRAITS)
    feed(state, [ev("trial_signup", T0), ev("email_click", T0 + 60)])  # 25 + 3: not yet
    assert [k["label"] for k in state.key_events] == ["Started a free trial"]  # a 3-point click is not key
    [mql] = feed(state, [ev("email_click", T0 + 120)])  # 31: this click made the MQL
    assert mql.to_stage == "mql"
    assert [k["label"] for k in state.key_events] == ["Started a free trial", "Clicked a link in a marketing email"]
    assert state.key_events[-1]["at"] == T0 + 120


def test_a_frequency_bonus_is_not_listed_as_an_activity() -> None:
    state = persona(B_TRAITS)
    feed(state, [ev("page_view", T0 + i * 60, path="/pricing") for i in range(3)])  # 3 x 10 + burst 15
    labels = [k["label"] for k in state.key_events]
    assert labels[:3] == ["Viewed the pricing page"] * 3
    assert "3 pricing-page views within 7 days" not in labels
    # ...it is a reason (a rule that scored), not an event
    assert "pricing-burst" in {r["rule"] for r in explain(state, RS, T0 + 180)["engagement"]["rules"]}


def test_a_key_event_that_also_tips_the_lead_is_listed_once() -> None:
    state = persona(B_TRAITS)
    feed(state, [ev("trial_signup", T0)])
    transitions = feed(state, [ev("page_view", T0 + 60, path="/pricing")])
    assert [t.to_stage for t in transitions] == ["mql"]
    assert state.key_events[-1]["label"] == "Viewed the pricing page"
    assert sum(k["at"] == T0 + 60 for k in state.key_events) == 1  # once, not again for the tip


def test_the_decayed_score_is_shown_cut_never_rounded_up_to_a_threshold() -> None:
    assert shown_score(49.9997) == 49.9
    assert shown_score(39.999993633350336) == 39.9
    assert shown_score(2.3) == 2.3 and shown_score(60.0) == 60.0 and shown_score(-0.05) == -0.1


@given(st.floats(min_value=-1e6, max_value=1e6), st.integers(min_value=-10_000, max_value=10_000))
def test_a_shown_score_reaches_a_one_decimal_threshold_exactly_when_the_score_does(value: float, tenths: int) -> None:
    threshold = tenths / 10
    assert (shown_score(value) >= threshold) == (value >= threshold)


def test_an_mql_shown_just_under_its_threshold_after_decay() -> None:
    state = persona(B_TRAITS)
    feed(state, [ev("trial_signup", T0), ev("content_download", T0, offer="x"),
                 ev("content_download", T0, offer="y")])  # 45: MQL
    # decayed to a hair under 30 a month later: the explanation does not claim 30.0
    half_life = 30 * DAY
    t = T0 + half_life * math.log2(45 / 29.99995)
    score = explain(state, RS, t)["engagement"]["score"]
    assert 29.9999 < score < 30
    assert shown_score(score) == 29.9


def test_engagement_needed_takes_the_branch_the_lead_is_in() -> None:
    when = RS.source.stages.sql.when
    test, floors = compile_condition(when, RS.lists), stage_floors(when)
    assert engagement_needed(floors, test, Context({}, grade="A", engagement=72.0)) == 60
    assert engagement_needed(floors, test, Context({}, grade="A", engagement=50.0)) is None  # not reached
    assert engagement_needed(floors, test, Context({}, grade="C", engagement=0.0, hand_raiser=True)) is None
    strict = RuleSet.model_validate({**RS.source.model_dump(by_alias=True), "stages": {
        **RS.source.stages.model_dump(by_alias=True),
        "sql": {"when": {"field": "engagement", "op": "gt", "value": 60.25}}}}).stages.sql.when
    ctx = Context({}, engagement=60.3)
    assert engagement_needed(stage_floors(strict), compile_condition(strict, RS.lists), ctx) == 60.25
    assert ctx.engagement == 60.3  # the context is left as it was


@pytest.mark.parametrize(("domain", "meant"), [
    ("gmial.com", "gmail.com"), ("gmal.com", "gmail.com"), ("gmaill.com", "gmail.com"), ("gmail.con", "gmail.com"),
    ("hotmial.com", "hotmail.com"), ("yahooo.com", "yahoo.com"), ("outlok.com", "outlook.com"),
    ("GMIAL.COM", "gmail.com"),
    ("gmail.com", None), ("acme.com", None), ("mail.com", None), ("ymail.com", None), ("email.com", None),
    ("gamil.co", None),  # two edits: not "likely"
])  # fmt: skip
def test_likely_typos_of_free_mail_domains(domain: str, meant: str | None) -> None:
    assert likely_typo(domain) == meant


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance, the whole table (what likely_typo answers without it)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


near_free_mail = st.sampled_from(FREE_MAIL).flatmap(lambda known: st.lists(
    st.tuples(st.integers(0, len(known)), st.sampled_from(["delete", "insert", "replace", "swap"]),
              st.sampled_from("abcglmo.x-")), max_size=2,
).map(lambda edits: _edit(known, edits)))


def _edit(text: str, edits: list[tuple[int, str, str]]) -> str:
    for at, how, char in edits:
        at = min(at, len(text) - 1)
        if how == "delete":
            text = text[:at] + text[at + 1:]
        elif how == "insert":
            text = text[:at] + char + text[at:]
        elif how == "replace":
            text = text[:at] + char + text[at + 1:]
        elif at + 1 < len(text):
            text = text[:at] + text[at + 1] + text[at] + text[at + 2:]
    return text


@given(domain=near_free_mail | st.text("abcdeglmo.", max_size=16))
def test_a_likely_typo_is_the_first_free_mail_domain_one_edit_away(domain: str) -> None:
    expected = None if domain in FREE_MAIL or domain in _NEIGHBOURS else next(
        (known for known in FREE_MAIL if _edits(domain, known) == 1), None)
    assert likely_typo(domain) == expected


def test_a_free_mail_typo_is_scored_as_free_mail_and_not_disqualified_as_disposable() -> None:
    state = persona(B_TRAITS, email="joe@gmial.com")  # gmial.com is on the disposable list
    assert state.stage == "lead" and state.disqualified_reason is None
    assert state.attributes["email_domain"] == "gmail.com"
    fit = explain(state, RS, T0)["fit"]
    labels = {r["rule"]: r["label"] for r in fit["rules"]}
    assert labels["free-email"] == "Free webmail address (likely typo of gmail.com)"
    assert "corporate-email" not in labels
    assert fit["score"] == 15 + 20 - 10


def test_a_real_disposable_domain_is_still_disqualified() -> None:
    state = lead("joe@mailinator.com")
    [out] = feed(state, [ev("identify", T0, traits=B_TRAITS)])
    assert out.to_stage == state.stage == "disqualified"
    assert state.disqualified_reason == "Disposable or temporary email address"
