"""``baton import``: mappings validated like rule sets, vendor exports on their recorded headers, a
tricky CSV, typed attributes, events from counts / amounts / values, outcomes, skipped rows."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton import cli
from baton.backtest.io import read_events, read_vocabulary
from baton.importer import ImportRefused, ImportSummary, import_file, load_mapping, parse_mapping_text
from chalicelib.errors import ValidationFailed
from chalicelib.rules import RuleSet, default_ruleset, parse_ruleset
from chalicelib.state import lead_id_for, lead_id_for_key

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "tests" / "payloads" / "crm"
MAPPINGS = REPO / "docs" / "mappings"
DAY = 86400.0


def _declaring() -> RuleSet:
    """The shipped rule set, declaring the event types the tricky export makes."""
    body = default_ruleset().model_dump(mode="json", by_alias=True, exclude_none=True)
    body["event_types"] = {"chat_message": "a chat with an advisor", "site_visit_time": "time on the website"}
    return parse_ruleset(body)


RULES = _declaring()


def table(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def run(tmp_path: Path, text: str, mapping: str, name: str = "export.csv", strict: bool = False,
        encoding: str = "utf-8") -> tuple[ImportSummary, Path]:
    source = tmp_path / name
    source.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    parsed, lines = parse_mapping_text(mapping)
    out = tmp_path / "out"
    return import_file(source, parsed, out, lines=lines, strict=strict, ruleset=RULES), out


def vendor_export(tmp_path: Path, recorded_header: str, rows: list[str], mapping_file: str) -> ImportSummary:
    """Rows under a recorded vendor header row, imported with the example mapping into tmp_path/out."""
    source = tmp_path / "export.csv"
    source.write_text((RECORDED / recorded_header).read_text().strip() + "\n" + "\n".join(rows) + "\n")
    mapping, lines = load_mapping(MAPPINGS / mapping_file)
    return import_file(source, mapping, tmp_path / "out", lines=lines)


# -- vendor exports on their recorded header rows ------------------------------------------------------


def test_hubspot_contacts_export(tmp_path: Path) -> None:
    rows = [
        "101,2024-03-01T09:30:00.000Z,Ana@Acme.io,Ana,Lopez,+1 415 555 0101,Acme,acme.io,customer",
        "102,2024-03-02T10:00:00.000Z,,Bo,Smith,,Initech,,marketingqualifiedlead",
        "103,2024-03-03T11:00:00.000Z,cy@globex.com,Cy,,,Globex,,opportunity",
    ]
    summary = vendor_export(tmp_path, "hubspot_contacts_export_header.csv", rows, "hubspot-contacts.yaml")
    assert (summary.rows, summary.leads, summary.with_email, summary.skipped_rows) == (3, 3, 2, 0)
    assert summary.outcomes == {"won": 1, "opportunity": 1} and summary.no_outcome == 1
    assert summary.unmapped_columns == []
    leads = {row["lead_key"]: row for row in table(tmp_path / "out" / "leads.parquet")}
    assert leads["101"]["email"] == "ana@acme.io" and leads["101"]["lead_id"] == lead_id_for("ana@acme.io")
    assert leads["102"]["email"] is None and leads["102"]["lead_id"] == lead_id_for_key("hubspot", "102")
    assert (leads["101"]["first_name"], leads["101"]["company"], leads["101"]["website"]) == ("Ana", "Acme", "acme.io")
    outcomes = {row["lead_id"]: row for row in table(tmp_path / "out" / "outcomes.parquet")}
    won = outcomes[lead_id_for("ana@acme.io")]
    assert won["outcome"] == "won"
    assert won["occurred_at"].timestamp() == pytest.approx(leads["101"]["created_at"].timestamp() + 30 * DAY)


def test_salesforce_lead_export(tmp_path: Path) -> None:
    rows = [
        "00Q5e00000AbCdE,2024-01-15T10:00:00.000Z,Ana,Lopez,ana@acme.io,VP Sales,Acme,Software,\"1,200,000\",250,US,Web,"
        "Closed - Converted,true,2024-01-15,2024-01-20,false",
        "00Q5e00000AbCdF,2024-01-16T10:00:00.000Z,Bo,Smith,bo@initech.com,Analyst,Initech,Finance,,50-200,DE,"
        "Partner Referral,Working - Contacted,false,,,true",
        "00Q5e00000AbCdG,2024-01-17T10:00:00.000Z,Cy,Ng,,Owner,Globex,,,1000+,FR,Web,Open - Not Contacted,false,,,false",
    ]
    summary = vendor_export(tmp_path, "salesforce_lead_report_header.csv", rows, "salesforce-leads.yaml")
    assert (summary.leads, summary.skipped_rows) == (3, 0)
    assert summary.outcomes == {"opportunity": 1, "accepted": 1}
    assert summary.events == {"unsubscribe": 1}
    assert set(summary.unmapped_columns) == {"IsConverted", "LastActivityDate"}
    leads = {row["lead_key"]: row for row in table(tmp_path / "out" / "leads.parquet")}
    ana = leads["00Q5e00000AbCdE"]
    assert (ana["annual_revenue"], ana["company_size"], ana["job_title"]) == (1_200_000.0, 250.0, "VP Sales")
    assert leads["00Q5e00000AbCdF"]["company_size"] == 50  # a range reads as its lower bound (the vocabulary's rule)
    assert leads["00Q5e00000AbCdG"]["company_size"] == 1000
    outcomes = {row["lead_id"]: row for row in table(tmp_path / "out" / "outcomes.parquet")}
    converted = outcomes[lead_id_for("ana@acme.io")]
    # converted on the day it was created (a date, no time): at creation, not the midnight before
    assert converted["occurred_at"] == ana["created_at"]


# -- a tricky CSV -----------------------------------------------------------------------------------------

TRICKY = (
    "\ufeffProspect ID;Lead Number;Lead Source;Visits;Time on site;Last Activity;Notes;Converted;\r\n"
    "a1;10;Google;3;120;Email Opened;\"two\r\nlines\";1;\r\n"
    "a2;11;Select;;NA;Olark Chat Conversation;\"semi;colon\";0;\r\n"
    "a3;12; Direct Traffic ;0;0;NA;;0;\r\n"
)
TRICKY_MAPPING = """\
lead_key: Prospect ID
created_at: {between: [2024-01-01, 2024-01-03], order_by: Lead Number}
null_values: [Select, NA]
attributes:
  lead_source: Lead Source
  custom.notes: Notes
