"""Erasure reaches every copy: re-score job samples, the local Slack outbox file, and a tombstone
that keeps replays and late deliveries out (store contracts: tests/store; routes: tests/app)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from chalicelib.erasure import Erasure
from chalicelib.errors import NotFound
from chalicelib.events import Event
from chalicelib.handoff.blocks import actions_block
from chalicelib.handoff.notifiers import FileNotifier
from chalicelib.leads import LeadService
from chalicelib.rulesets import RulesetService
from chalicelib.state import LeadState, lead_id_for
from chalicelib.store.base import Commit
from chalicelib.store.memory import InMemoryJobs, InMemoryLeads, InMemoryRulesets

ADA = "ada@engines.example"


def _event(event_id: str, ts: float) -> Event:
    return Event(event_id, "page_view", ts, ADA, None, {"path": "/pricing"}, {"first_name": "Ada"}, "api")


@pytest.fixture
def leads() -> InMemoryLeads:
    return InMemoryLeads()


def test_erasure_drops_job_samples_and_the_local_slack_messages(leads: InMemoryLeads, tmp_path: Path) -> None:
    lead_id = lead_id_for(ADA)
    leads.commit(Commit(LeadState(lead_id, email=ADA), 0, [_event("e1", 100.0)]))
    jobs = InMemoryJobs()
    jobs.create({"job_id": "j1", "version": 2, "mode": "active", "segments": 1, "created_at": 1.0})
    jobs.add("j1", {"transitions": 1}, [{"lead_id": lead_id, "name": "Ada", "company": "Engines"}])
    outbox = tmp_path / "slack-outbox.jsonl"
    slack = FileNotifier(outbox, stream=io.StringIO())
    slack.post("#sales", "Ada at Engines is an SQL", [actions_block(lead_id, "t1")])
    slack.post("#sales", "Grace at Navy is an SQL", [actions_block("Lother", "t2")])

    erased = Erasure(leads, jobs, clock=lambda: 500.0, local_outbox_file=str(outbox)).erase(lead_id)

    assert erased["erased_items"] == 1 + 1 + 1 + 1  # tombstone, event, one job's samples, one message
    assert jobs.get("j1")["samples"] == []  # type: ignore[index]
    lines = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert [line["text"] for line in lines] == ["Grace at Navy is an SQL"]
    with pytest.raises(NotFound):
        Erasure(leads, jobs, clock=lambda: 600.0).erase(lead_id)


def test_events_dated_before_the_erasure_stay_out_and_later_ones_make_a_new_lead(leads: InMemoryLeads) -> None:
    service = LeadService(leads, RulesetService(InMemoryRulesets(), lambda: 1000.0), clock=lambda: 1000.0)
    lead_id = service.ingest([_event("e1", 100.0)])["leads"][0]["lead_id"]
    Erasure(leads, InMemoryJobs(), clock=lambda: 500.0).erase(lead_id)

    late = service.ingest([_event("e1", 100.0), _event("e2", 499.0)])  # a replay, and a late delivery
    assert late["accepted"] == 0 and leads.get(lead_id) is None and leads.events(lead_id) == []
    mixed = service.ingest([_event("e3", 400.0), _event("e4", 700.0)])
    assert mixed["accepted"] == 1
    assert [e.event_id for e in leads.events(lead_id)] == ["e4"]
    assert leads.get(lead_id).state.erased_at == 500.0  # type: ignore[union-attr]  # the new lead keeps the line
    assert service.ingest([_event("e5", 450.0)])["accepted"] == 0
