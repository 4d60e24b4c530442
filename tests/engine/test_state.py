"""Lead states stored before the state's fields were renamed still load, and are written back renamed."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.engine import apply_event, new_lead
from chalicelib.events import Event
from chalicelib.rules import compile_ruleset, default_ruleset
from chalicelib.state import RECENT_ID_BYTES, RECENT_IDS, SHORT_ID, LeadState

RS = compile_ruleset(default_ruleset(), 1)
T0 = 1_700_000_000.0
EVENTS = [
    Event("e1", "identify", T0, traits={"job_title": "Marketing Manager", "company_size": "250"}),
    Event("e2", "page_view", T0 + 60, properties={"path": "/pricing"}),
    Event("e3", "page_view", T0 + 3600, properties={"path": "/pricing"}),
    Event("e4", "email_open", T0 + 86400, properties={"campaign": "nurture-1"}),
]
# The state after EVENTS as the engine stored it in DynamoDB before the renames (commit 7be7ee5):
# clock, eng, eng_total, eng_basis and freq.
OLD_SHAPE = (
    '{"lead_id": "L1", "email": "pat@acme.io", "attributes": {"email": "pat@acme.io", "email_domain": "acme.io", '
    '"job_title": "Marketing Manager", "company_size": 250}, "stage": "lead", "stage_history": [], '
    '"clock": 1700086400.0, "first_seen": 1700000000.0, "eng": {"pricing-view": [19.99053788596776, 1700003600.0], '
    '"email-open": [1.0, 1700086400.0]}, "eng_total": [[20.552767847772458, 1700086400.0], null], '
    '"eng_basis": "feab9c0c48bd63e8", "caps": {"pricing-view": [1700000060.0, 1700003600.0], '
    '"email-open": [1700086400.0]}, "freq": {"pricing-burst": [-Infinity, 1700000060.0, 1700003600.0]}, '
    '"recent_ids": ["e1", "e2", "e3", "e4"], "key_events": [{"type": "page_view", "at": 1700000060.0, '
    '"label": "Viewed the pricing page", "detail": "/pricing"}, {"type": "page_view", "at": 1700003600.0, '
    '"label": "Viewed the pricing page", "detail": "/pricing"}], "fit": 45.0, "fit_rules": ["title-manager", '
    '"size-mid-market", "corporate-email"], "fit_version": 1, "disqualified_reason": null, "recycled_at": null, '
    '"fast_track": false, "handed_off_at": null, "route": null, "sla_deadline": null, "sla_reminders": 0, '
    '"accepted_at": null, "transitions_count": 0, "event_count": 4, "ruleset_version": 1, '
    '"rescored_version": null, "shadow": null}'
)


def _replayed() -> LeadState:
    state = new_lead("L1", "pat@acme.io")
    for event in EVENTS:
        apply_event(state, event, RS, event.ts)
    return state


def test_a_state_stored_under_the_old_names_loads_under_the_new_ones() -> None:
    old = LeadState.from_dict(json.loads(OLD_SHAPE))
    assert old.last_seen == T0 + 86400
    assert old.engagement_by_rule["pricing-view"] == [19.99053788596776, T0 + 3600]
    assert old.engagement_totals[0] == [20.552767847772458, T0 + 86400] and old.totals_basis == RS.decay_basis
    assert old.frequency_matches == {"pricing-burst": [float("-inf"), T0 + 60, T0 + 3600]}
    # Stored before attributes had sources: the values load, with no source recorded.
    replayed = _replayed()
    assert old.attribute_sources == {} and replayed.attribute_sources["job_title"] == ["api", T0]
    assert old.to_dict() == {**replayed.to_dict(), "attribute_sources": {}}


def test_an_old_state_is_written_back_with_the_new_names_and_scores_on() -> None:
    old, new = LeadState.from_dict(json.loads(OLD_SHAPE)), _replayed()
    written = old.to_dict()
    assert {"clock", "eng", "eng_total", "eng_basis", "freq"}.isdisjoint(written)
    assert {"last_seen", "engagement_by_rule", "engagement_totals", "totals_basis", "frequency_matches"} <= set(written)
    burst = Event("e5", "page_view", T0 + 2 * 86400, properties={"path": "/pricing"})  # the third view: a burst
    assert apply_event(old, burst, RS, burst.ts) == apply_event(new, burst, RS, burst.ts)
    assert old.to_dict() == {**new.to_dict(), "attribute_sources": {}}
    assert "pricing-burst" in old.engagement_by_rule


def test_the_dedupe_memory_is_bounded_by_bytes_as_well_as_by_count() -> None:
    from chalicelib.events import MAX_ID_LENGTH
    from chalicelib.state import RECENT_ID_BYTES, RECENT_IDS

    state = new_lead("L1", "pat@acme.io")
    longest = 0
    for n in range(3 * RECENT_IDS):
        apply_event(state, Event(f"form:{n:06d}".ljust(MAX_ID_LENGTH + 5, "x"), "page_view", T0 + n), RS, T0 + n)
        stored = len(json.dumps(state.to_dict()["recent_ids"]))
        longest = max(longest, stored)
        assert state.recent_bytes == sum(map(len, state.recent_ids))  # (long ids: counted)
    # Long ids: at most twice the byte budget (plus JSON's quotes and commas), the newest kept.
    assert longest <= 2 * RECENT_ID_BYTES + 4 * (2 * RECENT_ID_BYTES // MAX_ID_LENGTH), longest
    assert f"form:{3 * RECENT_IDS - 1:06d}".ljust(MAX_ID_LENGTH + 5, "x") in state.recent_ids
    assert len(state.recent_ids) >= RECENT_ID_BYTES // (MAX_ID_LENGTH + 5)
    # Ordinary ids: the count bound, as before (the newest RECENT_IDS at least).
    short = new_lead("L2", "pat@acme.io")
    for n in range(2 * RECENT_IDS + 1):
        apply_event(short, Event(f"h_{n:032d}", "page_view", T0 + n), RS, T0 + n)
    assert len(short.recent_ids) == RECENT_IDS
    assert LeadState.from_dict(json.loads(json.dumps(short.to_dict()))).recent_bytes == short.recent_bytes == 0


def _remembered(ids: list[str]) -> list[list[str]]:
    """The dedupe memory after each id, every id's bytes counted (what state.RECENT_IDS describes)."""
    memory: dict[str, None] = {}
    out = []
    for event_id in ids:
        if event_id not in memory:
            memory[event_id] = None
            if len(memory) > 2 * RECENT_IDS or sum(map(len, memory)) > 2 * RECENT_ID_BYTES:
                kept: list[str] = []
                for held in reversed(memory):
                    if len(kept) == RECENT_IDS or (kept and sum(map(len, kept)) + len(held) > RECENT_ID_BYTES):
                        break
                    kept.append(held)
                memory = dict.fromkeys(reversed(kept))
        out.append(list(memory))
    return out