events:
  - {type: page_view, count: Visits}
  - {type: site_visit_time, amount: Time on site, property: seconds, per: Visits}
  - column: Last Activity
    property: activity
    values: {Email Opened: email_open, Olark Chat Conversation: chat_message}
outcome:
  column: Converted
  values: {"1": won, "0": lost}
  offset_days: 21
"""


def test_tricky_csv(tmp_path: Path) -> None:
    """BOM, semicolons, CRLF, a trailing delimiter, a quoted newline and delimiter, null tokens."""
    summary, out = run(tmp_path, TRICKY, TRICKY_MAPPING)
    assert (summary.rows, summary.leads, summary.skipped_rows) == (3, 3, 0)
    leads = {row["lead_key"]: row for row in table(out / "leads.parquet")}
    assert set(leads) == {"a1", "a2", "a3"}  # the BOM is not part of the first column's name
    assert leads["a1"]["notes"] == "two\r\nlines" and leads["a2"]["notes"] == "semi;colon"
    assert leads["a2"]["lead_source"] is None  # "Select" is a null token
    assert leads["a3"]["lead_source"] == "Direct Traffic" and leads["a3"]["notes"] is None
    # created evenly over the 3 days in Lead Number order
    created = [leads[k]["created_at"].timestamp() for k in ("a1", "a2", "a3")]
    assert created[1] - created[0] == pytest.approx(DAY) and created[2] - created[1] == pytest.approx(DAY)
    assert summary.events == {"page_view": 3, "site_visit_time": 3, "email_open": 1, "chat_message": 1}
    assert summary.unmapped_columns == []  # the trailing empty column is not a column
    rows = table(out / "events.parquet")
    a1 = leads["a1"]["lead_id"]
    # a count is one row standing for its events, spread from created_at over the 14 days
    (views,) = [e for e in rows if e["type"] == "page_view"]
    assert (views["lead_id"], views["repeat"], views["repeat_every"]) == (a1, 3, pytest.approx(14 * DAY / 3))
    assert all(e["email"] is None for e in rows)  # no email invented
    assert {e["lead_id"] for e in rows} <= {row["lead_id"] for row in leads.values()}
    events = read_events(out / "events.parquet")  # as the backtest reads them: one per event
    assert len(events) == sum(summary.events.values()) == 8
    assert len({(e.event_id, e.type) for e in events}) == 8  # (ids are unique within a lead)
    page_views = sorted(e.ts - created[0] for e in events if e.type == "page_view")
    assert page_views == pytest.approx([0, 14 * DAY / 3, 28 * DAY / 3])
    times = [dict(e.properties) for e in events if e.type == "site_visit_time"]
    assert times == [{"seconds": 40.0}] * 3  # 120 s over the 3 visits
    opened = next(e for e in events if e.type == "email_open")
    assert dict(opened.properties) == {"activity": "Email Opened"}
    assert opened.ts == pytest.approx(created[0] + 14 * DAY)  # the last activity: at the end of the window
    assert leads["a1"]["lead_id"] == lead_id_for_key("import", "a1")


def test_an_import_leaves_the_process_as_it_found_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An import takes small pages from the C library's allocator and a short GIL switch interval
    (import_file, baton.importer.import_memory), and gives all three back, also when it fails."""
    import sys

    import pyarrow as pa

    from baton import importer

    def settings() -> tuple[str, bool, float]:
        huge = importer._numpy_huge_pages(True)
        importer._numpy_huge_pages(huge)
        return pa.default_memory_pool().backend_name, huge, sys.getswitchinterval()

    during: list[tuple[str, bool, float]] = []
    real = importer._import

    def spy(*args: Any, **kwargs: Any) -> ImportSummary:
        during.append(settings())
        return real(*args, **kwargs)

    monkeypatch.setattr(importer, "_import", spy)
    before = settings()
    run(tmp_path, TRICKY, TRICKY_MAPPING)
    with pytest.raises(ImportRefused, match="no such file"):
        import_file(tmp_path / "missing.csv", parse_mapping_text(TRICKY_MAPPING)[0], tmp_path / "out2")
    assert during == [("system", False, pytest.approx(0.0001))] * 2
    assert settings() == before != during[0]


