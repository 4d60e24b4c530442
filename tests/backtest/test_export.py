"""``export_store``: a live store's history, replayed from the exported files, gives the same leads."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from baton.backtest import backtest
from baton.backtest.export import export_command, export_store
from baton.backtest.io import read_events, read_outcomes, read_vocabulary
from baton.backtest.online import _normalised
from baton.synth import generate
from chalicelib.events import Event
from chalicelib.leads import LeadService
from chalicelib.rules import default_ruleset, parse_ruleset
from chalicelib.rulesets import RulesetService
from chalicelib.store.memory import InMemoryLeads, InMemoryRulesets
from chalicelib.timeline import merge


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _fill(leads: Any, n_leads: int, seed: int) -> None:
    """Feed a synthetic history to the online service, recording outcomes as sales would."""
    history = generate(n_leads, seed=seed)
    clock = Clock()
    service = LeadService(leads, RulesetService(InMemoryRulesets(), clock), clock)
    for item in merge(history.events, history.outcomes):
        clock.now = item.ts
        if isinstance(item, Event):
            service.ingest([item])
        elif leads.get(item.lead_key) is not None:
            service.record_outcome(item.lead_key, item.outcome, reason=item.reason)


def _check(leads: Any, out: Path) -> None:
    summary = export_store(leads, out)
    assert summary["leads"] == len(leads.lead_ids()) and summary["events"] > 0 and summary["outcomes"] > 0
    events, outcomes = read_events(out / "events.parquet"), read_outcomes(out / "outcomes.parquet")
    assert len(events) == summary["events"] and len(outcomes) == summary["outcomes"]
    result = backtest(events, RulesetService(InMemoryRulesets(), Clock()).active(), outcomes)
    assert {r.lead_id for r in result.leads} == set(leads.lead_ids())
    for report in result.leads:
        stored = leads.get(report.lead_id).state
        # Synthetic visitors identify before any other event of theirs, so the replay order matches the
        # online one, except among events of one lead at the very same instant: a store keeps no arrival
        # order, so the export sorts those by id (hence the dedupe memory is compared as a set).
        final = result.state(report.lead_id)
        assert final is not None
        a, b = _normalised(final), _normalised(stored)
        assert sorted(a.pop("recent_ids")) == sorted(b.pop("recent_ids"))
        assert a == b


def test_export_from_memory(tmp_path: Path) -> None:
    leads = InMemoryLeads()
    _fill(leads, 60, seed=8)
    _check(leads, tmp_path / "export")


def test_export_from_dynamodb(moto_aws: dict[str, str], tmp_path: Path) -> None:
    from chalicelib.store.dynamodb import DynamoDBLeads

    leads = DynamoDBLeads(os.environ["BATON_LEADS_TABLE"], os.environ["BATON_OUTBOX_TABLE"])
    _fill(leads, 12, seed=3)
    _check(leads, tmp_path / "export")


def test_export_command_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leads = InMemoryLeads()
    _fill(leads, 10, seed=1)
    assert export_command(argparse.Namespace(out=str(tmp_path / "x")), leads_repo=leads) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["leads"] == 10 and Path(line["events_path"]).exists() and Path(line["outcomes_path"]).exists()


def test_an_export_carries_the_vocabulary_of_the_rule_set_scoring_it(tmp_path: Path) -> None:
    leads = InMemoryLeads()
    _fill(leads, 5, seed=2)
    body = default_ruleset().model_dump(mode="json", by_alias=True, exclude_none=True)
    body["event_types"] = {"chat_message": "a chat with an advisor"}
    body["attributes"] |= {"custom.seconds_on_site": {"type": "number", "unit": "seconds"}}
    declaring = parse_ruleset(body)
    summary = export_store(leads, tmp_path / "live", declaring)
    vocabulary = read_vocabulary(tmp_path / "live")
    assert summary["vocabulary_path"] == str(tmp_path / "live" / "vocabulary.yaml")
    assert vocabulary.event_types == declaring.event_types and vocabulary.attributes == declaring.attributes
    assert vocabulary.attributes["custom.seconds_on_site"].unit == "seconds"
    export_store(leads, tmp_path / "live")  # before anything is published: the shipped rule set's
    assert read_vocabulary(tmp_path / "live").attributes == default_ruleset().attributes
