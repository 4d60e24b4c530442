"""CSV and Parquet layouts: round trips, the accepted time formats, lead imports and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from baton.backtest import backtest
from baton.backtest.io import (
    VOCABULARY_FILE,
    format_time,
    parse_time,
    read_events,
    read_leads,
    read_outcomes,
    read_vocabulary,
    write_events,
    write_outcomes,
    write_vocabulary,
)
from baton.synth import generate
from chalicelib.events import Event
from chalicelib.rules import default_ruleset
from chalicelib.rules.model import FitRule
from chalicelib.state import lead_id_for
from chalicelib.timeline import Outcome

T0 = 1_767_571_200.0
FORMATS = ["csv", "csv.gz", "parquet"]

EVENTS = [
    Event("e1", "page_view", T0 + 0.001, "zoë@acme.io", None, {"path": "/pricing", "utm_source": "google"}, {}, "web"),
    Event("e2", "identify", T0 + 1.5, "zoë@acme.io", "anon-1", {},
          {"job_title": "VP, Sales", "company_size": 250, "tags": ["a", "b"], "note": 'quote " and , comma'}, "segment"),
    Event("e3", "page_view", T0 + 2.123456, None, "anon-2", {"path": "/blog/x", "nested": {"k": [1, 2.5, None]}}, {},
          "segment"),
    Event("e4", "email_open", T0 + 86400 * 30, "b@x.io", None, {}, {}, "sendgrid"),
]
OUTCOMES = [
    Outcome("accepted", T0 + 10, email="zoë@acme.io"),
    Outcome("won", T0 + 99.25, lead_id="L123", reason="signed, finally"),
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_events_round_trip(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"events.{fmt}"
    assert write_events(path, EVENTS) == len(EVENTS)
    assert read_events(path) == EVENTS


@pytest.mark.parametrize("fmt", FORMATS)
def test_outcomes_round_trip(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"outcomes.{fmt}"
    assert write_outcomes(path, OUTCOMES) == 2
    back = read_outcomes(path)
    assert [(o.lead_key, o.outcome, o.ts, o.reason) for o in back] == [
        (lead_id_for("zoë@acme.io"), "accepted", T0 + 10, None), ("L123", "won", T0 + 99.25, "signed, finally"),
    ]
    assert back[0].email == "zoë@acme.io"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_synthetic_history_survives_a_round_trip_and_backtests_the_same(tmp_path: Path, fmt: str) -> None:
    history = generate(80, seed=4)
    write_events(tmp_path / f"e.{fmt}", history.events)
    write_outcomes(tmp_path / f"o.{fmt}", history.outcomes)
    events, outcomes = read_events(tmp_path / f"e.{fmt}"), read_outcomes(tmp_path / f"o.{fmt}")
    assert events == history.events
    a = backtest(history.events, default_ruleset(), history.outcomes)
    b = backtest(events, default_ruleset(), outcomes)
    assert [r.to_row() for r in a.leads] == [r.to_row() for r in b.leads]


def test_csv_written_by_hand_with_epoch_and_iso_times(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "type,occurred_at,email,anonymous_id,properties\n"
        'page_view,1767571200,a@b.io,,"{""path"": ""/pricing""}"\n'
        "page_view,2026-01-05T00:00:01Z,a@b.io,,\n"
        "page_view,2026-01-05T01:00:02+01:00,,v1,\n"
        "page_view,2026-01-05 00:00:03.5,a@b.io,,\n",
        encoding="utf-8",
    )
    events = read_events(path)
    assert [e.ts for e in events] == [T0, T0 + 1, T0 + 2, T0 + 3.5]
    assert events[0].properties == {"path": "/pricing"} and events[1].properties == {}
    assert events[2].email is None and events[2].anonymous_id == "v1"
    assert all(e.event_id.startswith("h_") and e.source == "import" for e in events)  # content ids
    assert len({e.event_id for e in events}) == 4
    assert read_events(path)[0].event_id == events[0].event_id  # stable: a re-import dedupes


def test_parquet_written_by_other_tools(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({
        "type": ["page_view", "email_open"],
        "occurred_at": [T0, T0 + 60.5],  # epoch seconds as float64
        "email": ["a@b.io", "a@b.io"],
        "properties": ['{"path": "/pricing"}', None],
    }), path)
    events = read_events(path)
    assert [(e.type, e.ts, e.properties) for e in events] == [("page_view", T0, {"path": "/pricing"}),
                                                              ("email_open", T0 + 60.5, {})]
    ms = tmp_path / "ms.parquet"
    pq.write_table(pa.table({
        "event_id": ["x"], "type": ["page_view"], "email": ["a@b.io"], "source": ["web"],
        "ts": pa.array([int(T0 * 1000) + 250], pa.timestamp("ms")),
    }), ms)
    assert read_events(ms)[0].ts == T0 + 0.25


def test_read_leads_turns_rows_into_identify_events(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "email,job_title,company_size,country,created_at\n"
        "Ana@Acme.io,VP Sales,250,us,2026-01-05T00:00:00Z\n"
        "bo@gmail.com,,,,\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="row 3: no occurred_at/created_at"):
        read_leads(path)
    ana, bo = read_leads(path, at="2026-01-01T00:00:00Z")
    assert (ana.type, ana.email, ana.anonymous_id, ana.ts) == ("identify", "ana@acme.io", None, T0)
    assert ana.traits == {"job_title": "VP Sales", "company_size": "250", "country": "us"}
    assert bo.traits == {} and bo.ts == T0 - 4 * 86400
    result = backtest([ana, bo], default_ruleset())
    assert result.get(lead_id_for("ana@acme.io")).fit == 65.0  # type: ignore[union-attr]


def test_read_leads_from_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "leads.parquet"
    pq.write_table(pa.table({"email": ["a@b.io"], "company_size": [40], "industry": [None]}), path)
    (event,) = read_leads(path, at=T0)
    assert event.traits == {"company_size": 40}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_custom_attributes_in_a_history_are_named_as_rules_read_them(tmp_path: Path, kind: str) -> None:
    # A column custom.plan, and traits {"custom.seats": ..} or {"custom": {..}}, are the custom
    # attributes plan and seats (as the live paths store them): a rule on custom.plan reads them.
    leads = tmp_path / "leads.csv"
    leads.write_text("email,custom.plan,created_at\nana@acme.io,pro,2026-01-05T00:00:00Z\n", encoding="utf-8")
    (ana,) = read_leads(leads)
    assert ana.traits == {"plan": "pro"}
    events = [Event("e1", "identify", T0, "bo@acme.io", None, {}, {"custom.plan": "pro", "custom": {"seats": 3}}, "crm"),
              Event("e2", "identify", T0, "cy@acme.io", None, {}, {"custom": {"plan": "free"}}, "crm")]
    path = tmp_path / f"events.{kind}"
    write_events(path, events)
    bo, cy = read_events(path)
    assert bo.traits == {"plan": "pro", "seats": 3} and cy.traits == {"plan": "free"}
    rules = default_ruleset().model_copy(update={"fit": [*default_ruleset().fit, FitRule.model_validate(
        {"id": "pro", "label": "Pro plan", "when": {"field": "custom.plan", "op": "eq", "value": "pro"},
         "points": 7})]})
    result = backtest([ana, bo, cy], rules)
    ana_fit, bo_fit, cy_fit = (result.get(lead_id_for(e)).fit for e in ("ana@acme.io", "bo@acme.io", "cy@acme.io"))  # type: ignore[union-attr]
    assert ana_fit == bo_fit == cy_fit + 7  # (the same business domain; the plan is the difference)


def test_a_custom_name_of_batons_own_in_a_history_is_refused_naming_where(tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text("email,custom.company_size\nana@acme.io,50\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"leads.csv: column 'custom.company_size': company_size is Baton's own"):
        read_leads(leads, at=T0)
    path = tmp_path / "events.parquet"
    write_events(path, [Event("e1", "identify", T0, "a@acme.io", None, {}, {}, "crm"),
                        Event("e2", "identify", T0, "b@acme.io", None, {}, {"custom": {"country": "FR"}}, "crm")])
    with pytest.raises(ValueError, match=r"events.parquet: row 2: traits.custom.country: country is Baton's own"):
        read_events(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("type,email\npage_view,a@b.io\n", "no time column"),
        ("type,occurred_at,email\npage_view,yesterday,a@b.io\n", "row 2: not a time"),
        ("type,occurred_at,email\n,1,a@b.io\n", "row 2: 'type' is empty"),
        ("type,occurred_at,email,properties\npage_view,1,a@b.io,[1]\n", "expected a JSON object"),
    ],
)
def test_bad_event_files_name_the_row(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_events(path)


def test_bad_outcome_files_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("email,outcome,occurred_at\na@b.io,won,1\na@b.io,maybe,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 3: outcome 'maybe' is not one of"):
        read_outcomes(path)
    path.write_text("outcome,occurred_at\nwon,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs 'lead_id' or 'email'"):
        read_outcomes(path)


def test_unknown_extension() -> None:
    with pytest.raises(ValueError, match="unknown file type"):
        read_events("events.json")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(T0, T0), ("1767571200.5", T0 + 0.5), ("2026-01-05T00:00:00", T0), ("2026-01-05T02:00:00+02:00", T0)],
)
def test_parse_time(value: Any, expected: float) -> None:
    assert parse_time(value) == expected


def test_format_time() -> None:
    assert format_time(T0 + 0.25) == "2026-01-05T00:00:00.250000Z"
    assert parse_time(format_time(T0 + 0.123)) == T0 + 0.123


def test_events_keyed_by_lead_id_round_trip_and_route(tmp_path: Path) -> None:
    """Imported history names leads with no email by id: the files keep it and the replay routes by it."""
    from baton.backtest import backtest
    from chalicelib.events import Event
    from chalicelib.rules import default_ruleset
    from chalicelib.timeline import Outcome

    events = [Event("i", "identify", 1000.0, None, None, {}, {"job_title": "CEO"}, "crm", "Lkey1"),
              Event("v", "page_view", 1001.0, None, None, {"path": "/pricing"}, {}, "crm", "Lkey1"),
              Event("x", "page_view", 1002.0, "ana@acme.io", None, {"path": "/pricing"}, {}, "api")]
    for name in ("events.csv", "events.parquet"):
        write_events(tmp_path / name, events)
        assert read_events(tmp_path / name) == events
    result = backtest(events, default_ruleset(), [Outcome("won", 2000.0, lead_id="Lkey1")])
    keyed = result.get("Lkey1")
    assert keyed is not None and keyed.events == 2 and keyed.won and keyed.email is None
    assert len(result) == 2 and result.outcomes_applied == 1


def test_a_vocabulary_round_trips_and_a_history_without_one_has_an_empty_one(tmp_path: Path) -> None:
    from chalicelib.rules.model import Vocabulary

    assert read_vocabulary(tmp_path) == Vocabulary()  # (an older import, a hand-made history)
    vocabulary = Vocabulary.model_validate({
        "event_types": {"chat_message": "a chat with an advisor: 'quoted', #hashed"},
        "attributes": {"custom.occupation": {"type": "enum", "values": ["Student", "Working Professional"]},
                       "custom.time_on_site": {"type": "number", "unit": "seconds", "description": "on the website"}},
    })
    path = write_vocabulary(tmp_path, vocabulary, "rule set 'x'")
    assert path.name == VOCABULARY_FILE and path.read_text().startswith("# The event types and custom attributes")
    assert read_vocabulary(tmp_path) == vocabulary
    write_vocabulary(tmp_path, Vocabulary(), "rule set 'y'")  # imported again under a rule set declaring nothing
    assert read_vocabulary(tmp_path) == Vocabulary()


def test_a_broken_vocabulary_is_refused_naming_the_file_the_key_and_the_line(tmp_path: Path) -> None:
    (tmp_path / VOCABULARY_FILE).write_text("attributes:\n  custom.x: {type: numbr}\n")
    with pytest.raises(ValueError, match=r"vocabulary.yaml: attributes.custom.x.type: .*'number'.*\(line 2\)"):
        read_vocabulary(tmp_path)
