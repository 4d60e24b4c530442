"""SLA reminders and escalations: the same handoff, from the stage the lead really came from."""

from __future__ import annotations

import json
from datetime import datetime, timezone
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


def _told(c: Container, at: float) -> list[str]:
    """Slack acknowledged every alert waiting in the outbox at ``at``: sales was told then."""
    ids = [item.id for item in c.outbox.pending() if item.kind == "handoff"]
    for item_id in ids:
        c.outbox.mark_published(item_id, at)
        c.outbox.mark_delivered(item_id, at, 1)
    return ids


def _reminders(c: Container, now: float) -> list[dict[str, Any]]:
    _told(c, T0 + 1)
    assert check_sla(c.leads_repo, c.rulesets, now, c.outbox)["reminded"] == 1
    return [item.body for item in c.outbox.pending() if item.kind == "reminder"]


def _deadline(c: Container, lead_id: str) -> float:
    stored = c.leads_repo.get(lead_id)
    assert stored is not None and stored.state.sla_deadline is not None
    return stored.state.sla_deadline


def test_the_sla_clock_starts_when_sales_is_told(c: Container) -> None:
    lead_id = c.leads.ingest([_event(1, "demo_request", T0)])["leads"][0]["lead_id"]
    sla = _deadline(c, lead_id) - T0
    # Slack is down for two days: the alert is pending, nobody is reminded, the deadline moves.
    assert check_sla(c.leads_repo, c.rulesets, T0 + sla + 1, c.outbox) == {
        "reminded": 0, "escalated": 0, "deadlines_moved": 1}
    assert _deadline(c, lead_id) == T0 + 2 * sla + 1
    told = T0 + 2 * 86400
    _told(c, told)
    check_sla(c.leads_repo, c.rulesets, T0 + 2 * sla + 1, c.outbox)
    assert _deadline(c, lead_id) == told + sla, "one SLA from the alert"
    result = check_sla(c.leads_repo, c.rulesets, told + sla + 1800, c.outbox)
    assert result["reminded"] == 1
    (body,) = [item.body for item in c.outbox.pending() if item.kind == "reminder"]
    assert body["overdue_hours"] == 0.5, "overdue since the deadline that counts"


def test_an_alert_posted_late_asks_for_a_follow_up_one_sla_after_it_was_posted() -> None:
    from slack_fakes import handoff_dict

    from chalicelib.handoff.delivery import render
    from chalicelib.outbox.items import OutboxItem

    item = OutboxItem("t1", "handoff", handoff_dict(), {}, T0)  # occurred 10:00, SLA 4 h: 14:00
    posted = datetime(2026, 11, 23, 18, 30, tzinfo=timezone.utc).timestamp()  # Slack was down
    _, _, blocks = render(item, told_at=posted)
    follow_up = next(b["text"]["text"] for b in blocks if "Follow up by" in json.dumps(b))
    assert f"<!date^{int(posted + 4 * 3600)}^" in follow_up


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