@pytest.mark.parametrize("numbers", [(10, 11, 12, 13), (13, 12, 11, 10), (12, 10, 13, 10)],
                         ids=["ascending", "descending", "shuffled with a tie"])
def test_created_between_follows_order_by_in_any_file_order(tmp_path: Path, numbers: tuple[int, ...]) -> None:
    text = "Prospect ID,Lead Number\n" + "".join(f"k{i},{n}\n" for i, n in enumerate(numbers))
    mapping = "lead_key: Prospect ID\ncreated_at: {between: [2024-01-01, 2024-01-04], order_by: Lead Number}\n"
    _, out = run(tmp_path, text, mapping)
    created = {row["lead_key"]: row["created_at"] for row in table(out / "leads.parquet")}
    by_time = sorted(created, key=lambda key: (created[key], key))
    # lowest number first, one day apart; equal numbers keep file order
    assert by_time == [f"k{i}" for i, _ in sorted(enumerate(numbers), key=lambda pair: pair[1])]
    days = sorted(value.timestamp() for value in created.values())
    assert [b - a for a, b in pairwise(days)] == [DAY] * 3


def test_parquet_export(tmp_path: Path) -> None:
    import pyarrow as pa

    source = tmp_path / "export.parquet"
    pq.write_table(pa.table({"id": [1, 2], "created": ["2024-02-01T00:00:00Z", "2024-02-02T00:00:00Z"],
                             "size": [120.0, None], "won": [1.0, 0.0]}), source)
    mapping, lines = parse_mapping_text("""\
lead_key: id
created_at: created
attributes: {company_size: {column: size, type: number}}
outcome: {column: won, values: {"1": won, "0": lost}, offset_days: 7}
""")
    summary = import_file(source, mapping, tmp_path / "out", lines=lines)
    assert (summary.leads, summary.outcomes) == (2, {"won": 1, "lost": 1})
    assert [row["company_size"] for row in table(tmp_path / "out" / "leads.parquet")] == [120.0, None]


# -- rows that cannot be read ---------------------------------------------------------------------------

BAD_ROWS = "id,created,size,visits,won\n1,2024-01-01,10,2,yes\n2,2024-01-02,ten,1,no\n3,yesterday,5,1,no\n" \
           "4,2024-01-04,5,1,maybe\n5,2024-01-05,5,-1,no\n1,2024-01-06,5,1,no\n"
