"""Per-lead stage plans (attribute and hand-raiser leaves folded) decide exactly as whole conditions do."""

from __future__ import annotations

import json
from dataclasses import replace

from baton.synth import generate
from chalicelib.engine import apply_event, apply_outcome, new_lead, set_email
from chalicelib.events import Event
from chalicelib.rules import compile_ruleset, default_ruleset
from chalicelib.rules.plans import LeadPlans
from chalicelib.state import LeadState, lead_id_for


def _replay(events, outcomes, rs):
    states, transitions = {}, []
    timeline = sorted([(e.ts, 0, i, e) for i, e in enumerate(events) if e.email]
                      + [(o.ts, 1, i, o) for i, o in enumerate(outcomes)], key=lambda x: x[:3])
    for ts, kind, _, item in timeline:
        if kind == 0:
            state = states.get(item.email)
            if state is None:
                state = states[item.email] = new_lead(lead_id_for(item.email), item.email)
            transitions += [t.to_dict() for t in apply_event(state, item, rs, ts)]
        else:
            state = next((s for s in states.values() if s.lead_id == item.lead_key), None)
            if state is not None:
                transitions += [t.to_dict() for t in apply_outcome(state, item.outcome, rs, ts, item.reason)]
    return {k: v.to_dict() for k, v in states.items()}, transitions


def test_planned_engine_matches_whole_conditions() -> None:
    history = generate(400, seed=3, n_events=8000)
    planned = compile_ruleset(default_ruleset(), 1)
    whole = replace(planned, caches=replace(planned.caches, planner=None))
    assert _replay(history.events, history.outcomes, planned) == _replay(history.events, history.outcomes, whole)


def test_plan_follows_attribute_changes_outside_events() -> None:
    rs = compile_ruleset(default_ruleset(), 1)
    state = new_lead("L1", "a@acme.com")
    apply_event(state, Event("e1", "page_view", 1000.0, "a@acme.com", properties={"path": "/"}), rs, 1000.0)
    assert state.stage == "lead"
    set_email(state, "a@rivalscore.io")  # a competitor's address: the next event must disqualify
    apply_event(state, Event("e2", "page_view", 1001.0, "a@rivalscore.io", properties={"path": "/"}), rs, 1001.0)
    assert state.stage == "disqualified"


def test_fit_follows_an_address_given_outside_events() -> None:
    rs = compile_ruleset(default_ruleset(), 1)
    state = new_lead("L1")  # known by id only, then by address (the service sets it before scoring)
    apply_event(state, Event("e1", "page_view", 1000.0, properties={"path": "/"}), rs, 1000.0)
    assert state.fit_rules == []
    set_email(state, "pat@gmail.com")
    apply_event(state, Event("e2", "page_view", 1001.0, "pat@gmail.com", properties={"path": "/"}), rs, 1001.0)
    assert state.fit_rules == ["free-email"] and state.fit == -10


def test_plans_are_kept_beside_the_state_for_that_state_only() -> None:
    rs = compile_ruleset(default_ruleset(), 1)
    state = new_lead("L1", "a@acme.com")
    apply_event(state, Event("e1", "page_view", 1000.0, "a@acme.com", properties={"path": "/"}), rs, 1000.0)
    # The state holds only what is stored (and the size of its id memory, derived from it on load).
    assert set(state.to_dict()) == set(LeadState.__dataclass_fields__) - {"recent_bytes"}
    assert rs.caches.leads["L1"].attrs is state.attributes
    # The same lead loaded again does not use that plan: it makes its own, in its place, and the first
    # state then makes its own again; both decide alike throughout.
    loaded = LeadState.from_dict(json.loads(json.dumps(state.to_dict())))
    later = [Event(f"e{i}", "page_view", 1000.0 + i, "a@acme.com", properties={"path": "/pricing"}) for i in range(2, 6)]
    for event in later:
        assert apply_event(loaded, event, rs, event.ts) == apply_event(state, event, rs, event.ts)
        assert rs.caches.leads["L1"].attrs is state.attributes
    assert loaded.to_dict() == state.to_dict()


def test_a_settled_lead_recycled_gets_a_plan_from_its_present_attributes() -> None:
    rs = compile_ruleset(default_ruleset(), 1)
    state = new_lead("L1", "pat@acme.com")
    apply_event(state, Event("e1", "identify", 1000.0, traits={"job_title": "VP Marketing", "company_size": 250}),
                rs, 1000.0)
    apply_event(state, Event("e2", "demo_request", 1001.0), rs, 1001.0)
    assert state.stage == "sql"
    # Settled: the ladder does not run, so the plan is not brought up to date with the attributes
    # (this one changes no fit rule, only a disqualifier).
    apply_event(state, Event("e3", "identify", 1002.0, traits={"inquiry_type": "job"}), rs, 1002.0)
    day = 86400.0
    apply_outcome(state, "recycled", rs, 1003.0)
    after = 1003.0 + rs.recycle_cooldown + day
    assert [t.to_stage for t in apply_event(state, Event("e4", "page_view", after), rs, after)] == ["disqualified"]


def test_lead_plans_are_bounded() -> None:
    rs = compile_ruleset(default_ruleset(), 1)
    for i in range(LeadPlans.MAX_LEADS + 10):
        state = new_lead(f"L{i}", "a@acme.com")
        apply_event(state, Event("e1", "page_view", 1000.0, "a@acme.com", properties={"path": "/"}), rs, 1000.0)
        assert len(rs.caches.leads) <= LeadPlans.MAX_LEADS
    assert rs.caches.leads[state.lead_id].attrs is state.attributes  # (the newest is kept)
