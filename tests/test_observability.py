"""Logs are JSON and never carry personal data; metrics are valid CloudWatch EMF."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from chalicelib.bootstrap import memory_container
from chalicelib.events import Event
from chalicelib.observability import configure_logging, metric


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("DEBUG")
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    logging.getLogger("baton.metrics").setLevel(logging.WARNING)


def test_scoring_a_lead_logs_ids_not_personal_data(json_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    c = memory_container()
    event = Event("e1", "demo_request", 1_700_000_000.0, "grace.hopper@navy.example", None, {"form_id": "demo"},
                  {"first_name": "Grace", "last_name": "Hopper", "job_title": "CTO", "company_size": 500}, "form")
    result = c.leads.ingest([event])
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines, "something was logged"
    assert "grace" not in out.lower() and "hopper" not in out.lower() and "navy.example" not in out
    assert result["leads"][0]["lead_id"] in out
    emf = [line for line in lines if "_aws" in line]
    scored = next(line for line in emf if "EventsScored" in line)
    directive = scored["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Baton" and directive["Metrics"] == [{"Name": "EventsScored", "Unit": "Count"}]
    assert all(dim in scored for dim in directive["Dimensions"][0])


def test_metrics_are_silent_until_configured(capsys: pytest.CaptureFixture[str]) -> None:
    metric("EventsScored", 1)
    assert capsys.readouterr().out == ""
