"""The reference a backtest must match: the same history fed to the online service, one event at a time.

``replay_online`` drives ``LeadService`` (with the in-memory repositories, as the API would with
DynamoDB) in time order (``timeline.merge``), with a clock that reads each event's own time;
``parity`` checks a ``BacktestResult`` against it lead by lead: the full stored state (stage, history, fit, every
engagement accumulator, caps, dedupe memory), the transitions and the engagement score; for a lead
whose past transitions a late event revised, the scores, and a stage the service had announced.
It is slow by design (a serialised read and write per event): use it on samples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from baton.backtest.replay import BacktestResult
from chalicelib.engine import engagement_at
from chalicelib.events import Event
from chalicelib.leads import LeadService
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rules.model import RuleSet
from chalicelib.rulesets import RulesetService
from chalicelib.state import LeadState
from chalicelib.store.memory import InMemoryLeads, InMemoryRulesets
from chalicelib.timeline import JOURNEY, Outcome, merge


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class OnlineReplay:
    states: dict[str, LeadState]
    transitions: dict[str, list[tuple[str, str]]]
    ruleset: CompiledRuleset  # what scored: backtest with this for a like-for-like comparison
    events: int
    seconds: float
    leads_repo: InMemoryLeads = field(repr=False)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def replay_online(
    events: Iterable[Event], outcomes: Iterable[Outcome] = (), ruleset: RuleSet | None = None,
    batches: Iterator[int] | None = None,
) -> OnlineReplay:
    """Feed the history to a fresh ``LeadService``; ``ruleset`` is published first (else the default).

    Events go one at a time, or in batches of consecutive events of the sizes ``batches`` gives
    (never across an outcome), as a sender batching its webhooks would; the clock then reads the
    batch's last event time.
    """
    clock = _Clock()
    leads = InMemoryLeads()
    rulesets = RulesetService(InMemoryRulesets(), clock)
    if ruleset is not None:
        created = rulesets.create(ruleset.model_dump(mode="json", by_alias=True))
        rulesets.publish(created["version"])
    service = LeadService(leads, rulesets, clock)
    transitions: dict[str, list[tuple[str, str]]] = {}
    count = 0
    batch: list[Event] = []
    size = next(batches, 1) if batches else 1

    def send() -> None:
        clock.now = batch[-1].ts
        for lead in service.ingest(batch)["leads"]:
            transitions.setdefault(lead["lead_id"], []).extend((t["from"], t["to"]) for t in lead["transitions"])
        batch.clear()

    started = time.perf_counter()
    for item in merge(events, outcomes):
        if isinstance(item, Event):
            count += 1
            batch.append(item)
            if len(batch) >= size:
                send()
                size = next(batches, 1) if batches else 1
            continue
        if batch:
            send()
        clock.now = item.ts
        lead_id = item.lead_key
        if leads.get(lead_id) is None:
            continue  # the API refuses outcomes for unknown leads
        done = service.record_outcome(lead_id, item.outcome, reason=item.reason)
        if done["changed"]:
            transitions.setdefault(lead_id, []).append((done["previous_stage"], done["stage"]))
    if batch:
        send()
    seconds = time.perf_counter() - started
    states = {}
    for lead_id in leads.lead_ids():
        stored = leads.get(lead_id)
        assert stored is not None
        states[lead_id] = stored.state
    return OnlineReplay(states, transitions, rulesets.active(), count, seconds, leads)


def _normalised(state: LeadState) -> Any:
    return json.loads(json.dumps(state.to_dict()))


def revised(state: LeadState) -> bool:
    """Did a late event change a past transition of this lead? (Adopting a visitor's earlier visits
    at an identify does, when they move a transition earlier.) The service then keeps what it
    announced (``timeline.replay_late``); the backtest, which announces nothing, has the journey as
    event time makes it, and the two agree on the scores."""
    return any("revised" in h for h in state.stage_history)


def _scores(state: LeadState) -> Any:
    return {k: v for k, v in _normalised(state).items() if k not in JOURNEY}


def parity(result: BacktestResult, online: OnlineReplay, max_examples: int = 5) -> dict[str, Any]:
    """Compare lead by lead; ``parity`` is True when every lead matches exactly."""
    mismatches: list[dict[str, Any]] = []
    backtest_ids = {r.lead_id for r in result.leads}
    missing = sorted(set(online.states) - backtest_ids)
    extra = sorted(backtest_ids - set(online.states))
    checked = 0
    for report in result.leads:
        state = online.states.get(report.lead_id)
        if state is None:
            continue
        checked += 1
        problems = []
        kept = revised(state)
        announced = {h["stage"] for h in state.stage_history}
        if report.stage != state.stage and not (kept and state.stage in announced):
            problems.append(f"stage {report.stage} != online {state.stage}")
        if report.fit != state.fit:
            problems.append(f"fit {report.fit} != online {state.fit}")
        online_engagement = engagement_at(state, online.ruleset, state.last_seen)
        if report.engagement != online_engagement:
            problems.append(f"engagement {report.engagement} != online {online_engagement}")
        steps = [(t.from_stage, t.to_stage) for t in report.transitions]
        if steps != online.transitions.get(report.lead_id, []) and not kept:
            problems.append(f"transitions {steps} != online {online.transitions.get(report.lead_id)}")
        final = result.state(report.lead_id)
        if final is None or (_scores(final) != _scores(state) if kept else _normalised(final) != _normalised(state)):
            problems.append("stored state differs")
        if problems:
            mismatches.append({"lead_id": report.lead_id, "problems": problems})
    return {
        "parity": not mismatches and not missing and not extra,
        "leads_checked": checked, "mismatched": len(mismatches), "missing_in_backtest": len(missing),
        "only_in_backtest": len(extra), "examples": mismatches[:max_examples],
    }
