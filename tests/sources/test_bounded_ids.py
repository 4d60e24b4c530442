"""Ids vendors send are bounded before they become keys or are remembered (issue: item growth)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.events import MAX_DATA_BYTES, MAX_ID_LENGTH, bounded_id
from chalicelib.sources.payload import bounded, make_event


@given(st.text(min_size=1, max_size=3000))
def test_every_vendor_id_becomes_a_short_stable_key(raw: str) -> None:
    event = make_event("segment", raw, "page_view", 0.0, anonymous_id=f"segment:anon:{raw}")
    assert len(event.event_id.encode()) <= len("segment:") + MAX_ID_LENGTH
    assert event.anonymous_id is not None and len(event.anonymous_id.encode()) <= MAX_ID_LENGTH
    again = make_event("segment", raw, "page_view", 0.0, anonymous_id=f"segment:anon:{raw}")
    assert (again.event_id, again.anonymous_id) == (event.event_id, event.anonymous_id)  # dedupe still works


def test_plain_ids_are_kept_as_sent_and_long_ones_digested() -> None:
    assert bounded_id("msg-42") == "msg-42"
    assert bounded_id("x" * 2000) != bounded_id("x" * 2001)
    assert bounded_id("x" * 2000).startswith("h_") and len(bounded_id("x" * 2000)) == 34


def test_a_vendor_events_properties_and_traits_are_bounded_by_leaving_out_the_largest() -> None:
    small = {"plan": "pro", "seats": 3}
    assert bounded(small) is small  # (the usual case: nothing copied)
    large = {"plan": "pro", "blob": "x" * 900_000, "notes": ["y" * 900] * 30, "email": "a@b.io"}
    assert bounded(large) == {"plan": "pro", "email": "a@b.io"}
    event = make_event("segment", "m1", "page_view", 0.0, properties=large, traits=large)
    assert event.properties == event.traits == {"plan": "pro", "email": "a@b.io"}


_SIZED = st.integers(0, 12_000).map(lambda n: "x" * n)  # (any size, little to generate)


@given(st.dictionaries(st.text(max_size=60), st.one_of(_SIZED, st.text(max_size=50), st.lists(_SIZED, max_size=4)),
                       max_size=20))
def test_whatever_a_vendor_sends_an_event_keeps_at_most_the_bound(data: dict[str, object]) -> None:
    kept = bounded(data)
    assert len(json.dumps(kept, separators=(",", ":")).encode()) <= MAX_DATA_BYTES
    assert kept.items() <= data.items()  # (values left out, none changed)
    if len(json.dumps(data, separators=(",", ":")).encode()) <= MAX_DATA_BYTES:
        assert kept == data
