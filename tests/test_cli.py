"""The ``baton`` command line: rules validate / doc / schema."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from baton import cli
from baton.sla_doc import describe, render_sla
from chalicelib.rules.loader import DEFAULT_RULESET_PATH, default_ruleset, json_schema

REPO = Path(__file__).resolve().parents[1]
DEFAULT = str(DEFAULT_RULESET_PATH)

BAD = """\
name: broken
grades:
  - {grade: A, min_fit: 50}
  - {grade: D}
engagement:
  - id: pricing
    label: Pricing page
    events: [page_view]
    when: {field: event.path, op: starts_with, value: /pricing}
    points: 10
    caps: {max_count: 3, window_days: 0}
stages:
  mql:
    when: {field: engagment, op: gte, value: 30}
  sql:
    when: {field: engagement, op: gte, value: 60}
"""


# --- validate -------------------------------------------------------------------------------------


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "validate", DEFAULT]) == 0
    out = capsys.readouterr().out
    ruleset = default_ruleset()
    assert out.strip() == f"ok: default, {len(ruleset.fit)} fit, {len(ruleset.engagement)} engagement rules"


def test_validate_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "rules.json"
    target.write_text(json.dumps(default_ruleset().model_dump(mode="json", by_alias=True)))
    assert cli.main(["rules", "validate", str(target)]) == 0
    assert capsys.readouterr().out.startswith("ok: default, ")


def test_validate_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bad.yaml"
    target.write_text(BAD)
    assert cli.main(["rules", "validate", str(target)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "2 errors" in captured.err
    assert "engagement[0].caps.window_days (line 11): Input should be greater than 0" in captured.err
    assert "stages.mql.when.field (line 14): unknown field 'engagment'" in captured.err


def test_validate_not_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bad.yaml"
    target.write_text("name: [unclosed\n")
    assert cli.main(["rules", "validate", str(target)]) == 1
    assert "not valid YAML" in capsys.readouterr().err


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "validate", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_validate_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(DEFAULT_RULESET_PATH.read_text()))
    assert cli.main(["rules", "validate", "-"]) == 0
    assert capsys.readouterr().out.startswith("ok: default")


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert cli.main(["rules"]) == 2
    assert "validate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["rules", "frobnicate"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["rules", "validate"])  # FILE is required


# --- doc ------------------------------------------------------------------------------------------


def test_doc_has_the_key_sections(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "doc", DEFAULT]) == 0
    doc = capsys.readouterr().out
    for heading in [
        "# Lead handoff SLA: default",
        "## What makes an MQL",
        "## What makes an SQL",
        "## Fast track",
        "## Disqualifiers",
        "## Fit: who they are",
        "### Grades",
        "## Engagement: what they do",
        "## Decay",
        "## Routing and follow-up",
        "## Sales feedback and recycling",
    ]:
        assert f"\n{heading}\n" in f"\n{doc}", heading
    # Conditions in plain English, not YAML.
    assert "grade is A or B and engagement ≥ 30" in doc
    assert "they raise their hand and grade is A, B or C" in doc
    assert "grade is A and engagement ≥ 60" in doc
    assert "op:" not in doc and "field:" not in doc
    # Disqualifiers.
    for reason in ["Works for a competitor", "Disposable or temporary email address", "Student or academic-only interest",
                   "Job seeker, not a buyer"]:
        assert reason in doc
    assert "disposable email domain (built-in list)" in doc
    # Tables: fit points, engagement with caps / frequency / half-life in words, grades, routing.
    assert "| Executive or VP title | job title contains the word “chief”" in doc
    assert "| +30 |" in doc and "| −10 |" in doc
    assert "at most 3 times per 7 days" in doc
    assert "at most 15 points per 7 days" in doc
    assert "at most 2 times ever" in doc
    assert "awarded each time 3 of these happen within 7 days" in doc
    assert "| 14 days |" in doc
    assert "| A | 60 or more |" in doc and "| D | everyone else |" in doc
    assert "half their value every 30 days" in doc
    assert "| enterprise | company size (employees) ≥ 1000 | #sales-enterprise | 4 hours | #sales-leadership |" in doc
    assert "| default | no route above applies | #sales | 24 hours | — |" in doc
    assert "within 24 hours" in doc
    assert "cooldown of 14 days" in doc


def test_doc_tables_are_well_formed() -> None:
    doc = render_sla(default_ruleset())
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            columns = line.count("|") - 1
            row = i + 1
            while row < len(lines) and lines[row].startswith("| "):
                # Escaped pipes (regexes such as "ac|edu") never add a column.
                assert lines[row].replace("\\|", "").count("|") - 1 == columns, lines[row]
                row += 1


def test_doc_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "sla.md"
    assert cli.main(["rules", "doc", DEFAULT, "-o", str(target), "--ruleset-version", "4"]) == 0
    assert capsys.readouterr().out == ""
    assert target.read_text().startswith("# Lead handoff SLA: default (rule set v4)\n")


def test_doc_of_a_bad_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bad.yaml"
    target.write_text(BAD)
    assert cli.main(["rules", "doc", str(target)]) == 1
    assert capsys.readouterr().out == ""


def test_describe_conditions() -> None:
    from pydantic import TypeAdapter

    from chalicelib.rules.model import Condition

    def text(cond: object) -> str:
        return describe(TypeAdapter(Condition).validate_python(cond))

    assert text({"all": [{"field": "grade", "op": "in", "value": ["A", "B"]},
                         {"field": "engagement", "op": "gte", "value": 30}]}) == "grade is A or B and engagement ≥ 30"
    assert text({"not": {"field": "email_domain", "op": "in_list", "value": "free_mail"}}) == (
        "email domain is not in the “free_mail” list"
    )
    assert text({"not": {"field": "company_size", "op": "lt", "value": 10}}) == "not (company size (employees) < 10)"
    assert text({"field": "custom.plan", "op": "exists", "value": False}) == "custom field “plan” is unknown"
    assert text({"field": "event.properties.plan", "op": "ne", "value": "free"}) == "event property “plan” is not “free”"
    assert text({"any": [{"field": "stage", "op": "eq", "value": "mql"},
                         {"all": [{"field": "fit", "op": "gt", "value": 1}, {"field": "fit", "op": "lte", "value": 9}]}]}) == (
        "stage is MQL or (fit score > 1 and fit score ≤ 9)"
    )
    assert text({"field": "job_title", "op": "matches", "value": "^CEO$"}) == "job title matches the pattern `^CEO$`"
    assert describe(None) == "always"


# --- schema ---------------------------------------------------------------------------------------


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json_schema()
    assert schema["title"] == "Baton rule set"


def test_schema_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert cli.main(["rules", "schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text())["$schema"].startswith("https://json-schema.org/")


def test_committed_schema_is_up_to_date() -> None:
    committed = REPO / "docs" / "ruleset.schema.json"
    assert committed.exists(), "run: baton rules schema -o docs/ruleset.schema.json"
    assert json.loads(committed.read_text()) == json_schema(), "regenerate: baton rules schema -o docs/ruleset.schema.json"


# --- extension point ------------------------------------------------------------------------------


def test_commands_are_registered_in_one_table(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def publish(args: argparse.Namespace) -> int:
        seen.append(args.file)
        return 0

    def export(args: argparse.Namespace) -> int:
        seen.append("export")
        return 3

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file")

    table = [*cli.COMMANDS, cli.Command(("rules", "stage"), "stage", publish, configure),
             cli.Command(("snapshot",), "snapshot", export)]
    parser = cli.build_parser(table)
    args = parser.parse_args(["rules", "stage", "x.yaml"])
    assert args.handler(args) == 0
    args = parser.parse_args(["snapshot"])
    assert args.handler(args) == 3
    assert seen == ["x.yaml", "export"]
    args = parser.parse_args(["rules", "validate", DEFAULT])  # the existing commands are unaffected
    assert args.handler is cli.rules_validate


def test_export_pulls_live_events_and_outcomes_to_parquet(moto_aws: dict[str, str], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from baton.cli import main
    from chalicelib import bootstrap
    from chalicelib.events import Event

    bootstrap.use(None)
    c = bootstrap.container()
    result = c.leads.ingest([Event(f"x{i}", "page_view", 1_700_000_000.0 + i, "ex@acme.io", None, {"path": "/p"},
                                   {}, "api") for i in range(3)])
    c.leads.record_outcome(result["leads"][0]["lead_id"], "won")
    assert main(["export", "--out", str(tmp_path / "out")]) == 0
    assert pq.read_table(tmp_path / "out" / "events.parquet").num_rows == 3
    assert pq.read_table(tmp_path / "out" / "outcomes.parquet").num_rows == 1
    bootstrap.use(None)


# --- backtest HISTORY_DIR -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from baton.backtest.io import write_events, write_outcomes
    from baton.synth import generate

    folder = tmp_path_factory.mktemp("history")
    generated = generate(400, seed=5)
    write_events(folder / "events.parquet", generated.events)
    write_outcomes(folder / "outcomes.csv", generated.outcomes)
    return folder


def test_backtest_prints_a_summary_then_one_json_line(history: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    scores = tmp_path / "scores.csv"
    assert cli.main(["backtest", str(history), "--capacity", "5", "--holdout-fraction", "0.3", "--workers", "1",
                     "--scores", str(scores)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    text = "\n".join(out[:-1])
    assert "ROC AUC" in text and "at capacity (5 a week" in text and "holdout, the newest 30% of leads" in text
    line = json.loads(out[-1])
    assert {"leads", "sql_share", "precision", "recall", "auc", "pr_auc", "holdout_auc", "seconds",
            "warnings"} <= set(line)
    assert line["leads"] == 400 and 0 <= line["auc"] <= 1 and line["holdout_leads"] == 120
    import csv

    rows = list(csv.DictReader(scores.open()))
    assert len(rows) == 400 and set(rows[0]) == {"lead_id", "lead_key", "score", "fit", "engagement", "stage",
                                                 "outcome", "won"}


def test_backtest_refuses_what_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["backtest", str(tmp_path)]) == 1
    assert "no events" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    assert cli.main(["backtest", str(tmp_path), "--rules", str(bad)]) == 1
    with pytest.raises(SystemExit):
        cli.main(["backtest", str(tmp_path), "--holdout-after", "2026-01-01", "--holdout-fraction", "0.2"])
