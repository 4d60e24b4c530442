"""The backtest, the online service and the re-score must agree lead for lead on any event stream.

All three read histories through the one lead timeline (``chalicelib.timeline``), so this holds by
construction; these tests guard it. The online side is ``LeadService`` over the in-memory
repositories, fed in time order with a clock reading each event's time (``baton.backtest.online``);
the comparison covers the stored state as a whole (stage, history, fit, engagement accumulators,
caps, dedupe memory), the transitions and the engagement score.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.backtest import backtest, replay
from baton.backtest.online import _normalised, _scores, parity, replay_online, revised
from baton.synth import generate
from chalicelib.events import Event
from chalicelib.rescore.replay import replay as rescore_replay
from chalicelib.rules import default_ruleset
from chalicelib.state import lead_id_for
from chalicelib.timeline import Outcome, in_time_order, route

T0 = 1_767_571_200.0
EMAILS = ("ana@acme.io", "bo@gmail.com", "cy@rivalscore.io", "dee@bigcorp.com")
ANONYMOUS = ("anon-1", "anon-2", "anon-3")
PATHS = ("/pricing", "/pricing/plans", "/blog/x", "/careers", "/product/scoring", "/")
TYPES = (
    "page_view", "page_view", "page_view", "email_open", "email_click", "content_download", "webinar_attended",
    "demo_request", "contact_sales", "meeting_booked", "meeting_canceled", "unsubscribe", "trial_signup",
    "form_submitted", "spam_report",
)
TRAITS = (
    {},
    {"job_title": "VP Sales", "company_size": 250, "industry": "saas", "country": "us"},
    {"job_title": "Student"},
    {"job_title": "Marketing Manager", "company_size": "40", "department": "marketing"},
    {"job_title": "Founder", "company_size": 5000},
)
GAPS = (0.0, 0.0, 1.0, 90.0, 3600.0, 86400.0, 3 * 86400.0, 12 * 86400.0, 40 * 86400.0)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Event], list[Outcome]]:
    n = draw(st.integers(1, 40))
    t = T0
    events: list[Event] = []
    for i in range(n):
        t += draw(st.sampled_from(GAPS))
        if events and draw(st.integers(0, 9)) == 0:
            events.append(draw(st.sampled_from(events)))  # a redelivery
            continue
        subject = draw(st.sampled_from(("email", "email", "anonymous", "identify", "nobody")))
        email = draw(st.sampled_from(EMAILS)) if subject in ("email", "identify") else None
        anonymous = draw(st.sampled_from(ANONYMOUS)) if subject in ("anonymous", "identify") else None
        typ = "identify" if subject == "identify" and draw(st.booleans()) else draw(st.sampled_from(TYPES))
        props: dict[str, Any] = {"path": draw(st.sampled_from(PATHS))} if typ == "page_view" else {}
        if typ in ("page_view", "webinar_attended") and draw(st.booleans()):
            props["seconds"] = draw(st.sampled_from((0, 45, 600, "1,800", "n/a")))  # what amount rules read
        if typ in ("content_download", "demo_request", "form_submitted") and draw(st.booleans()):
            props["form_id"] = draw(st.sampled_from(("demo", "ebook-lead-scoring", "newsletter")))
        traits = draw(st.sampled_from(TRAITS)) if typ in ("identify", "form_submitted", "demo_request") else {}
        # Times are mostly increasing; some arrive out of order (the backtest sorts, like the feeder).
        ts = t - draw(st.sampled_from((0.0, 0.0, 0.0, 7200.0)))
        # Ids sort as they were made, so events at the same instant are in store order too.
        events.append(Event(f"e{i:02d}", typ, ts, email, anonymous, props, traits, "test"))
    outcomes = [
        Outcome(
            draw(st.sampled_from(("accepted", "rejected", "recycled", "opportunity", "won", "lost", "disqualified"))),
            T0 + draw(st.sampled_from(GAPS)) * draw(st.integers(0, 6)),
            email=draw(st.sampled_from(EMAILS)),
            reason=draw(st.sampled_from((None, "no budget"))),
        )
        for _ in range(draw(st.integers(0, 5)))
    ]
    return events, outcomes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_backtest_matches_online_service(history: tuple[list[Event], list[Outcome]]) -> None:
    events, outcomes = history
    online = replay_online(events, outcomes)
    result = backtest(events, online.ruleset, outcomes)
    report = parity(result, online)
    assert report["parity"], report


def _with_amount_rules() -> Any:
    from chalicelib.rules import parse_ruleset

    body = default_ruleset().model_dump(mode="json", by_alias=True, exclude_none=True)
    body["engagement"] += [
        {"id": "time-on-site", "label": "Time on site", "events": ["page_view"], "points": 1,
         "amount": {"property": "seconds", "per": 30}, "caps": {"max_points": 40, "window_days": 7}},
        {"id": "webinar-minutes", "label": "Webinar minutes", "events": ["webinar_attended"], "points": 2,
         "amount": {"property": "seconds", "per": 60}, "caps": {"max_points": 50, "max_count": 2},
         "half_life_days": 5},
    ]
    return parse_ruleset(body)


AMOUNT_RULES = _with_amount_rules()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.lists(st.integers(1, 6), min_size=1, max_size=8))
def test_amount_rules_score_alike_live_and_in_the_backtest(
    history: tuple[list[Event], list[Outcome]], sizes: list[int]
) -> None:
    events, outcomes = history
    online = replay_online(events, outcomes, AMOUNT_RULES, batches=itertools.cycle(sizes))
    result = backtest(events, online.ruleset, outcomes)
    report = parity(result, online)
    assert report["parity"], report
    _rescore_matches_online(events, outcomes, online)


def _rescore_matches_online(events: list[Event], outcomes: list[Outcome], online: Any) -> int:
    """The re-score's replay of each lead's stored history equals the live state: scores follow event
    time whatever order the history arrived in (a lead whose past transitions a late event revised
    keeps the journey it announced, see ``parity``: its scores are compared). Returns how many leads."""
    compared = 0
    for lead_id, state in online.states.items():
        stored_events, stored_outcomes = online.leads_repo.events(lead_id), online.leads_repo.outcomes(lead_id)
        rescored = rescore_replay(lead_id, state.email, stored_events, stored_outcomes, online.ruleset)
        if revised(state):
            assert _scores(rescored) == _scores(state), lead_id
        else:
            assert _normalised(rescored) == _normalised(state), lead_id
        compared += 1
    return compared


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.lists(st.integers(1, 6), min_size=1, max_size=8))
def test_live_service_rescore_and_backtest_read_a_history_alike(
    history: tuple[list[Event], list[Outcome]], sizes: list[int]
) -> None:
    """Live (in batches of consecutive events, as senders batch webhooks), re-score and backtest."""
    events, outcomes = history
    online = replay_online(events, outcomes, batches=itertools.cycle(sizes))
    result = backtest(events, online.ruleset, outcomes)
    report = parity(result, online)
    assert report["parity"], report
    _rescore_matches_online(events, outcomes, online)


def test_a_lead_accepted_before_its_form_was_linked_gets_the_route_and_deadline_the_form_gives() -> None:
    """Found by the test above: sales accepted dee at T0, the form (Founder, 5,000 people: the
    enterprise route) came from a visitor linked to dee one second later. Replayed, the lead is
    routed enterprise; its deadline must be the enterprise one (4 h), as the backtest has it, not
    the 24 h of the route it had before the link."""
    def page(event_id: str, ts: float, anonymous_id: str | None = None) -> Event:
        return Event(event_id=event_id, type="page_view", ts=ts, email="dee@bigcorp.com", anonymous_id=anonymous_id,
                     properties={"path": "/pricing"}, source="test")

    events = [Event(event_id="e03", type="form_submitted", ts=T0, anonymous_id="anon-2", source="test",
                    traits={"job_title": "Founder", "company_size": 5000}),
              page("e08", T0), page("e12", T0 + 1, anonymous_id="anon-2")]
    outcomes = [Outcome(outcome="accepted", ts=T0, email="dee@bigcorp.com")]
    online = replay_online(events, outcomes, batches=itertools.cycle([1]))
    state = online.states[lead_id_for("dee@bigcorp.com")]
    assert state.route == "enterprise" and state.sla_deadline == T0 + 4 * 3600
    assert parity(backtest(events, online.ruleset, outcomes), online)["parity"]
    _rescore_matches_online(events, outcomes, online)


@settings(max_examples=40, deadline=None)
@given(histories())
def test_results_do_not_depend_on_workers(history: tuple[list[Event], list[Outcome]]) -> None:
    events, outcomes = history
    one = backtest(events, default_ruleset(), outcomes, workers=1)
    old = replay.PARALLEL_MIN_EVENTS
    replay.PARALLEL_MIN_EVENTS = 0  # fork even for these few leads
    try:
        two = backtest(events, default_ruleset(), outcomes, workers=2)
    finally:
        replay.PARALLEL_MIN_EVENTS = old
    assert [r.to_row() for r in one.leads] == [r.to_row() for r in two.leads]


@settings(max_examples=40, deadline=None)
@given(histories())
def test_a_history_routed_already_replays_as_one_routed_by_the_backtest(
    history: tuple[list[Event], list[Outcome]]
) -> None:
    # `baton rules suggest` routes a history to learn from it, then measures its file on that routing.
    events, outcomes = in_time_order(history[0]), history[1]
    whole = route(events, sorted(outcomes, key=lambda o: o.ts))
    counts = ("events", "scored", "duplicates", "pending_anonymous", "dropped", "outcomes_applied", "unmatched_outcomes")
    old = replay.PARALLEL_MIN_EVENTS
    replay.PARALLEL_MIN_EVENTS = 0  # fork even for these few leads
    try:
        for workers in (1, 2):
            fresh = backtest(events, default_ruleset(), outcomes, workers=workers)
            reused = backtest(events, default_ruleset(), outcomes, workers=workers, routed=whole)
            assert [r.to_row() for r in reused.leads] == [r.to_row() for r in fresh.leads]
            assert [getattr(reused, c) for c in counts] == [getattr(fresh, c) for c in counts]
    finally:
        replay.PARALLEL_MIN_EVENTS = old


def test_parity_on_a_synthetic_history() -> None:
    history = generate(120, seed=5)
    online = replay_online(history.events, history.outcomes)
    result = backtest(history.events, online.ruleset, history.outcomes, workers=2)
    report = parity(result, online)
    assert report["parity"], report
    assert report["leads_checked"] == 120
    assert _rescore_matches_online(history.events, history.outcomes, online) == 120


def test_parity_with_a_published_candidate_ruleset() -> None:
    candidate = default_ruleset().model_copy(deep=True)
    body = candidate.model_dump(mode="json", by_alias=True)
    body["stages"]["mql"]["when"]["any"][0]["all"][1]["value"] = 45
    from chalicelib.rules import parse_ruleset

    ruleset = parse_ruleset(body)
    history = generate(60, seed=9)
    online = replay_online(history.events, history.outcomes, ruleset)
    assert online.ruleset.version == 1
    result = backtest(history.events, online.ruleset, history.outcomes)
    assert parity(result, online)["parity"]


def test_anonymous_events_wait_for_the_identify_and_count_at_their_own_time() -> None:
    events = [
        Event("a1", "page_view", T0, None, "v1", {"path": "/pricing"}),
        Event("a1", "page_view", T0, None, "v1", {"path": "/pricing"}),  # redelivered while waiting
        Event("e1", "email_open", T0 + 50, "x@acme.io"),
        Event("a2", "page_view", T0 + 100, None, "v1", {"path": "/pricing"}),
        Event("i1", "identify", T0 + 200, "x@acme.io", "v1", {}, {"job_title": "VP Sales"}),
        Event("a3", "page_view", T0 + 300, None, "v1", {"path": "/pricing"}),  # linked: counts at once
        Event("a4", "page_view", T0 + 400, None, "v2", {"path": "/pricing"}),  # never identified
        Event("n1", "page_view", T0 + 500),  # nobody
    ]
    result = backtest(events, default_ruleset())
    (lead,) = result.leads
    assert lead.lead_id == lead_id_for("x@acme.io")
    assert lead.state is None  # not kept: rebuilt on demand
    state = result.state(lead.lead_id)
    assert state is not None
    assert list(state.recent_ids) == ["a1", "e1", "a2", "i1", "a3"]  # adopted visits in event time
    assert backtest(events, default_ruleset(), keep_states=True).leads[0].state == state
    assert (result.duplicates, result.pending_anonymous, result.dropped) == (1, 1, 1)
    assert lead.events == 5


def test_outcomes_interleave_by_time_and_unknown_leads_are_skipped() -> None:
    events = [
        Event("e1", "demo_request", T0, "ana@acme.io", traits={"job_title": "VP Sales", "company_size": 200}),
        Event("e2", "page_view", T0 + 10 * 86400, "ana@acme.io", properties={"path": "/pricing"}),
    ]
    outcomes = [
        Outcome("won", T0 + 20 * 86400, email="ana@acme.io"),
        Outcome("accepted", T0 + 86400, lead_id=lead_id_for("ana@acme.io")),
        Outcome("won", T0 - 1, email="ana@acme.io"),  # before the lead existed: the API would refuse it
        Outcome("lost", T0, email="nobody@acme.io"),
    ]
    result = backtest(events, default_ruleset(), outcomes)
    (lead,) = result.leads
    assert [t.to_stage for t in lead.transitions] == ["sql", "customer"]
    assert (lead.outcome, lead.won, lead.max_stage) == ("won", True, "customer")
    assert (result.outcomes_applied, result.unmatched_outcomes) == (2, 2)
    assert lead.sql_at == T0 and lead.fast_track


@pytest.mark.parametrize("workers", [1, 2])
def test_unsorted_input_is_sorted_stably(workers: int) -> None:
    history = generate(40, seed=2)
    shuffled = list(reversed(history.events))
    a = backtest(history.events, default_ruleset(), history.outcomes)
    b = backtest(shuffled, default_ruleset(), history.outcomes, workers=workers)
    # Reversal flips same-time events too, so compare what does not depend on their order.
    assert {r.lead_id: r.events for r in a.leads} == {r.lead_id: r.events for r in b.leads}
