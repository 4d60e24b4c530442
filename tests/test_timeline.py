"""The lead timeline on its own: routing, dedupe, adoption, the shared computer, merge order, replay."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.engine import apply_event, apply_outcome, new_lead
from chalicelib.engine.scoring import FUTURE_SKEW
from chalicelib.events import Event
from chalicelib.rules.compile import compile_ruleset
from chalicelib.rules.loader import default_ruleset
from chalicelib.state import Transition, lead_id_for
from chalicelib.timeline import Outcome, apply, in_time_order, merge, replay, route, step

RS = compile_ruleset(default_ruleset(), version=1)
T0 = 1_767_571_200.0
ANA, BO = lead_id_for("ana@acme.io"), lead_id_for("bo@acme.io")


def ev(event_id: str, t: float, email: str | None = None, visitor: str | None = None, typ: str = "page_view",
       **props: Any) -> Event:
    return Event(event_id, typ, T0 + t, email, visitor, props or {"path": "/pricing"})


def ids(routed: Any, lead_id: str) -> list[Any]:
    return list(routed.timelines[lead_id].items)


# -- routing ------------------------------------------------------------------------------------------


def test_an_email_names_its_lead_and_nothing_else_counts_without_one() -> None:
    routed = route([ev("e1", 0, "ana@acme.io"), ev("n1", 1), ev("e2", 2, "bo@acme.io"), ev("e3", 3, "ana@acme.io")])
    assert routed.order == [ANA, BO]  # by first appearance
    assert ids(routed, ANA) == ["e1", "e3"] and ids(routed, BO) == ["e2"]
    assert routed.timelines[ANA].email == "ana@acme.io"
    assert (routed.dropped, routed.leads, routed.pending_anonymous) == (1, 2, 0)


def test_imported_history_may_name_a_lead_by_id_alone() -> None:
    crm = lead_id_for("crm-key")  # (any id: imported history derives it from the exporting system's key)
    keyed = Event("k1", "page_view", T0, lead_id=crm)
    both = Event("k2", "page_view", T0 + 1, "ana@acme.io", lead_id=crm)  # an email wins
    routed = route([keyed, both, Event("k3", "page_view", T0 + 2, lead_id=crm), ev("a1", 3, visitor="v1")])
    assert routed.order == [crm, ANA]
    assert ids(routed, crm) == ["k1", "k3"] and routed.timelines[crm].email is None
    assert ids(routed, ANA) == ["k2"] and routed.pending_anonymous == 1


def test_an_anonymous_visitor_waits_until_identified_then_goes_straight_to_its_lead() -> None:
    routed = route([
        ev("a1", 0, visitor="v1"),
        ev("e1", 5, "ana@acme.io"),
        ev("a2", 10, visitor="v1"),
        ev("i1", 20, "ana@acme.io", "v1", typ="identify"),
        ev("a3", 30, visitor="v1"),  # linked now: counts at once
        ev("b1", 40, visitor="v2"),  # never identified: counts nowhere
    ])
    # The waiting events count at the identify, oldest first, before the identify itself.
    assert ids(routed, ANA) == ["e1", "a1", "a2", "i1", "a3"]
    timeline = routed.timelines[ANA]
    assert timeline.links == {"i1": "v1"}
    assert timeline.adopted == {"v1": {"a1": ev("a1", 0, visitor="v1"), "a2": ev("a2", 10, visitor="v1")}}
    assert list(routed.waiting) == ["v2"] and routed.pending_anonymous == 1


def test_waiting_events_are_adopted_in_store_order() -> None:
    # Same instant: ties go by event id, as the store returns a visitor's events.
    routed = route([ev("a9", 0, visitor="v1"), ev("a1", 0, visitor="v1"), ev("i1", 1, "ana@acme.io", "v1")])
    assert ids(routed, ANA) == ["a1", "a9", "i1"]


def test_a_shared_computer_keeps_its_first_link() -> None:
    routed = route([
        ev("a1", 0, visitor="v1"),
        ev("i1", 10, "ana@acme.io", "v1", typ="identify"),
        ev("i2", 20, "bo@acme.io", "v1", typ="identify"),  # another person on the same browser
        ev("a2", 30, visitor="v1"),
    ])
    assert ids(routed, ANA) == ["a1", "i1", "a2"]
    assert ids(routed, BO) == ["i2"]  # the identify counts for its own email only
    assert routed.timelines[BO].links is None and routed.timelines[BO].adopted is None


def test_what_the_store_knew_before_the_stream_counts_like_the_stream_itself() -> None:
    """The live service passes its stored links and waiting events: a batch reads like a whole history."""
    stored = [ev("a1", 0, visitor="v1"), ev("a2", 1, visitor="v1")]
    history = [*stored, ev("i1", 10, "ana@acme.io", "v1"), ev("a3", 20, visitor="v1"), ev("x1", 30, visitor="v9")]
    whole = route(history)
    batch = route(history[2:], waiting={"v1": stored})
    assert ids(batch, ANA) == ids(whole, ANA) == ["a1", "a2", "i1", "a3"]
    assert batch.timelines[ANA].adopted == {"v1": {"a1": stored[0], "a2": stored[1]}}
    # A visitor linked before the stream goes straight to its lead, and keeps that link.
    later = route([ev("a4", 40, visitor="v1"), ev("i2", 50, "bo@acme.io", "v1")], links={"v1": ANA})
    assert later.order == [ANA, BO]
    assert ids(later, ANA) == ["a4"] and later.timelines[ANA].email is None
    assert ids(later, BO) == ["i2"] and later.timelines[BO].links is None


# -- dedupe -------------------------------------------------------------------------------------------


def test_the_first_delivery_wins_and_redeliveries_change_nothing() -> None:
    first = ev("e1", 0, "ana@acme.io", path="/pricing")
    again = ev("e1", 2.5, "ana@acme.io", path="/careers")  # same id, other content: still a redelivery
    routed = route([
        first, ev("a1", 1, visitor="v1"), ev("a1", 2, visitor="v1"), again, ev("i1", 3, "ana@acme.io", "v1"),
        ev("a1", 4, visitor="v1"),
    ])
    timeline = routed.timelines[ANA]
    assert list(timeline.items.values()) == [first, ev("a1", 1, visitor="v1"), ev("i1", 3, "ana@acme.io", "v1")]
    assert (routed.duplicates, routed.waiting_duplicates) == (2, 1)


def test_a_waiting_event_the_lead_already_has_counts_once() -> None:
    routed = route([ev("e1", 0, "ana@acme.io"), ev("e1", 1, visitor="v1"), ev("i1", 2, "ana@acme.io", "v1")])
    assert ids(routed, ANA) == ["e1", "i1"] and routed.duplicates == 1
    assert list(routed.timelines[ANA].adopted["v1"]) == ["e1"]  # type: ignore[index]  # its waiting copy goes too


# -- merge --------------------------------------------------------------------------------------------


def test_outcomes_interleave_by_time_events_first_at_the_same_instant() -> None:
    events = [ev("e1", 0, "ana@acme.io"), ev("e2", 100, "ana@acme.io")]
    outcomes = [Outcome("accepted", T0 + 100, email="ana@acme.io"), Outcome("won", T0 + 50, lead_id=ANA),
                Outcome("lost", T0 - 1, email="ana@acme.io"), Outcome("lost", T0, email="cy@acme.io")]
    routed = route(events, sorted(outcomes, key=lambda o: o.ts))
    items = list(routed.timelines[ANA].items.values())
    assert [i.event_id if isinstance(i, Event) else i.outcome for i in items] == ["e1", "won", "e2", "accepted"]
    # Before its lead existed, or for a lead that never did: the API would refuse it.
    assert (routed.outcomes_applied, routed.unmatched_outcomes) == (2, 2)
    # One lead's stored history reads the same way (the re-score's merge).
    assert merge(reversed(events), outcomes) == [outcomes[2], events[0], outcomes[3], outcomes[1], events[1],
                                                 outcomes[0]]


def test_merge_is_a_stable_sort_by_time() -> None:
    same = [ev("b", 0, "ana@acme.io"), ev("a", 0, "ana@acme.io"), ev("c", -1, "ana@acme.io")]
    assert merge(same) == [same[2], same[0], same[1]]
    assert [e.event_id for e in in_time_order(same)] == ["c", "b", "a"]
    assert merge([], [Outcome("won", T0, lead_id=ANA)]) == [Outcome("won", T0, lead_id=ANA)]


def test_a_stream_out_of_time_order_is_not_routed() -> None:
    routed = route([ev("e1", 10, "ana@acme.io"), ev("e2", 0, "ana@acme.io")])
    assert routed.unsorted


def test_workers_split_the_leads_by_first_appearance_and_see_every_link() -> None:
    history = [ev("a1", 0, visitor="v1"), ev("e1", 1, "ana@acme.io"), ev("e2", 2, "bo@acme.io"),
               ev("i1", 3, "bo@acme.io", "v1"), ev("a2", 4, visitor="v1"), ev("e3", 5, "cy@acme.io")]
    whole = route(history)
    shares = [route(history, share=n, workers=2) for n in (0, 1)]
    assert shares[0].order == [ANA, lead_id_for("cy@acme.io")] and shares[1].order == [BO]
    assert ids(shares[1], BO) == ids(whole, BO) == ["e2", "a1", "i1", "a2"]
    assert all(s.leads == 3 for s in shares)
    assert shares[0].duplicates + shares[1].duplicates == whole.duplicates


# -- replay -------------------------------------------------------------------------------------------


def _by_hand(items: list[Any], now: float | None = None) -> tuple[Any, list[Transition]]:
    state = new_lead(ANA, "ana@acme.io")
    transitions: list[Transition] = []
    for item in items:
        at = item.ts if now is None else now
        if isinstance(item, Outcome):
            transitions += apply_outcome(state, item.outcome, RS, at, item.reason)
        else:
            transitions += apply_event(state, item, RS, at)
    return state, transitions


def test_replay_applies_each_item_at_its_own_time_and_live_events_at_the_clock() -> None:
    items: list[Any] = [
        Event("e1", "demo_request", T0, "ana@acme.io", traits={"job_title": "VP Sales", "company_size": 200}),
        Outcome("accepted", T0 + 60, lead_id=ANA),
        Event("e2", "page_view", T0 + 10 * FUTURE_SKEW, "ana@acme.io", properties={"path": "/pricing"}),
        Outcome("won", T0 + 86400, lead_id=ANA, reason="big deal"),
    ]
    expected, expected_transitions = _by_hand(items)
    state = new_lead(ANA, "ana@acme.io")
    transitions = replay(state, items, RS)
    assert state == expected and transitions == expected_transitions
    assert [t.to_stage for t in transitions] == ["sql", "customer"]
    # Live, at the service's clock: an event from beyond it counts at the clock (plus the allowed skew).
    clocked = new_lead(ANA, "ana@acme.io")
    assert apply(clocked, items[:1] + items[2:3], RS, T0) == _by_hand(items[:1] + items[2:3], T0)[1]
    assert clocked == _by_hand(items[:1] + items[2:3], T0)[0] and clocked.last_seen == T0 + FUTURE_SKEW


def test_a_step_is_one_item_of_a_replay() -> None:
    items: list[Any] = [ev("e1", 0, "ana@acme.io"), Outcome("disqualified", T0 + 60, lead_id=ANA, reason="spam")]
    state = new_lead(ANA, "ana@acme.io")
    assert step(state, items[0], RS) == [] and state.event_count == 1
    (transition,) = step(state, items[1], RS)
    assert (transition.to_stage, transition.at, state.disqualified_reason) == ("disqualified", T0 + 60, "spam")
    assert state == _by_hand(items)[0]


def test_an_outcome_as_the_store_keeps_it() -> None:
    record = {"outcome": "rejected", "reason": "no budget", "at": T0, "actor": "rep-1", "answers": {}}
    assert Outcome.from_record(ANA, record) == Outcome("rejected", T0, lead_id=ANA, reason="no budget", actor="rep-1")
    with pytest.raises(ValueError):
        _ = Outcome("won", T0).lead_key


# -- unverified sources: a public form fills blanks and never holds a visitor against a verified source


def _by(source: str, event_id: str, t: float, email: str | None = None, visitor: str | None = None,
        **traits: Any) -> Event:
    return Event(event_id, "identify" if visitor else "form_submitted", T0 + t, email, visitor, {}, traits, source)


def test_a_form_link_is_re_pointed_by_a_verified_identify_in_one_history() -> None:
    routed = route([
        _by("form", "f1", 0, "bo@acme.io", "v1"),  # the attacker claims the visitor first
        ev("a1", 1, visitor="v1"),
        _by("segment", "i1", 2, "ana@acme.io", "v1"),  # the owner, signed: the link moves
        ev("a2", 3, visitor="v1"),
        _by("form", "f2", 4, "bo@acme.io", "v1"),  # and a form cannot take it back
        ev("a3", 5, visitor="v1"),
    ])
    assert ids(routed, BO) == ["f1", "a1", "f2"]
    assert ids(routed, ANA) == ["i1", "a2", "a3"]


def test_the_first_verified_link_wins_against_forms_and_later_identifies() -> None:
    routed = route([
        _by("api", "i1", 0, "ana@acme.io", "v1"),
        _by("form", "f1", 1, "bo@acme.io", "v1"),
        _by("hubspot", "i2", 2, "bo@acme.io", "v1"),  # a shared computer: the first verified link holds
        ev("a1", 3, visitor="v1"),
    ])
    assert ids(routed, ANA) == ["i1", "a1"]
    assert ids(routed, BO) == ["f1", "i2"]


def test_a_link_the_store_knows_a_form_made_is_re_pointed_by_a_verified_identify() -> None:
    events = [_by("api", "i1", 0, "ana@acme.io", "v1"), ev("a1", 1, visitor="v1")]
    routed = route(events, links={"v1": BO}, unverified={"v1"})
    assert ids(routed, ANA) == ["i1", "a1"] and routed.timelines[ANA].links == {"i1": "v1"}
    held = route(events, links={"v1": BO})  # made by a verified source: it holds
    assert ids(held, ANA) == ["i1"] and ids(held, BO) == ["a1"]


def test_a_public_form_fills_blank_attributes_only_whatever_the_order() -> None:
    verified = _by("api", "i1", 10, "ana@acme.io", company="Acme", job_title="CTO")
    form = _by("form", "f1", 0, "ana@acme.io", company="Evil Inc", phone="+1 555 6666", job_title="")
    for order in ([form, verified], [verified, form]):
        state = new_lead(ANA, "ana@acme.io")
        replay(state, order, RS)
        assert {k: state.attributes.get(k) for k in ("company", "job_title", "phone")} == {
            "company": "Acme", "job_title": "CTO", "phone": "+1 555 6666"}
        assert state.attribute_sources["company"] == ["api", T0 + 10]
        assert state.attribute_sources["phone"] == ["form", T0]
    later = new_lead(ANA, "ana@acme.io")
    replay(later, [verified, _by("form", "f2", 20, "ana@acme.io", company="Evil Inc", how_heard="x")], RS)
    assert later.attributes["company"] == "Acme" and later.attributes["custom"] == {"how_heard": "x"}
    replay(later, [_by("form", "f3", 30, "ana@acme.io", how_heard="y")], RS)
    assert later.attributes["custom"] == {"how_heard": "x"}  # a custom field a form filled stays too
    replay(later, [_by("typeform", "t1", 40, "ana@acme.io", how_heard="z", company="Acme Corp")], RS)
    assert later.attributes["custom"] == {"how_heard": "z"} and later.attributes["company"] == "Acme Corp"
    assert later.attribute_sources["custom.how_heard"] == ["typeform", T0 + 40]
