"""``baton export``: a store's leads, events and outcomes as backtest files.

Works with any ``LeadRepository`` (``InMemoryLeads``, ``DynamoDBLeads``). Writes
``events.parquet`` and ``outcomes.parquet`` in the layouts of docs/backtest-data.md, ready for
``read_events`` / ``read_outcomes`` and ``backtest``, and ``vocabulary.yaml``: the scoring rule
set's declared event types and attributes, which ``baton rules suggest`` copies.

A store keeps events, not their delivery order: replaying an export applies each lead's events in
time order. Events a visitor made anonymously before identifying were stored with the lead's email
once linked, so they count at their own time rather than at the identify (online order); visitors
never identified are not exported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from baton.backtest.io import write_events, write_outcomes, write_vocabulary
from chalicelib.events import Event
from chalicelib.rules.loader import default_ruleset
from chalicelib.rules.model import RuleSet, Vocabulary
from chalicelib.store.base import LeadRepository
from chalicelib.timeline import Outcome

EVENTS_FILE = "events.parquet"
OUTCOMES_FILE = "outcomes.parquet"


def export_store(leads_repo: LeadRepository, out_dir: str | Path, ruleset: RuleSet | None = None) -> dict[str, Any]:
    """Read every lead's events and outcomes and write them, with the vocabulary of ``ruleset``
    (the one scoring them; default: the shipped one); returns counts and the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events: list[Event] = []
    outcomes: list[Outcome] = []
    lead_ids = leads_repo.lead_ids()
    for lead_id in lead_ids:
        lead_events = leads_repo.events(lead_id)
        events.extend(lead_events)
        email = next((e.email for e in lead_events if e.email), None)
        for record in leads_repo.outcomes(lead_id):
            outcomes.append(Outcome(
                str(record["outcome"]), float(record["at"]), lead_id=lead_id, email=email,
                reason=record.get("reason"),
            ))
    events.sort(key=lambda e: (e.ts, e.event_id))
    outcomes.sort(key=lambda o: (o.ts, o.lead_key))
    events_path, outcomes_path = out / EVENTS_FILE, out / OUTCOMES_FILE
    write_events(events_path, events)
    write_outcomes(outcomes_path, outcomes)
    ruleset = ruleset or default_ruleset()
    vocabulary_path = write_vocabulary(out, Vocabulary(event_types=ruleset.event_types, attributes=ruleset.attributes),
                                       f"rule set {ruleset.name!r}")
    return {
        "leads": len(lead_ids), "events": len(events), "outcomes": len(outcomes),
        "events_path": str(events_path), "outcomes_path": str(outcomes_path), "vocabulary_path": str(vocabulary_path),
    }


def export_command(args: argparse.Namespace, leads_repo: LeadRepository | None = None) -> int:
    """CLI entry: ``args.out`` (or ``args.out_dir``) is the directory, default ``baton-export``.

    The repository defaults to the configured stage's DynamoDB tables (``BATON_STAGE``,
    ``BATON_LEADS_TABLE``, the usual AWS environment); pass one to export another store.
    Prints one JSON line with the counts; returns the exit status.
    """
    out_dir = getattr(args, "out", None) or getattr(args, "out_dir", None) or "baton-export"
    ruleset = None
    if leads_repo is None:
        from chalicelib.bootstrap import container

        leads_repo = container().leads_repo
        ruleset = container().rulesets.active().source  # (the shipped one until a version is published)
    summary = export_store(leads_repo, out_dir, ruleset)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0