BAD_MAPPING = """\
lead_key: id
created_at: created
attributes: {company_size: {column: size, type: number}}
events: [{type: page_view, count: visits}]
outcome: {column: won, values: {"yes": won, "no": lost}, offset_days: 30}
"""


def test_rows_that_cannot_be_read_are_skipped_and_counted(tmp_path: Path) -> None:
    summary, out = run(tmp_path, BAD_ROWS, BAD_MAPPING)
    assert summary.rows == 6 and summary.leads == 1
    assert summary.skipped == {
        "not a whole number": 1, "created_at is not a time": 1, "unknown outcome value": 1,
        "negative number in an event column": 1, "duplicate lead (same key or email as an earlier row)": 1,
    }
    assert summary.examples["not a whole number"] == [{"row": 3, "column": "size", "value": "ten"}]
    assert summary.examples["unknown outcome value"] == [{"row": 5, "column": "won", "value": "maybe"}]
    text = summary.to_text()
    assert "skipped rows: 5" in text and "row 3, column 'size' = 'ten'" in text
    assert len(table(out / "leads.parquet")) == 1


def test_strict_refuses_at_the_first_bad_row(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match=r"row 3, column 'size': not a whole number \('ten'\)"):
        run(tmp_path, BAD_ROWS, BAD_MAPPING, strict=True)


def test_malformed_and_empty_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="malformed: row 3 has 5 fields, the header 3"):
        run(tmp_path, "id,created,won\n1,2024-01-01,1\n2,2024-01-01,1,x,y\n",
            "lead_key: id\ncreated_at: created\n")
    with pytest.raises(ImportRefused, match="empty"):
        run(tmp_path, "", "lead_key: id\ncreated_at: created\n")
    with pytest.raises(ImportRefused, match="not utf-8-sig text"):
        run(tmp_path, "id,created\n\xe9,2024-01-01\n", "lead_key: id\ncreated_at: created\n", encoding="latin-1")
    with pytest.raises(ImportRefused, match="not utf-8-sig text"):  # (a column read as a dictionary)
        run(tmp_path, "id,created,src\n1,2024-01-01,\xe9t\xe9\n", "lead_key: id\ncreated_at: created\n"
            "attributes:\n  lead_source: {column: src}\n", encoding="latin-1")


# -- the mapping, validated like a rule set ------------------------------------------------------------------


def errors_of(text: str) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as info:
        parse_mapping_text(text)
    return list(info.value.details["errors"])


def test_mapping_errors_name_the_key_and_line() -> None:
    errors = errors_of("""\
lead_key: id
created_at: created
attributes:
  custom.lead_orgin: Lead Origin
  job_titel: Title
events:
  - {type: Chat Message, count: chats}
outcome:
  column: Converted
  values: {"1": sold}
""")
    by_path = {e["path"]: e for e in errors}
    assert "attributes.custom.lead_orgin" not in by_path  # any custom name is allowed (no declarations yet)
    assert by_path["attributes.job_titel"]["line"] == 5
    assert "unknown attribute 'job_titel' (did you mean 'job_title'?)" in by_path["attributes.job_titel"]["message"]
    assert "event type 'Chat Message'" in by_path["events[0].type"]["message"]
    assert by_path["events[0].type"]["line"] == 7
    assert "'1' -> 'sold'" in by_path["outcome.values"]["message"] and by_path["outcome.values"]["line"] == 10
    (dateless,) = errors_of("lead_key: id\ncreated_at: created\noutcome: {column: won, values: {}}\n")
    assert dateless["path"] == "outcome" and "say when outcomes happened" in dateless["message"]


def test_known_attributes_take_the_vocabulary_type() -> None:
    (error,) = errors_of("lead_key: id\ncreated_at: c\nattributes:\n  company_size: {column: Employees, type: text}\n")
    assert error["path"] == "attributes.company_size" and error["line"] == 4
    assert "company_size is a whole number in Baton's attribute vocabulary" in error["message"]
    mapping, _ = parse_mapping_text("lead_key: id\ncreated_at: c\nattributes: {company_size: Employees}\n")
    assert mapping.attributes["company_size"].type is None  # read as the vocabulary says


def test_mapping_needs_a_key_and_a_creation_time() -> None:
    paths = {e["path"] for e in errors_of("email: Email\n")}
    assert {"lead_key", "created_at"} <= paths
    assert errors_of("lead_key: {row_number: false}\ncreated_at: {between: [2024-02-01, 2024-01-01]}\n")


