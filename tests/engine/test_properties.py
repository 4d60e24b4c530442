"""Properties of the engine that must hold for any stream of events (hypothesis).

Examples are kept modest so the whole file runs in a few seconds.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.engine import apply_event, engagement_at, explain, new_lead, score
from chalicelib.events import Event
from chalicelib.rules.compile import CompiledRuleset, compile_ruleset
from chalicelib.rules.loader import default_ruleset
from chalicelib.rules.model import RuleSet
from chalicelib.state import LeadState, Transition

DEFAULT = compile_ruleset(default_ruleset(), version=1)
DAY = 86400.0
T0 = 1_700_000_000.0

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TYPES = ["page_view", "email_open", "email_click", "form_submitted", "content_download", "webinar_attended",
         "trial_signup", "demo_request", "unsubscribe", "meeting_canceled", "identify"]
PATHS = ["/", "/pricing", "/pricing/enterprise", "/product/api", "/integrations/slack", "/blog/post", "/careers",
         "/jobs/1"]
TRAITS: list[dict[str, Any]] = [
    {}, {"job_title": "VP Sales", "company_size": "250"}, {"job_title": "Analyst"}, {"company_size": 5},
    {"industry": "software", "country": "us"}, {"job_title": "Head of Growth", "department": "growth"},
    {"plan": "pro"}, {"company_size": "2,000"},
]
GAPS = [0.0, 1.0, 60.0, 3600.0, DAY / 2, DAY, 3 * DAY, 6.9 * DAY, 7 * DAY, 8 * DAY, 31 * DAY]

event_spec = st.tuples(
    st.sampled_from(TYPES), st.sampled_from(GAPS), st.sampled_from(PATHS), st.sampled_from(range(len(TRAITS)))
)
stream_spec = st.lists(event_spec, min_size=1, max_size=60)


def build(specs: list[tuple[str, float, str, int]], start: float = T0) -> list[Event]:
    """In-order events (each no earlier than the one before)."""
    out: list[Event] = []
    ts = start
    for i, (type_, gap, path, traits) in enumerate(specs):
        ts += gap
        props: dict[str, Any] = {"url": f"https://acme.example{path}"} if type_ == "page_view" else {}
        if type_ in ("form_submitted", "content_download"):
            props["form_id"] = f"form-{i % 3}"
        out.append(Event(f"e{i}", type_, ts, properties=props, traits=TRAITS[traits]))
    return out


def run(events: list[Event], rs: CompiledRuleset = DEFAULT, email: str = "pat@acme.com") -> tuple[LeadState, list[Transition]]:
    state = new_lead("L1", email)
    transitions: list[Transition] = []
    for event in events:
        transitions += apply_event(state, event, rs, now=event.ts)
    return state, transitions


# --- caps -----------------------------------------------------------------------------------------

caps_spec = st.fixed_dictionaries(
    {"max_count": st.none() | st.integers(1, 4), "max_points": st.none() | st.integers(1, 40),
     "window_days": st.none() | st.sampled_from([0.5, 1, 7, 30])}
).filter(lambda c: c["max_count"] is not None or c["max_points"] is not None)

rule_spec = st.fixed_dictionaries(
    {
        "events": st.lists(st.sampled_from(["page_view", "email_open", "email_click"]), min_size=1, max_size=2, unique=True),
        "path": st.none() | st.sampled_from(["/pricing", "/product", "/blog"]),
        "points": st.sampled_from([-10, -3, 1, 3, 5, 10]),
        "caps": caps_spec,
        "frequency": st.none() | st.fixed_dictionaries({"count": st.integers(2, 3), "within_days": st.sampled_from([1, 7])}),
        "half_life_days": st.none() | st.sampled_from([1, 30]),
    }
)


def capped_ruleset(rules: list[dict[str, Any]]) -> CompiledRuleset:
    engagement = []
    for i, r in enumerate(rules):
        caps = {k: v for k, v in r["caps"].items() if v is not None}
        if "max_points" in caps:
            caps["max_points"] = max(caps["max_points"], abs(r["points"]))
        rule: dict[str, Any] = {"id": f"r{i}", "label": f"rule {i}", "events": r["events"], "points": r["points"],
                                "caps": caps}
        if r["path"]:
            rule["when"] = {"field": "event.path", "op": "starts_with", "value": r["path"]}
        if r["frequency"]:
            rule["frequency"] = r["frequency"]
        if r["half_life_days"]:
            rule["half_life_days"] = r["half_life_days"]
        engagement.append(rule)
    data = {
        "name": "caps", "grades": [{"grade": "D"}], "engagement": engagement,
        "stages": {"mql": {"when": {"field": "engagement", "op": "gte", "value": 10_000}},
                   "sql": {"when": {"field": "engagement", "op": "gte", "value": 20_000}}},
    }
    return compile_ruleset(RuleSet.model_validate(data), version=1)


# Dense streams of the event types the generated rules score, so caps and frequencies are hit often.
capped_stream_spec = st.lists(
    st.tuples(st.sampled_from(["page_view", "email_open", "email_click"]),
              st.sampled_from([0.0, 60.0, 3600.0, DAY / 2, DAY, 3 * DAY, 8 * DAY]),
              st.sampled_from(["/pricing", "/product/api", "/blog/post", "/"]), st.just(0)),
    min_size=1, max_size=60,
)


@FAST
@given(rules=st.lists(rule_spec, min_size=1, max_size=4), specs=capped_stream_spec)
def test_caps_never_exceeded_in_any_rolling_window(rules: list[dict[str, Any]], specs: list[Any]) -> None:
    rs = capped_ruleset(rules)
    state = new_lead("L1", "pat@acme.com")
    awards: dict[str, list[float]] = {rule_id: [] for rule_id in rs.engagement_by_id}
    for event in build(specs):
        before = {k: list(v) for k, v in state.engagement_by_rule.items()}
        apply_event(state, event, rs, now=event.ts)
        for rule_id, acc in state.engagement_by_rule.items():
            if before.get(rule_id) != acc:
                awards[rule_id].append(event.ts)
    for rule_id, times in awards.items():
        rule = rs.engagement_by_id[rule_id]
        source = next(r for r in rs.source.engagement if r.id == rule_id)
        assert source.caps is not None and rule.cap_count is not None
        limit = rule.cap_count
        max_points = source.caps.max_points
        if rule.cap_window is None:
            windows = [times]
        else:
            windows = [[t for t in times if start <= t < start + rule.cap_window] for start in times]
        for window in windows:
            assert len(window) <= limit, (rule_id, window)
            if source.caps.max_count is not None:
                assert len(window) <= source.caps.max_count
            if max_points is not None:
                assert len(window) * abs(rule.points) <= max_points


# --- decay ----------------------------------------------------------------------------------------

POSITIVE = compile_ruleset(
    RuleSet.model_validate(
        {**default_ruleset().model_dump(by_alias=True),
         "engagement": [r for r in default_ruleset().model_dump(by_alias=True)["engagement"] if r["points"] > 0]}
    ),
    version=2,
)


@FAST
@given(specs=stream_spec, later=st.lists(st.floats(0, 400 * DAY), min_size=2, max_size=6))
def test_decay_is_monotone_for_positive_rules(specs: list[Any], later: list[float]) -> None:
    state, _ = run(build(specs), POSITIVE)
    values = [engagement_at(state, POSITIVE, state.last_seen + dt) for dt in sorted(later)]
    assert all(v >= 0 for v in values)
    for earlier, after in itertools.pairwise(values):
        assert after <= earlier * (1 + 1e-12) + 1e-12


@FAST
@given(specs=stream_spec, dt=st.floats(0, 400 * DAY))
def test_decay_never_grows_engagement_in_absolute_value(specs: list[Any], dt: float) -> None:
    state, _ = run(build(specs), POSITIVE)
    assert abs(engagement_at(state, POSITIVE, state.last_seen + dt)) <= abs(engagement_at(state, POSITIVE, state.last_seen)) + 1e-9


# --- explanations ---------------------------------------------------------------------------------


@FAST
@given(specs=stream_spec, dt=st.floats(0, 100 * DAY))
def test_explanation_parts_sum_to_engagement(specs: list[Any], dt: float) -> None:
    state, _ = run(build(specs))
    t = state.last_seen + dt
    report = explain(state, DEFAULT, t)
    total = engagement_at(state, DEFAULT, t)
    assert report["engagement"]["score"] == total
    assert math.isclose(sum(r["points"] for r in report["engagement"]["rules"]), total, rel_tol=1e-9, abs_tol=1e-9)
    assert report["fit"]["score"] == sum(r["points"] for r in report["fit"]["rules"]) == state.fit


# --- idempotence, purity, determinism -------------------------------------------------------------


@FAST
@given(specs=stream_spec, data=st.data())
def test_redelivered_events_change_nothing(specs: list[Any], data: st.DataObject) -> None:
    events = build(specs)
    once, once_transitions = run(events)
    # Each event may be delivered again at any later point in the stream, any number of times.
    stream: list[Event] = []
    for i, event in enumerate(events):
        stream.append(event)
        repeats = data.draw(st.lists(st.integers(0, i), max_size=2), label=f"redeliver after {i}")
        stream += [events[j] for j in repeats]
    again, again_transitions = run(stream)
    assert again.to_dict() == once.to_dict()
    assert [t.to_dict() for t in again_transitions] == [t.to_dict() for t in once_transitions]


@FAST
@given(specs=stream_spec, last=event_spec)
def test_score_does_not_mutate_its_input(specs: list[Any], last: tuple[str, float, str, int]) -> None:
    events = build([*specs, last])
    state, _ = run(events[:-1])
    before = json.dumps(state.to_dict(), sort_keys=True)
    updated, _ = score(state, events[-1], DEFAULT, now=events[-1].ts)
    assert json.dumps(state.to_dict(), sort_keys=True) == before
    assert updated is not state
    assert updated.event_count == state.event_count + 1


@FAST
@given(specs=stream_spec, email=st.sampled_from(["pat@acme.com", "x@gmail.com", "y@mailinator.com", "z@mit.edu"]))
def test_determinism(specs: list[Any], email: str) -> None:
    events = build(specs)
    first, first_transitions = run(events, email=email)
    second, second_transitions = run(events, email=email)
    assert first.to_dict() == second.to_dict()
    assert [t.to_dict() for t in first_transitions] == [t.to_dict() for t in second_transitions]


@FAST
@given(specs=stream_spec)
def test_state_round_trips_through_json(specs: list[Any]) -> None:
    state, _ = run(build(specs))
    restored = LeadState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.to_dict() == state.to_dict()
    # And scoring goes on identically from the restored state.
    nxt = Event("next", "demo_request", state.last_seen + 60)
    assert [t.to_dict() for t in apply_event(restored, nxt, DEFAULT, nxt.ts)] == [
        t.to_dict() for t in apply_event(state, nxt, DEFAULT, nxt.ts)
    ]


# --- bounded state --------------------------------------------------------------------------------


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_state_size_is_bounded(seed: int) -> None:
    import random

    rnd = random.Random(seed)
    state = new_lead("L1", "pat@acme.com")
    ts = T0
    for i in range(10_000):
        ts += rnd.choice(GAPS[:6])
        type_ = rnd.choice(TYPES)
        props: dict[str, Any] = {"url": f"https://acme.example{rnd.choice(PATHS)}?utm_source=x{i}"}
        if type_ in ("form_submitted", "content_download", "demo_request"):
            props["form_id"] = f"form-{rnd.randrange(50)}"
        traits: dict[str, Any] = {}
        if rnd.random() < 0.1:  # many distinct custom answers over time
            traits = {f"question_{rnd.randrange(500)}": "answer " * rnd.randrange(1, 8), "job_title": f"Title {i}"}
        event = Event(f"evt-{seed}-{i:08d}-{'x' * 20}", type_, ts, properties=props, traits=traits)
        apply_event(state, event, DEFAULT, now=ts)
        if rnd.random() < 0.001:
            from chalicelib.engine import apply_outcome

            apply_outcome(state, rnd.choice(["recycled", "accepted", "opportunity"]), DEFAULT, ts)
    size = len(json.dumps(state.to_dict()))
    assert size < 64 * 1024, size
    assert state.event_count == 10_000
