"""The engine's shortcuts decide exactly as the long way round.

- engagement rules by event values (``EventMemo``): the memo gives the rules whole evaluation would;
- fit rules and plan leaves by attribute values (``FieldAnswers``): the same for the lead's side;
- running engagement totals per half-life: the score equals the rules' parts, whatever the history;
- fit refreshed from the attributes that changed equals fit computed afresh;
- stage plans refreshed from what changed, and "quiet" plans skipping checks (also without computing
  the score while the points scored since cannot reach the next threshold), change no transition;
- frequency rules counted the quick way for events in order award as the definition says.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.synth import generate
from chalicelib.engine import apply_event, apply_outcome, engagement_at, new_lead
from chalicelib.engine.engagement import engagement_parts
from chalicelib.engine.fit import compute_fit
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset, RulesetCaches, compile_ruleset
from chalicelib.rules.conditions import Context, compile_condition
from chalicelib.rules.loader import default_ruleset
from chalicelib.rules.model import Leaf, RuleSet
from chalicelib.rules.plans import EventMemo, FieldAnswers, url_base
from chalicelib.state import LeadState, lead_id_for

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = 1_700_000_000.0
DAY = 86400.0

# Every kind of event leaf (path from the URL or a property, raw URL, campaign, offer, nested and
# numeric properties, source), a rule mixing event and attribute leaves, a frequency bonus, two
# half-lives, negative points, and stage rules that are monotone (MQL) and not (SQL reads `lt`).
RICH = {
    "name": "rich",
    "lists": {"competitors": ["rival.io"]},
    "grades": [{"grade": "A", "min_fit": 20}, {"grade": "B", "min_fit": 10}, {"grade": "D"}],
    "fit": [
        {"id": "vp", "label": "VP", "when": {"field": "job_title", "op": "matches", "value": "(?i)\\bvp\\b"}, "points": 15},
        {"id": "big", "label": "Big", "when": {"field": "company_size", "op": "gte", "value": 100}, "points": 10},
        {"id": "plan", "label": "Plan", "when": {"field": "custom.plan", "op": "eq", "value": "pro"}, "points": 5},
    ],
    "engagement": [
        {"id": "pricing", "label": "Pricing", "events": ["page_view"], "points": 10,
         "when": {"field": "event.path", "op": "starts_with", "value": "/pricing"},
         "caps": {"max_count": 2, "window_days": 7}},
        {"id": "burst", "label": "Burst", "events": ["page_view"], "points": 15,
         "when": {"field": "event.path", "op": "starts_with", "value": "/pricing"},
         "frequency": {"count": 2, "within_days": 3}},
        {"id": "linkedin", "label": "LinkedIn", "events": ["page_view"], "points": 2,
         "when": {"field": "event.url", "op": "contains", "value": "utm_source=linkedin"}},
        {"id": "docs-dev", "label": "Docs by a developer", "events": ["page_view"], "points": 3, "half_life_days": 7,
         "when": {"all": [{"field": "event.path", "op": "starts_with", "value": "/docs"},
                          {"field": "job_title", "op": "matches", "value": "(?i)engineer"}]}},
        {"id": "not-home", "label": "Not home", "events": ["page_view"], "points": 1,
         "when": {"not": {"field": "event.path", "op": "in", "value": ["/", "/about"]}}},
        {"id": "nurture", "label": "Nurture", "events": ["email_open", "email_click"], "points": 1,
         "when": {"field": "event.campaign", "op": "starts_with", "value": "nurture"}},
        {"id": "ebook", "label": "Ebook", "events": ["content_download"], "points": 5,
         "when": {"field": "event.offer", "op": "matches", "value": "^ebook-"}},
        {"id": "rating", "label": "Rating", "events": ["content_download"], "points": 4, "half_life_days": 7,
         "when": {"field": "event.properties.meta.rating", "op": "gte", "value": 4}},
        {"id": "partner", "label": "Partner", "events": ["email_click"], "points": 2,
         "when": {"field": "event.source", "op": "eq", "value": "partner"}},
        {"id": "unsubscribe", "label": "Unsubscribe", "events": ["unsubscribe"], "points": -20},
    ],
    "disqualifiers": [
        {"id": "competitor", "reason": "Competitor", "when": {"field": "email_domain", "op": "in_list", "value": "competitors"}},
        {"id": "student", "reason": "Student", "when": {"field": "job_title", "op": "matches", "value": "(?i)student"}},
    ],
    "stages": {
        "hand_raisers": ["demo_request"],
        "mql": {"when": {"any": [
            {"all": [{"field": "grade", "op": "in", "value": ["A", "B"]}, {"field": "engagement", "op": "gte", "value": 20}]},
            {"field": "hand_raiser", "op": "eq", "value": True}]}},
        "sql": {"when": {"all": [{"field": "grade", "op": "eq", "value": "A"}, {"field": "engagement", "op": "gte", "value": 35},
                                 {"not": {"field": "engagement", "op": "lt", "value": 35}}]}},
    },
}
RICH_RS = compile_ruleset(RuleSet.model_validate(RICH), version=1)
DEFAULT = compile_ruleset(default_ruleset(), version=1)
# RICH with stage rules that only ever turn true with a higher score (so plans go quiet), and a
# hand-raiser that is not a fast track.
MONOTONE = {**RICH, "name": "monotone", "stages": {**RICH["stages"], "sql": {"when": {"all": [
    {"field": "grade", "op": "eq", "value": "A"}, {"field": "engagement", "op": "gte", "value": 35}]}}}}

PROPERTY_VALUES: list[Any] = [
    None, "/pricing", "/pricing/team", "/docs/api", "/", "/about", 5, 4.0, True, ["/pricing"], {"a": 1}, "",
]
URLS = [None, "https://x.io/pricing?utm_source=linkedin", "https://x.io/pricing#plans", "https://x.io/docs/api?a=1",
        "https://x.io/", "/pricing?x", "https://x.io/about?utm_source=google#top", 7, ["https://x.io/pricing"],
        "http://[::1/pricing?utm_source=linkedin"]


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    out = []
    ts = T0
    for i in range(draw(st.integers(1, 40))):
        ts += draw(st.sampled_from([0.0, 60.0, 3600.0, DAY, 2.5 * DAY, 8 * DAY]))
        kind = draw(st.sampled_from(["page_view", "page_view", "email_open", "email_click", "content_download",
                                     "unsubscribe", "demo_request", "identify"]))
        props: dict[str, Any] = {}
        if kind == "page_view":
            if draw(st.booleans()):
                props["url"] = draw(st.sampled_from(URLS))
            else:
                props["path"] = draw(st.sampled_from(PROPERTY_VALUES))
        elif kind in ("email_open", "email_click"):
            props["campaign"] = draw(st.sampled_from(["nurture-1", "nurture-2", "launch", None, 3]))
        elif kind == "content_download":
            props = draw(st.sampled_from([{"offer": "ebook-a"}, {"form_id": "ebook-b"}, {"offer": "case"},
                                          {"meta": {"rating": 5}}, {"meta": {"rating": "4"}}, {"meta": 3}, {}]))
        traits = draw(st.sampled_from([{}, {}, {"job_title": "VP Engineering"}, {"job_title": "Engineer"},
                                       {"company_size": "250"}, {"plan": "pro"}, {"company_size": 5},
                                       {"job_title": "Student"}, {"department": "Interns"}]))
        source = draw(st.sampled_from(["api", "partner"]))
        out.append(Event(f"e{i}", kind, ts, properties=props, traits=traits, source=source))
    return out


Feedback = tuple[str, float]  # (outcome, time)


@st.composite
def timelines(draw: st.DrawFn) -> list[Event | Feedback]:
    """Events with sales feedback among them (a lead settles at SQL, is recycled, qualifies again)."""
    out: list[Event | Feedback] = []
    for event in draw(events()):
        out.append(event)
        if draw(st.integers(0, 4)) == 0:
            outcome = draw(st.sampled_from(["recycled", "rejected", "accepted", "disqualified", "opportunity"]))
            out.append((outcome, event.ts + 1))
    return out


def _replay(stream: list[Event] | list[Event | Feedback], rs: CompiledRuleset,
            email: str = "pat@acme.io") -> tuple[dict[str, Any], list[Any]]:
    state = new_lead("L1", email)
    transitions = []
    for item in stream:
        if isinstance(item, Event):
            transitions += [t.to_dict() for t in apply_event(state, item, rs, item.ts)]
        else:
            transitions += [t.to_dict() for t in apply_outcome(state, item[0], rs, item[1])]
    return state.to_dict(), transitions


def _long_way(rs: CompiledRuleset) -> CompiledRuleset:
    """The same rule set without its shortcuts: no memo by event or attribute values, no stage planner."""
    return replace(rs, caches=RulesetCaches())


# --- engagement rules by event values ---------------------------------------------------------------


@pytest.mark.parametrize("source", [RICH, MONOTONE], ids=["rich", "monotone"])
@FAST
@given(stream=events())
def test_shortcuts_match_the_long_way_on_random_streams(source: dict[str, Any], stream: list[Event]) -> None:
    rs = compile_ruleset(RuleSet.model_validate(source), 1)  # a fresh memo for each example
    assert _replay(stream, rs) == _replay(stream, _long_way(rs))


@pytest.mark.parametrize("source", [RICH, MONOTONE], ids=["rich", "monotone"])
@FAST
@given(stream=timelines())
def test_shortcuts_match_the_long_way_with_sales_feedback(source: dict[str, Any], stream: list[Event | Feedback]) -> None:
    # A short cooldown (recycled leads qualify again within the stream), and a disqualifier reading an
    # attribute no fit rule reads (changed while the lead is settled, the fit stays the same).
    interns = {"id": "interns", "reason": "Intern", "when": {"field": "department", "op": "eq", "value": "Interns"}}
    rs = compile_ruleset(RuleSet.model_validate({
        **source, "disqualifiers": [*source["disqualifiers"], interns],
        "stages": {**source["stages"], "recycle_cooldown_days": 1}}), 1)
    assert _replay(stream, rs) == _replay(stream, _long_way(rs))


@FAST
@given(url=st.text(alphabet=st.sampled_from("ab/:?#.%& \t\n[]@x1"), max_size=25))
def test_url_base_keeps_the_path(url: str) -> None:
    def path(u: str) -> Any:
        try:
            return urlsplit(u).path
        except ValueError as error:  # an invalid netloc is invalid either way
            return type(error)

    assert path(url_base(url)) == path(url)


def test_memo_is_bounded_and_stops_when_keys_do_not_repeat() -> None:
    rs = compile_ruleset(RICH_RS.source, 1)
    rules = rs.caches.events["page_view"]
    assert isinstance(rules, EventMemo)
    for i in range(3 * EventMemo.MAX_KEYS):  # every URL new: the rule reading event.url makes every key new
        event = Event(f"e{i}", "page_view", T0 + i, properties={"url": f"https://x.io/pricing?gclid={i}"})
        assert len(rules.candidates(event)) >= 2
        assert rules.memo is None or len(rules.memo) <= EventMemo.MAX_KEYS
    assert rules.memo is None  # fell back to testing rule by rule


def test_memo_ignores_tracking_parameters_when_only_the_path_is_read() -> None:
    rs = compile_ruleset(default_ruleset(), 1)
    rules = rs.caches.events["page_view"]
    for i in range(100):
        rules.candidates(Event(f"e{i}", "page_view", T0, properties={"url": f"https://x.io/pricing?gclid={i}#x"}))
    assert rules.memo is not None and len(rules.memo) == 1


def test_a_copy_with_other_rules_does_not_use_the_memo() -> None:
    never = replace(DEFAULT, engagement_by_type={k: tuple(replace(r, test=lambda c: False) if r.test else r for r in v)
                                                 for k, v in DEFAULT.engagement_by_type.items()})
    state = new_lead("L1", "pat@acme.io")
    apply_event(state, Event("e1", "page_view", T0, properties={"path": "/pricing"}), never, T0)
    assert state.engagement_by_rule == {}


# --- running totals -----------------------------------------------------------------------------------


@FAST
@given(stream=events(), later=st.sampled_from([0.0, 1.0, DAY, 40 * DAY]))
def test_running_totals_are_the_sum_of_the_parts(stream: list[Event], later: float) -> None:
    state = new_lead("L1", "pat@acme.io")
    for event in stream:
        apply_event(state, event, RICH_RS, event.ts)
    t = state.last_seen + later
    parts = engagement_parts(state, RICH_RS, t)
    assert math.isclose(engagement_at(state, RICH_RS, t), sum(parts.values()), rel_tol=1e-9, abs_tol=1e-9)
    # Under a rule set that groups the rules by other half-lives, the totals are made afresh.
    other = compile_ruleset(RuleSet.model_validate({**RICH, "decay": {"half_life_days": 3}}), 2)
    assert other.decay_basis != RICH_RS.decay_basis
    assert math.isclose(engagement_at(state, other, t), sum(engagement_parts(state, other, t).values()),
                        rel_tol=1e-9, abs_tol=1e-9)


def test_a_state_stored_without_totals_scores_the_same() -> None:
    stream = [Event(f"e{i}", "page_view", T0 + i * DAY, properties={"path": "/pricing"}) for i in range(5)]
    state = new_lead("L1", "pat@acme.io")
    for event in stream[:3]:
        apply_event(state, event, RICH_RS, event.ts)
    stored = {k: v for k, v in json.loads(json.dumps(state.to_dict())).items() if k not in ("engagement_totals", "totals_basis")}
    old = LeadState.from_dict(stored)  # as saved before totals were kept
    assert math.isclose(engagement_at(old, RICH_RS, old.last_seen), engagement_at(state, RICH_RS, state.last_seen))
    for event in stream[3:]:
        assert apply_event(old, event, RICH_RS, event.ts) == apply_event(state, event, RICH_RS, event.ts)
    assert old.engagement_by_rule == state.engagement_by_rule and old.totals_basis == state.totals_basis


def test_recycling_clears_the_totals() -> None:
    state = new_lead("L1", "pat@acme.io")
    apply_event(state, Event("e1", "page_view", T0, properties={"path": "/pricing"}), RICH_RS, T0)
    apply_outcome(state, "recycled", RICH_RS, T0 + 1)
    assert engagement_at(state, RICH_RS, T0 + 2) == 0 and state.engagement_totals == [None] * len(RICH_RS.half_lives)


# --- fit and plans refreshed from what changed ---------------------------------------------------------


@FAST
@given(stream=events())
def test_fit_refreshed_from_changed_attributes_equals_fit_afresh(stream: list[Event]) -> None:
    state = new_lead("L1", "pat@acme.io")
    for event in stream:
        apply_event(state, event, RICH_RS, event.ts)
        fresh = copy.deepcopy(state)
        compute_fit(fresh, RICH_RS)
        assert (state.fit, state.fit_rules) == (fresh.fit, fresh.fit_rules)


def test_planned_and_quiet_engine_matches_whole_conditions_on_a_history() -> None:
    history = generate(300, seed=5, n_events=6000)
    for rs in (compile_ruleset(default_ruleset(), 1), RICH_RS, compile_ruleset(RuleSet.model_validate(MONOTONE), 1)):
        short, long = {}, {}
        for replays, ruleset in ((short, rs), (long, _long_way(rs))):
            states: dict[str, LeadState] = {}
            for event in history.events:
                if event.email:
                    state = states.setdefault(event.email, new_lead(lead_id_for(event.email), event.email))
                    replays.setdefault(event.email, []).extend(
                        t.to_dict() for t in apply_event(state, event, ruleset, event.ts))
            for email, state in states.items():
                replays[email].append(state.to_dict())
        assert short == long


# --- answers by attribute value -------------------------------------------------------------------------

ATTRIBUTE_VALUES: list[Any] = [None, "", "VP Sales", "vp sales", "Student", 1, 1.0, True, False, 100, 100.0, "100",
                               "1,200", 5, float("nan"), ["VP"], {"a": 1}]


# Fit rules whose fields interleave, with rules reading two fields among them: answers come field by
# field and must be put back in the rules' order.
INTERLEAVED = {**RICH, "name": "interleaved", "fit": [
    {"id": "vp", "label": "VP", "when": {"field": "job_title", "op": "matches", "value": "(?i)\\bvp\\b"}, "points": 15},
    {"id": "big", "label": "Big", "when": {"field": "company_size", "op": "gte", "value": 100}, "points": 10},
    {"id": "both", "label": "Pro or tiny", "points": 3, "when": {"any": [
        {"field": "custom.plan", "op": "eq", "value": "pro"}, {"field": "company_size", "op": "lt", "value": 10}]}},
    {"id": "sales", "label": "Sales", "when": {"field": "job_title", "op": "contains", "value": "sales"}, "points": 4},
    {"id": "plan", "label": "Plan", "when": {"field": "custom.plan", "op": "eq", "value": "pro"}, "points": 5},
    {"id": "exact", "label": "Exactly 100", "when": {"field": "company_size", "op": "eq", "value": 100}, "points": -2},
    {"id": "rival", "label": "Rival", "points": -20, "when": {"all": [
        {"field": "email_domain", "op": "in_list", "value": "competitors"}, {"field": "job_title", "op": "exists"}]}},
]}


@pytest.mark.parametrize("source", [RICH, INTERLEAVED], ids=["rich", "interleaved"])
@FAST
@given(profiles=st.lists(st.fixed_dictionaries({
    "job_title": st.sampled_from(ATTRIBUTE_VALUES), "company_size": st.sampled_from(ATTRIBUTE_VALUES),
    "custom": st.fixed_dictionaries({"plan": st.sampled_from([*ATTRIBUTE_VALUES, "pro", "PRO"])}),
    "email_domain": st.sampled_from(["rival.io", "acme.io", None, 3]),
}), min_size=1, max_size=12))
def test_fit_by_attribute_values_equals_fit_tested_rule_by_rule(source: dict[str, Any],
                                                                profiles: list[dict[str, Any]]) -> None:
    rs = compile_ruleset(RuleSet.model_validate(source), 1)  # one memo across the profiles
    for attributes in profiles:
        short, long = LeadState("L1", attributes=attributes), LeadState("L1", attributes=attributes)
        compute_fit(short, rs)
        compute_fit(long, _long_way(rs))
        assert (short.fit, short.fit_rules) == (long.fit, long.fit_rules)
        ctx = Context(attributes, None, short.fit, rs.grade_for(short.fit))
        assert rs.caches.planner is not None
        by_field = rs.caches.planner.static
        answers = [answer for group in by_field.answers(ctx) for answer in group]
        assert answers == [bool(test(ctx)) for _, _, tests, _ in by_field.groups for test in tests]


def _answers(field: str, op: str, value: Any) -> FieldAnswers:
    return FieldAnswers([field], [compile_condition(Leaf(field=field, op=op, value=value), {})])


def test_answers_are_kept_by_type_and_value() -> None:
    answers = _answers("company_size", "eq", 1)
    # True == 1 == 1.0 as dict keys, but a boolean is not a number to a numeric test.
    assert [answers.answers(Context({"company_size": v}))[0][0] for v in (True, 1, 1.0, "1", False, 0)] == [
        False, True, True, True, False, False]
    assert len(answers.groups[0][3]) == 6


def test_lists_and_mappings_are_tested_each_time_and_the_memo_is_bounded() -> None:
    answers = _answers("job_title", "contains", "vp")
    assert answers.answers(Context({"job_title": ["VP"]})) == ((True,),)
    assert answers.answers(Context({"job_title": {"vp": 1}})) == ((False,),)
    assert answers.groups[0][3] == {}
    for i in range(FieldAnswers.MAX_VALUES + 50):
        assert answers.answers(Context({"job_title": f"vp {i}"})) == ((True,),)
    assert len(answers.groups[0][3]) == FieldAnswers.MAX_VALUES


def test_only_changed_fields_are_looked_up_again() -> None:
    answers = FieldAnswers(["job_title", "country"], [compile_condition(Leaf(field="job_title", op="eq", value="vp"), {}),
                                                      compile_condition(Leaf(field="country", op="eq", value="de"), {})])
    before = answers.answers(Context({"job_title": "vp", "country": "de"}))
    assert before == ((True,), (True,))
    assert answers.answers(Context({"job_title": "cto", "country": "fr"}), before, {"country"}) == ((True,), (False,))


# --- a quiet plan's score bound ----------------------------------------------------------------------------


def test_a_quiet_lead_becomes_mql_at_the_event_that_reaches_the_threshold() -> None:
    """Points scored while quiet are counted toward the threshold: skipping the score stops there."""
    rs = compile_ruleset(RuleSet.model_validate({**MONOTONE, "decay": {"half_life_days": None}}), 1)
    state = new_lead("L1", "pat@acme.io")
    apply_event(state, Event("e0", "identify", T0, traits={"job_title": "VP", "company_size": 10}), rs, T0)
    assert rs.grade_for(state.fit) == "B"  # MQL at 20 points
    stages = []
    for i in range(1, 21):  # a point per page that is not the home page: quiet until the 20th point
        event = Event(f"e{i}", "page_view", T0 + i * 3600, properties={"path": f"/p{i}"})
        stages.append([t.to_stage for t in apply_event(state, event, rs, event.ts)])
    assert stages == [[]] * 19 + [["mql"]]
    assert engagement_at(state, rs, state.last_seen) == 20


# --- frequency rules ----------------------------------------------------------------------------------------


@FAST
@given(gaps=st.lists(st.sampled_from([0.0, 1.0, 3600.0, DAY, 2 * DAY, 3 * DAY, 5 * DAY]), min_size=1, max_size=30),
       count=st.integers(2, 5), within_days=st.sampled_from([1, 3, 7]))
def test_frequency_rules_award_as_defined_for_events_in_order(gaps: list[float], count: int, within_days: int) -> None:
    rs = compile_ruleset(RuleSet.model_validate({
        "name": "burst", "decay": {"half_life_days": None}, "grades": [{"grade": "D"}],
        "engagement": [{"id": "burst", "label": "Burst", "events": ["page_view"], "points": 1,
                        "frequency": {"count": count, "within_days": within_days}}],
        "stages": {"mql": {"when": {"field": "engagement", "op": "gte", "value": 10**6}},
                   "sql": {"when": {"field": "engagement", "op": "gte", "value": 10**6}}},
    }), 1)
    state = new_lead("L1", "pat@acme.io")
    since: list[float] = []  # the definition: matches since the last award, inside the window
    awards, last_award = 0, -math.inf
    ts = T0
    for i, gap in enumerate(gaps):
        ts += gap
        apply_event(state, Event(f"e{i}", "page_view", ts), rs, ts)
        if ts > last_award:  # (a match at the instant of an award is part of it)
            since = [m for m in since if m > ts - within_days * DAY] + [ts]
            if len(since) >= count:
                awards, last_award, since = awards + 1, ts, []
        assert state.engagement_by_rule.get("burst", [0.0])[0] == awards