def test_mapping_columns_must_exist_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as info:
        run(tmp_path, "Prospect ID,TotalVisits\n1,2\n", """\
lead_key: Prospect ID
created_at: {between: [2024-01-01, 2024-01-31]}
events:
  - {type: page_view, count: TotalVisit}
""")
    (error,) = info.value.details["errors"]
    assert error == {"path": "events[0].count", "message": "no column 'TotalVisit' in the file (closest: 'TotalVisits')",
                     "line": 4}


def test_undeclared_event_types_are_refused_saying_once_how_to_declare_them(tmp_path: Path) -> None:
    mapping = """\
lead_key: id
created_at: {between: [2024-01-01, 2024-01-31]}
events:
  - {type: chat_mesage, count: chats}
  - {column: Last, values: {SMS: sms_sent, Call: call, Open: email_open}}
"""
    with pytest.raises(ValidationFailed) as info:
        run(tmp_path, "id,chats,Last\n1,2,SMS\n", mapping)
    first, sms, call = info.value.details["errors"]
    assert first["path"] == "events[0].type" and first["line"] == 4
    assert "unknown event type 'chat_mesage' (did you mean 'chat_message'?)" in first["message"]
    assert "declare it under event_types in a rule set passed with --rules" in first["message"]
    assert (sms["path"], sms["message"]) == ("events[1].values.SMS", "unknown event type 'sms_sent': declare it too")
    assert call["message"] == "unknown event type 'call': declare it too", "Baton's own list is given once"
    assert not (tmp_path / "out").exists(), "nothing written"


def test_row_numbers_as_keys(tmp_path: Path) -> None:
    summary, out = run(tmp_path, "name,visits\nann,1\nbo,2\n",
                       "lead_key: {row_number: true}\ncreated_at: {between: [2024-01-01, 2024-01-01]}\n"
                       "events: [{type: page_view, count: visits}]\n")
    assert [row["lead_key"] for row in table(out / "leads.parquet")] == ["2", "3"]
    assert summary.unmapped_columns == ["name"]


# -- the command -------------------------------------------------------------------------------------------


def test_cli_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "export.csv").write_text(TRICKY, encoding="utf-8")
    (tmp_path / "mapping.yaml").write_text(TRICKY_MAPPING)
    (tmp_path / "rules.json").write_text(json.dumps(RULES.model_dump(mode="json", by_alias=True)))
    out = tmp_path / "history"
    assert cli.main(["import", str(tmp_path / "export.csv"), "--mapping", str(tmp_path / "mapping.yaml"),
                     "--out", str(out), "--rules", str(tmp_path / "rules.json")]) == 0
    printed = capsys.readouterr().out
    assert "3 rows read, 3 leads (0 with an email)" in printed and "outcomes: 3" in printed
    last = json.loads(printed.strip().splitlines()[-1])
    assert (last["leads"], last["events_total"], last["outcomes"]) == (3, 8, {"won": 1, "lost": 2})
    assert json.loads((out / "import-summary.json").read_text())["leads"] == 3
    (tmp_path / "bad.yaml").write_text("lead_key: id\n")
    assert cli.main(["import", str(tmp_path / "export.csv"), "--mapping", str(tmp_path / "bad.yaml"),
                     "--out", str(out)]) == 1
    assert "created_at" in capsys.readouterr().err


# -- imported history through the backtest -------------------------------------------------------------


def test_imported_history_backtests_by_lead_id(tmp_path: Path) -> None:
    """Leads known by a key alone are replayed under their derived id, their events and outcome theirs."""
    from baton.backtest import backtest
    from baton.backtest.io import read_history, read_lead_keys
    from chalicelib.rules import default_ruleset

    summary, out = run(tmp_path, TRICKY, TRICKY_MAPPING)
    events, outcomes = read_history(out)
    assert len(events) == 3 + sum(summary.events.values())  # an identify per lead, then the events
    for workers in (1, 2):
        result = backtest(events, default_ruleset(), outcomes, workers=workers)
        assert sorted(r.lead_id for r in result.leads) == sorted(lead_id_for_key("import", k) for k in ("a1", "a2", "a3"))
        assert (result.outcomes_applied, result.unmatched_outcomes, result.dropped) == (3, 0, 0)
        a1 = result.get(lead_id_for_key("import", "a1"))
        assert a1 is not None and a1.email is None and a1.won and a1.events == 1 + 3 + 3 + 1
        state = result.state(a1.lead_id)
        assert state is not None and state.attributes["lead_source"] == "Google"
        assert state.attributes["custom"] == {"notes": "two\r\nlines"}  # lead_key is not an attribute
    assert read_lead_keys(out) == {lead_id_for_key("import", k): k for k in ("a1", "a2", "a3")}


