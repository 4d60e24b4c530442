"""SLA reminders and escalations: the same handoff, from the stage the lead really came from."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.bootstrap import Container, memory_container
from chalicelib.events import Event
from chalicelib.handoff.blocks import reminder_blocks
from chalicelib.handoff.message import parse_handoff
from chalicelib.handoff.reminders import check_sla, sql_transition
from chalicelib.state import LeadState

T0 = 1_700_000_000.0
CTO = {"first_name": "Grace", "last_name": "Hopper", "job_title": "CTO", "company_size": 500}


@pytest.fixture
def c() -> Container:
    return memory_container(clock=lambda: T0)


def _event(n: int, type_: str, ts: float) -> Event:
    return Event(f"e{n}", type_, ts, "grace@acme.example", None, {"form_id": "demo"}, CTO, "form")


def _reminders(c: Container, now: float) -> list[dict[str, Any]]:
    assert check_sla(c.leads_repo, c.rulesets, now)["reminded"] == 1
    return [item.body for item in c.outbox.pending() if item.kind == "reminder"]


def test_a_fast_tracked_lead_is_reminded_as_lead_to_sql(c: Container) -> None:
    result = c.leads.ingest([_event(1, "demo_request", T0)])["leads"][0]
    assert result["transitions"] == [{"from": "lead", "to": "sql", "reason": result["transitions"][0]["reason"]}]
    (body,) = _reminders(c, T0 + 3 * 86400)
    assert (body["from_stage"], body["stage"], body["fast_track"], body["kind"]) == ("lead", "sql", True, "reminder")
    _, blocks = reminder_blocks(parse_handoff(json.dumps(body)), "reminder", body["overdue_hours"])
    assert "*Stage:* LEAD \u2192 SQL" in json.dumps(blocks, ensure_ascii=False)


def test_an_mql_that_became_an_sql_is_reminded_as_mql_to_sql(c: Container) -> None:
    views = [Event(f"v{n}", "page_view", T0 + n, "ada@acme.example", None, {"path": "/pricing"}, CTO, "api")
             for n in range(40)]
    stages = [t for lead in c.leads.ingest(views)["leads"] for t in lead["transitions"]]
    assert [(t["from"], t["to"]) for t in stages][:1] == [("lead", "mql")]
    c.leads.ingest([Event("d1", "demo_request", T0 + 100, "ada@acme.example", None, {}, CTO, "form")])
    (body,) = _reminders(c, T0 + 3 * 86400)
    assert (body["from_stage"], body["stage"]) == ("mql", "sql")


@pytest.mark.parametrize(("history", "from_stage"), [
    (["sql"], "lead"),
    (["mql", "sql"], "mql"),
    (["mql", "sql", "recycled", "sql"], "recycled"),
    (["sql", "recycled", "mql", "sql"], "mql"),
])
def test_the_sql_transition_is_rebuilt_from_the_stage_history(history: list[str], from_stage: str) -> None:
    state = LeadState("L1", stage="sql", stage_history=[
        {"stage": stage, "at": T0 + n, "reason": f"r{n}", "transition_id": f"t{n}", "ruleset_version": 3}
        for n, stage in enumerate(history)
    ])
    transition = sql_transition(state)
    assert transition is not None
    assert (transition.from_stage, transition.to_stage, transition.id) == (from_stage, "sql", f"t{len(history) - 1}")
    assert sql_transition(LeadState("L2", stage="mql", stage_history=[state.stage_history[0] | {"stage": "mql"}])) is None