# Lengths around SHORT_ID (bytes counted only while a longer id is remembered), runs of short ones.
id_lengths = st.lists(st.one_of(st.integers(1, 40), st.integers(SHORT_ID - 2, SHORT_ID + 2), st.integers(100, 300)),
                      min_size=1, max_size=40).flatmap(lambda pattern: st.integers(200, 1200).map(
                          lambda n: [pattern[i % len(pattern)] for i in range(n)]))


@settings(max_examples=40, deadline=None)
@given(lengths=id_lengths, repeats=st.integers(2, 50), stored_at=st.integers(0, 1200))
def test_the_dedupe_memory_trims_where_counting_every_id_does(lengths: list[int], repeats: int, stored_at: int
                                                               ) -> None:
    ids = [f"{n}:".ljust(length, "x") for n, length in enumerate(lengths)]
    ids = [ids[n - n % repeats] if n % 7 == 3 else i for n, i in enumerate(ids)]  # some redeliveries
    state = new_lead("L1", "pat@acme.io")
    for n, (event_id, expected) in enumerate(zip(ids, _remembered(ids), strict=True)):
        apply_event(state, Event(event_id, "page_view", T0 + n), RS, T0 + n)
        assert list(state.recent_ids) == expected, n
        if n == stored_at:  # a stored state goes on the same way
            state = LeadState.from_dict(json.loads(json.dumps(state.to_dict())))


_TRAIT_VALUES = st.one_of(st.text(max_size=1000), st.integers(), st.lists(st.text(min_size=200, max_size=300), max_size=6),
                          st.dictionaries(st.text(max_size=8), st.text(min_size=300, max_size=400), max_size=4))
_TRAIT_NAMES = st.one_of(st.sampled_from(["company", "country", "job_title", "address"]), st.text(min_size=1, max_size=8),
                         st.text(min_size=60, max_size=100))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(_TRAIT_NAMES, _TRAIT_VALUES, max_size=12), max_size=8),
       st.sampled_from([None, "api", "form"]))
def test_a_leads_attributes_stay_bounded_whatever_traits_arrive(batches: list[dict[str, object]],
                                                                source: str | None) -> None:
    # Every path's traits end in merge_traits: however many, however large, the attributes (and the
    # record of their sources) fit a bound that leaves room in DynamoDB's 400 KB item for the rest.
    from chalicelib.attributes import LEAD_FIELDS, MAX_CUSTOM_NAME
    from chalicelib.engine.fit import MAX_CUSTOM, MAX_STRUCTURED, MAX_TEXT, merge_traits

    state = new_lead("L1", "pat@acme.io")
    for n, traits in enumerate(batches):
        merge_traits(state, traits, source, T0 + n)
    custom = state.attributes.get("custom", {})
    assert len(custom) <= MAX_CUSTOM and all(len(name) <= MAX_CUSTOM_NAME for name in custom)
    # Its name twice (the value, its source), UTF-8 bytes (4 a character at most), and the value.
    per_value = 2 * 4 * MAX_CUSTOM_NAME + max(MAX_STRUCTURED, 4 * MAX_TEXT) + 64
    size = len(json.dumps([state.attributes, state.attribute_sources], ensure_ascii=False).encode())
    assert size <= (MAX_CUSTOM + len(LEAD_FIELDS)) * per_value < 320 * 1024  # (the rest of a state: < 80 KB)