def test_gzipped_csv(tmp_path: Path) -> None:
    import gzip

    source = tmp_path / "export.csv.gz"
    with gzip.open(source, "wt", encoding="utf-8", newline="") as handle:
        handle.write(TRICKY)
    mapping, lines = parse_mapping_text(TRICKY_MAPPING)
    summary = import_file(source, mapping, tmp_path / "out", lines=lines, ruleset=RULES)
    assert (summary.leads, sum(summary.events.values()), summary.skipped_rows) == (3, 8, 0)


def test_imported_amounts_score_through_an_amount_rule(tmp_path: Path) -> None:
    """An amount column's events carry the amount as the property an amount rule reads."""
    from baton.backtest import backtest
    from baton.backtest.io import read_history
    from chalicelib.engine import engagement_at
    from chalicelib.rules import default_ruleset, parse_ruleset
    from chalicelib.rules.compile import compile_ruleset

    mapping = TRICKY_MAPPING.replace("type: site_visit_time", "type: webinar_attended")
    summary, out = run(tmp_path, TRICKY, mapping)
    assert summary.events["webinar_attended"] == 3  # a1: 120 seconds over 3 visits
    events, outcomes = read_history(out)
    assert [e.properties for e in events if e.type == "webinar_attended"] == [{"seconds": 40.0}] * 3
    body = default_ruleset().model_dump(mode="json", by_alias=True, exclude_none=True)
    body["engagement"] = [{"id": "time-on-site", "label": "Time on site", "events": ["webinar_attended"],
                           "points": 1, "amount": {"property": "seconds", "per": 30},
                           "caps": {"max_points": 3, "window_days": 30}}]
    ruleset = parse_ruleset({**body, "decay": {"half_life_days": None}})
    result = backtest(events, ruleset, outcomes)
    state = result.state(lead_id_for_key("import", "a1"))
    assert state is not None
    assert engagement_at(state, compile_ruleset(ruleset), state.last_seen) == pytest.approx(3)  # 4, capped at 3


# -- columns that repeat their values ---------------------------------------------------------------------


def _copies(text: str, copies: int) -> str:
    """The export's rows ``copies`` times, each copy's keys made its own (``c<k>-<key>``)."""
    header, _, body = text.partition("\n")
    rows = re.split(r"(?<=\n)(?=[a-z]?\d+[;,])", body)
    return header + "\n" + "".join(f"c{k}-{row}" for k in range(copies) for row in rows)


def _per_lead(out: Path, copy: int | None) -> dict[str, dict[str, Any]]:
    """Leads by their export key (the copy's prefix taken off), without what a copy changes."""
    prefix = f"c{copy}-" if copy is not None else ""
    return {row["lead_key"].removeprefix(prefix): {k: v for k, v in row.items()
                                                   if k not in ("lead_id", "lead_key", "created_at")}
            for row in table(out / "leads.parquet") if row["lead_key"].startswith(prefix)}


