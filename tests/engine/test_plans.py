"""Per-lead stage plans (attribute and hand-raiser leaves folded) decide exactly as whole conditions do."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace

from baton.synth import generate
from chalicelib.engine import apply_event, apply_outcome, new_lead, set_email
from chalicelib.events import Event
from chalicelib.rules import compile_ruleset, default_ruleset
from chalicelib.state import lead_id_for


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
    whole = replace(planned, planner=None)
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


def test_plan_is_not_copied_or_pickled() -> None:
    rs = compile_ruleset(default_ruleset(), 1)
    state = new_lead("L1", "a@acme.com")
    apply_event(state, Event("e1", "page_view", 1000.0, "a@acme.com", properties={"path": "/"}), rs, 1000.0)
    assert state.stage_plan is not None
    assert copy.deepcopy(state).stage_plan is None
    assert pickle.loads(pickle.dumps(state)).stage_plan is None
    assert state.copy() == state
    assert "stage_plan" not in state.to_dict()
