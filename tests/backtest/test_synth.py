"""The synthetic history: deterministic, realistic in its shares, noisy in the ways real data is."""

from __future__ import annotations

from collections import Counter

import pytest

from baton.backtest import backtest
from baton.metrics import funnel
from baton.synth import HAND_RAISERS, History, generate
from chalicelib.rules import default_ruleset


@pytest.fixture(scope="module")
def history() -> History:
    return generate(2000, seed=7)


def test_same_seed_same_history() -> None:
    a, b = generate(150, seed=3), generate(150, seed=3)
    assert a.events == b.events and a.outcomes == b.outcomes
    c = generate(150, seed=4)
    assert c.events != a.events


def test_sizes_and_order(history: History) -> None:
    assert len(history.events) == 40_000  # n_leads * events_per_lead, exactly
    assert len(generate(100, seed=1, n_events=3333).events) == 3333
    assert all(a.ts <= b.ts for a, b in zip(history.events, history.events[1:], strict=False))
    assert all(history.start <= e.ts <= history.end for e in history.events)
    assert all(history.start <= o.ts <= history.end for o in history.outcomes)
    emails = {e.email for e in history.events if e.email}
    assert len(emails) == 2000 == history.leads


def test_sales_ready_share_is_between_5_and_15_percent(history: History) -> None:
    hand_raisers = {e.email for e in history.events if e.type in HAND_RAISERS}
    assert 0.05 <= len(hand_raisers) / history.leads <= 0.15


def test_noise_is_present(history: History) -> None:
    competitors = set(default_ruleset().lists["competitors"])
    domains = Counter(e.email.rpartition("@")[2] for e in history.events if e.email)
    assert any(d.endswith(".edu") or ".ac." in d for d in domains)
    assert any(d in competitors for d in domains)
    assert any(d in {"mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com", "sharklasers.com"}
               for d in domains)
    titles = Counter(e.traits.get("job_title") for e in history.events if e.traits)
    assert titles["Looking for opportunities"] > 0
    assert any(e.properties.get("path", "").startswith("/careers") for e in history.events)
    ids = Counter(e.event_id for e in history.events)
    assert 0 < sum(1 for n in ids.values() if n > 1) < len(history.events) * 0.02  # redeliveries


def test_identity_flows(history: History) -> None:
    anonymous_first = {e.anonymous_id for e in history.events if e.anonymous_id and not e.email}
    identified = {e.anonymous_id for e in history.events if e.anonymous_id and e.email}
    assert len(identified) > 0.2 * history.leads
    assert anonymous_first - identified  # visitors who never identify


def test_channels_and_offers(history: History) -> None:
    channels = Counter((e.properties.get("utm_source"), e.properties.get("utm_medium"))
                       for e in history.events if "utm_source" in e.properties)
    assert set(channels) == {("google", "cpc"), ("linkedin", "paid"), ("newsletter", "email"), ("google", "organic"),
                             ("g2", "referral")}
    forms = {e.properties.get("form_id") for e in history.events} - {None}
    assert set(default_ruleset().forms) <= forms


def test_outcomes_follow_fit_and_intent(history: History) -> None:
    kinds = Counter(o.outcome for o in history.outcomes)
    assert {"accepted", "rejected", "opportunity", "won", "lost", "recycled", "disqualified"} <= set(kinds)
    won = {o.email for o in history.outcomes if o.outcome == "won"}
    personas = Counter(history.personas[email] for email in won)
    noise = {"student", "job-seeker", "competitor", "disposable"}
    assert not set(personas) & noise
    assert personas["champion"] > personas["practitioner"]


def test_default_rules_on_the_history_look_like_a_funnel(history: History) -> None:
    result = backtest(history.events, default_ruleset(), history.outcomes)
    steps = {row["step"]: row["leads"] for row in funnel(result)}
    assert steps["lead"] == 2000
    assert steps["lead"] > steps["mql"] > steps["sql"] > steps["opportunity"] > steps["won"] > 0
    disqualified = Counter(r.disqualified_reason for r in result.leads if r.disqualified_reason)
    assert len(disqualified) == 4  # competitor, disposable, student, job seeker all fire