@pytest.mark.parametrize(("text", "mapping"), [(TRICKY, TRICKY_MAPPING), (BAD_ROWS, BAD_MAPPING)])
def test_repeated_values_are_read_once_each_with_the_same_result(tmp_path: Path, text: str, mapping: str) -> None:
    """In a long export a column that repeats its values is cleaned and read once per distinct value
    (null tokens, trimming, numbers, value maps, outcomes, bad cells): the same leads, events,
    outcomes and skipped rows as the short export read cell by cell."""
    (tmp_path / "once").mkdir()
    (tmp_path / "many").mkdir()
    once, once_out = run(tmp_path / "once", text, mapping)
    many, many_out = run(tmp_path / "many", _copies(text, 200), mapping)
    assert (many.rows, many.leads) == (200 * once.rows, 200 * once.leads)
    assert many.events == {kind: 200 * n for kind, n in once.events.items()}
    assert many.outcomes == {kind: 200 * n for kind, n in once.outcomes.items()}
    assert many.skipped == {reason: 200 * n for reason, n in once.skipped.items()}
    assert {reason: found[0] for reason, found in many.examples.items()} == \
        {reason: found[0] for reason, found in once.examples.items()}  # (the first copy's rows come first)
    for name in ("leads.parquet", "outcomes.parquet", "events.parquet"):  # (no dictionaries where text was)
        assert pq.read_schema(many_out / name) == pq.read_schema(once_out / name)
    expected = _per_lead(once_out, None)
    assert _per_lead(many_out, 0) == expected and _per_lead(many_out, 199) == expected
    properties = sorted(e["properties"] or "" for e in table(once_out / "events.parquet"))
    assert sorted(e["properties"] or "" for e in table(many_out / "events.parquet")) == sorted(properties * 200)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
                                  min_size=1, max_size=12),
                          st.none() | st.from_regex(r"[a-zA-Z0-9.]{1,8}@[a-z]{1,6}\.[a-z]{2,3}", fullmatch=True)),
                min_size=1, max_size=40))
def test_lead_ids_are_the_live_ones(tmp_path: Path, rows: list[tuple[str, str | None]]) -> None:
    """An imported lead's id is the one the live paths derive: from its email when it has one
    (``lead_id_for``), else from the export's key (``lead_id_for_key``); the first row of an id wins."""
    import csv
    import io
    import tempfile

    handle = io.StringIO()
    writer = csv.writer(handle)
    writer.writerow(["key", "email"])
    writer.writerows([key, email or ""] for key, email in rows)
    summary, out = run(Path(tempfile.mkdtemp(dir=tmp_path)), handle.getvalue(),
                       "lead_key: key\nemail: email\ncreated_at: {between: [2024-01-01, 2024-01-02]}\nsource: crm\n")
    expected: dict[str, str] = {}
    for key, email in rows:
        lead_id = lead_id_for(email.lower()) if email else lead_id_for_key("crm", key)
        expected.setdefault(lead_id, key)
    assert {row["lead_id"]: row["lead_key"] for row in table(out / "leads.parquet")} == expected
    assert summary.leads == len(expected)


def test_the_history_keeps_the_declarations_of_what_it_holds(tmp_path: Path) -> None:
    # What the analyst declared (descriptions, enum values, units) goes with the history, so that
    # `baton rules suggest` declares it as they did; what the mapping never makes or fills stays out.
    body = default_ruleset().model_dump(mode="json", by_alias=True, exclude_none=True)
    body["event_types"] = {"chat_message": "a chat with an advisor", "sms_sent": "an SMS (not in this export)"}
    body["attributes"] |= {
        "custom.occupation": {"type": "enum", "values": ["Student", "Working Professional"]},
        "custom.time_on_site": {"type": "number", "unit": "seconds", "description": "time on the website"},
        "custom.unused": {"type": "text"},
    }
    declaring = parse_ruleset(body)
    source = tmp_path / "export.csv"
    source.write_text("id,Job,Seconds,Last\n1,student,600,Chat\n2,,30,Open\n")
    mapping, lines = parse_mapping_text("""\
lead_key: id
created_at: {between: [2024-01-01, 2024-01-31]}
attributes:
  custom.occupation: {column: Job}
  custom.time_on_site: {column: Seconds}
events:
  - {column: Last, values: {Chat: chat_message, Open: email_open}}
""")
    summary = import_file(source, mapping, tmp_path / "out", lines=lines, ruleset=declaring)
    vocabulary = read_vocabulary(tmp_path / "out")
    assert summary.written["vocabulary"] == str(tmp_path / "out" / "vocabulary.yaml")
    assert vocabulary.model_dump(exclude_defaults=True) == {
        "event_types": {"chat_message": {"description": "a chat with an advisor"}},
        "attributes": {"custom.occupation": {"type": "enum", "values": ["Student", "Working Professional"]},
                       "custom.time_on_site": {"type": "number", "unit": "seconds", "description": "time on the website"}},
    }
    import_file(source, mapping, tmp_path / "out", lines=lines, ruleset=RULES)  # again, under another rule set
    assert read_vocabulary(tmp_path / "out").model_dump(exclude_defaults=True) == {
        "event_types": {"chat_message": {"description": "a chat with an advisor"}}}
