"""The ``baton`` command line: rule-set tooling for sales ops and analysts.

Each subcommand is one function taking the parsed arguments and returning an exit code, registered
with its arguments in ``COMMANDS``. To add one (``baton rules publish FILE``, ``baton export``),
write the function and its ``configure`` helper and append a ``Command`` to the table; the parser
is built from the table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from chalicelib.errors import ValidationFailed
from chalicelib.rules.model import RuleSet

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]

EXIT_OK = 0
EXIT_INVALID = 1  # the input was read but is wrong (validation errors, unreadable file)
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_SETUP = 3  # a setting is missing or wrong (no AWS region, a table that does not exist...)

SCHEMA_PATH = Path("docs") / "ruleset.schema.json"


@dataclass(frozen=True)
class Command:
    """One subcommand: ``path`` is the words typed after ``baton`` (e.g. ``("rules", "validate")``)."""

    path: tuple[str, ...]
    help: str
    run: Handler
    configure: Configure | None = None


# --- shared helpers -------------------------------------------------------------------------------


def _out(text: str, target: str | None, stdout: TextIO) -> None:
    """Write to ``target`` (a file path, '-' or None for stdout)."""
    if target in (None, "-"):
        stdout.write(text)
        return
    path = Path(target)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _load(file: str) -> RuleSet:
    """Read and validate a rule set; raises ValidationFailed (or OSError for unreadable files)."""
    from chalicelib.rules.loader import parse_ruleset_text

    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    return parse_ruleset_text(text)


def _report_invalid(file: str, exc: ValidationFailed) -> None:
    errors = exc.details.get("errors")
    if not errors:  # a document-level problem (not YAML, not a mapping): the message says it all
        print(f"{file}: {exc.message}", file=sys.stderr)
        return
    print(f"{file}: {len(errors)} error{'s' if len(errors) != 1 else ''}", file=sys.stderr)
    for error in errors:
        where = f" (line {error['line']})" if "line" in error else ""
        print(f"  {error['path']}{where}: {error['message']}", file=sys.stderr)


def _load_or_report(file: str) -> RuleSet | None:
    try:
        return _load(file)
    except ValidationFailed as exc:
        _report_invalid(file, exc)
    except OSError as exc:
        print(f"{file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
    except UnicodeDecodeError:
        print(f"{file}: cannot read: not UTF-8 text", file=sys.stderr)
    return None


def _file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="rule set, YAML or JSON ('-' for stdin)")


def _output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")


# --- baton rules validate FILE --------------------------------------------------------------------


def rules_validate(args: argparse.Namespace) -> int:
    from chalicelib.rules.compile import compile_ruleset

    ruleset = _load_or_report(args.file)
    if ruleset is None:
        return EXIT_INVALID
    compile_ruleset(ruleset)  # what publishing does next: regexes, lists, closures
    print(f"ok: {ruleset.name}, {len(ruleset.fit)} fit, {len(ruleset.engagement)} engagement rules")
    return EXIT_OK


# --- baton rules doc FILE [-o OUT] ----------------------------------------------------------------


def _configure_doc(parser: argparse.ArgumentParser) -> None:
    _file_argument(parser)
    _output_argument(parser)
    parser.add_argument("--ruleset-version", type=int, metavar="N",
                        help="rule-set version to show in the title")


def rules_doc(args: argparse.Namespace) -> int:
    from baton.sla_doc import render_sla

    ruleset = _load_or_report(args.file)
    if ruleset is None:
        return EXIT_INVALID
    _out(render_sla(ruleset, version=args.ruleset_version), args.output, sys.stdout)
    if args.output not in (None, "-"):
        print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


# --- baton rules schema [-o OUT] ------------------------------------------------------------------


def schema_text() -> str:
    from chalicelib.rules.loader import json_schema

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def rules_schema(args: argparse.Namespace) -> int:
    _out(schema_text(), args.output, sys.stdout)
    if args.output not in (None, "-"):
        print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def _api_arguments(parser: argparse.ArgumentParser) -> None:
    """``--api`` and ``--token``, resolved when the command runs (baton.environment)."""
    parser.add_argument("--api", help="the Baton API (default: $BATON_API_URL, else the running local stack's "
                                      "URL from .baton/stack.json, else http://127.0.0.1:8000)")
    parser.add_argument("--token", help="admin bearer token (default: $BATON_ADMIN_TOKEN or the local stack's)")


def _api(args: argparse.Namespace) -> tuple[str, str]:
    from baton.environment import admin_token, api_url

    return args.api or api_url(), args.token or admin_token()


def _configure_publish(parser: argparse.ArgumentParser) -> None:
    _file_argument(parser)
    _api_arguments(parser)
    parser.add_argument("--yes", action="store_true",
                        help="really publish (without it: a dry run showing what changes from the active version)")


def rules_publish(args: argparse.Namespace) -> int:
    """Validate locally, then create a version and publish it through the API (which re-scores).

    Without ``--yes``: a dry run that prints what changes from the active version, rule by rule.
    """
    from baton.backtest.publish import PublishError, publish_ruleset

    ruleset = _load_or_report(args.file)
    if ruleset is None:
        return EXIT_INVALID
    api, token = _api(args)
    try:
        if not args.yes:
            return _publish_dry_run(ruleset, args.file, api, token)
        result = publish_ruleset(ruleset, confirm=True, api_url=api, admin_token=token)
    except PublishError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"published {ruleset.name} as version {result['version']} (previous: {result['previous']})")
    return EXIT_OK


def _publish_dry_run(ruleset: RuleSet, file: str, api: str, token: str) -> int:
    from baton.backtest.publish import PublishError, fetch_active
    from baton.ruleset_diff import diff_rulesets, render_diff

    try:
        version, active = fetch_active(api, token)
    except PublishError as exc:
        if exc.status != 404:
            raise
        print(f"dry run: no rule set is active on {api}; would publish {ruleset.name!r} as the first one; "
              "add --yes to publish")
        return EXIT_OK
    print(render_diff(diff_rulesets(active, ruleset), f"v{version} (active)", file), end="")
    print(f"dry run: would create a new version of {ruleset.name!r} on {api} and make it active "
          "(every lead is re-scored); add --yes to publish")
    return EXIT_OK


# --- baton rules diff A B -------------------------------------------------------------------------

_VERSION = re.compile(r"v?([1-9][0-9]*)|active")


def _configure_diff(parser: argparse.ArgumentParser) -> None:
    for name in ("before", "after"):
        parser.add_argument(name, metavar=name.upper(),
                            help="a rule-set file ('-' for stdin), or a version on the API: 3, v3 or 'active'")
    _api_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the changes as JSON, one object each")


def _side(spec: str, args: argparse.Namespace) -> tuple[str, RuleSet] | None:
    """A file when one exists by that name, else a version fetched from the API."""
    from baton.backtest.publish import PublishError, fetch_active, fetch_version

    version = _VERSION.fullmatch(spec)
    if version is None or spec == "-" or Path(spec).exists():
        loaded = _load_or_report(spec)
        return None if loaded is None else (spec, loaded)
    api, token = _api(args)
    try:
        if spec == "active":
            number, ruleset = fetch_active(api, token)
            return f"v{number} (active)", ruleset
        return f"v{version.group(1)}", fetch_version(api, token, int(version.group(1)))
    except PublishError as exc:
        print(f"{spec}: {exc}", file=sys.stderr)
        return None


def rules_diff(args: argparse.Namespace) -> int:
    from baton.ruleset_diff import diff_rulesets, render_diff

    before, after = _side(args.before, args), _side(args.after, args)
    if before is None or after is None:
        return EXIT_INVALID
    changes = diff_rulesets(before[1], after[1])
    if args.json:
        sys.stdout.write("".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in changes))
    else:
        sys.stdout.write(render_diff(changes, before[0], after[0]))
    return EXIT_OK


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="baton-export", help="directory for events.parquet and outcomes.parquet")


def export(args: argparse.Namespace) -> int:
    """Pull live events and outcomes from the configured DynamoDB tables into Parquet."""
    from baton.backtest.export import export_command

    return export_command(args)


# --- baton import FILE --mapping MAPPING.yaml --out DIR ---------------------------------------------


def _configure_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a CRM or marketing export: CSV (any delimiter) or Parquet")
    parser.add_argument("--mapping", required=True, metavar="MAPPING.yaml",
                        help="what the columns mean (docs/importing.md; examples in docs/mappings/)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for leads, events and outcomes")
    parser.add_argument("--strict", action="store_true", help="refuse the file at the first row that cannot be read")
    parser.add_argument("--rules", metavar="FILE",
                        help="the rule set whose event types and attribute types the import uses (default: the shipped one)")


def import_export(args: argparse.Namespace) -> int:
    """Validate the mapping, import the file, print the summary (and its JSON as the last line)."""
    from baton.importer import ImportRefused, import_file, parse_mapping_text

    try:
        mapping, lines = parse_mapping_text(Path(args.mapping).read_text(encoding="utf-8"))
    except ValidationFailed as exc:
        _report_invalid(args.mapping, exc)
        return EXIT_INVALID
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{args.mapping}: cannot read: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return EXIT_INVALID
    ruleset = _load_or_report(args.rules) if args.rules else None
    if args.rules and ruleset is None:
        return EXIT_INVALID
    try:
        summary = import_file(args.file, mapping, args.out, lines=lines, strict=args.strict, ruleset=ruleset)
    except ValidationFailed as exc:  # the mapping names columns the file does not have
        _report_invalid(args.mapping, exc)
        return EXIT_INVALID
    except ImportRefused as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    print(summary.to_text())
    print(json.dumps(summary.to_dict(), default=str))
    return EXIT_OK


# --- baton backtest HISTORY_DIR ---------------------------------------------------------------------


def _configure_backtest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("history", metavar="HISTORY_DIR",
                        help="events, outcomes and leads files (baton export, baton import; docs/backtest-data.md)")
    parser.add_argument("--rules", metavar="FILE", help="the rule set to replay under (default: the shipped one)")
    parser.add_argument("--capacity", type=float, metavar="N", help="SQLs a week sales can work")
    holdout = parser.add_mutually_exclusive_group()
    holdout.add_argument("--holdout-after", metavar="DATE", help="also report on leads created after DATE")
    holdout.add_argument("--holdout-fraction", type=float, metavar="F", help="also report on the newest F of leads")
    parser.add_argument("--handoff-share", type=float, default=0.1, metavar="F",
                        help="precision and recall when this share of leads goes to sales (default 0.1)")
    parser.add_argument("--scores", metavar="FILE.csv", help="write one row per lead: ids, score, stage, outcome")
    parser.add_argument("--workers", type=int, default=2, help="processes replaying leads (default 2)")


def backtest_history(args: argparse.Namespace) -> int:
    """Replay a history under a rule set; print the summary and, last, one JSON line."""
    from baton.backtest.report import format_report, headline, run_report, write_scores
    from chalicelib.rules.loader import default_ruleset

    ruleset = _load_or_report(args.rules) if args.rules else default_ruleset()
    if ruleset is None:
        return EXIT_INVALID
    if args.holdout_fraction is not None and not 0 < args.holdout_fraction < 1:
        print("--holdout-fraction must be between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = run_report(args.history, ruleset, ruleset_label=args.rules or "the shipped default",
                            capacity=args.capacity, holdout_after=args.holdout_after,
                            holdout_fraction=args.holdout_fraction, handoff_share=args.handoff_share,
                            workers=args.workers)
    except (OSError, ValueError) as exc:
        print(f"{args.history}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(format_report(report, args.capacity))
    if args.scores:
        print(f"wrote {write_scores(report, args.scores):,} rows to {args.scores}")
    print(json.dumps(headline(report)))
    return EXIT_OK


# --- baton rules suggest HISTORY_DIR --out suggested.yaml -------------------------------------------


def _configure_suggest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("history", metavar="HISTORY_DIR",
                        help="events, outcomes and leads files (baton export, baton import; docs/backtest-data.md)")
    parser.add_argument("--out", required=True, metavar="FILE.yaml", help="where to write the suggested rule set")
    holdout = parser.add_mutually_exclusive_group()
    holdout.add_argument("--holdout-after", metavar="DATE", help="learn from leads created up to DATE, measure on the rest")
    holdout.add_argument("--holdout-fraction", type=float, metavar="F",
                         help="measure on the newest F of leads, learn from the others (default 0.3)")
    parser.add_argument("--capacity", type=float, metavar="N", help="SQLs a week sales can work (sets the thresholds)")
    parser.add_argument("--from", dest="current", metavar="CURRENT.yaml",
                        help="keep this rule set's structure; suggest its points and thresholds")
    parser.add_argument("--max-rules", type=int, default=30, metavar="N", help="at most this many rules (default 30)")
    parser.add_argument("--leave-out", action="append", default=[], metavar="FIELD",
                        help="a field not to learn from (e.g. one sales fills in after contact); repeatable")
    parser.add_argument("--workers", type=int, default=2, help="processes replaying leads (default 2)")


def rules_suggest(args: argparse.Namespace) -> int:
    """Learn points from outcomes, write them as a rule set, measure it on the holdout; never publishes."""
    from baton.backtest.io import parse_time, read_history, read_vocabulary
    from baton.suggest import format_suggestion, suggest

    current = _load_or_report(args.current) if args.current else None
    if args.current and current is None:
        return EXIT_INVALID
    if args.holdout_fraction is not None and not 0 < args.holdout_fraction < 1:
        print("--holdout-fraction must be between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    if args.max_rules < 1:
        print("--max-rules must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        after = parse_time(args.holdout_after) if args.holdout_after is not None else None
        events, outcomes = read_history(args.history)
        result = suggest(events, outcomes, holdout_after=after, holdout_after_text=args.holdout_after,
                         holdout_fraction=args.holdout_fraction, capacity=args.capacity, base=current,
                         max_rules=args.max_rules, leave_out=args.leave_out, name=Path(args.out).stem, history=args.history,
                         workers=args.workers, vocabulary=read_vocabulary(args.history))
    except (OSError, ValueError) as exc:
        print(f"{args.history}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    _out(result.yaml, args.out, sys.stdout)
    print(format_suggestion(result, args.out))
    print(json.dumps(result.headline()))
    return EXIT_OK


# --- baton handoff redrive ---------------------------------------------------------------------------


def _configure_redrive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="count the parked alerts, change nothing")


def handoff_redrive(args: argparse.Namespace) -> int:
    """Send the parked alerts again, each once, and clear their dead-letter pointers.

    Works on the stage's outbox table and dead-letter queue with your AWS credentials
    (``BATON_STAGE``, ``BATON_OUTBOX_TABLE``, ``BATON_DLQ_URL``), like ``baton export``.
    """
    import time

    from chalicelib.config import Settings
    from chalicelib.outbox.redrive import dead_letter_url, redrive
    from chalicelib.store.dynamodb import DynamoDBOutbox

    settings = Settings.from_env()
    outbox = DynamoDBOutbox(settings.outbox_table)
    if args.dry_run:
        parked = outbox.backlog().parked
        print(f"{parked} parked alert{'s' * (parked != 1)} in {settings.outbox_table}; "
              "run without --dry-run to send them again")
        print(json.dumps({"parked": parked}))
        return EXIT_OK
    report = redrive(outbox, time.time(), dead_letter_url(settings))
    print(f"redriven: {report.redriven} parked alert{'s' * (report.redriven != 1)} (the delivery sweeper posts "
          f"them, each once); dead-letter pointers removed: {report.pointers_removed}; "
          f"other dead-letter messages left: {report.left}")
    print(json.dumps(report.to_dict()))
    return EXIT_OK


# --- baton leads list -----------------------------------------------------------------------------

def _configure_leads_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", help="lead, mql, sql, recycled, opportunity, customer, disqualified "
                                        "(default: sql with --awaiting)")
    parser.add_argument("--route", help="only leads handed over on this route (e.g. enterprise)")
    parser.add_argument("--since", metavar="DATE", help="only leads that entered the stage at or after DATE (ISO 8601)")
    parser.add_argument("--owner", help="only leads accepted by this rep (e.g. slack:U024BE7LH)")
    parser.add_argument("--awaiting", choices=["sales", "overdue"],
                        help="SQLs sales has not answered yet; overdue: past their SLA")
    parser.add_argument("--limit", type=int, default=50, help="leads per page (1-200, default 50)")
    parser.add_argument("--all", action="store_true", help="follow the pages to the end")
    parser.add_argument("--json", action="store_true", help="print one JSON object per lead")
    _api_arguments(parser)


def leads_list(args: argparse.Namespace) -> int:
    """A lead list from the API, newest in its stage first; one page unless ``--all``."""
    from baton.backtest.publish import PublishError, api_get

    api, token = _api(args)
    params = {name: str(value) for name in ("stage", "route", "since", "owner", "awaiting", "limit")
              if (value := getattr(args, name)) is not None}
    shown = 0
    while True:
        try:
            page = api_get(api, token, "/v1/leads", params)
        except PublishError as exc:
            print(f"baton leads list: {exc}", file=sys.stderr)
            return EXIT_INVALID
        for lead in page["leads"]:
            if args.json:
                print(json.dumps(lead))
            else:
                print(f"{lead['lead_id']}  {lead['stage']:<12} since {lead['stage_at']}  "
                      f"route={lead['route'] or '-'}  owner={lead['owner'] or '-'}  {lead['email'] or ''}")
        shown += len(page["leads"])
        if page["next_cursor"] is None:
            break
        if not args.all:
            print(f"more: add --all, or fetch the next page with cursor={page['next_cursor']}", file=sys.stderr)
            break
        params["cursor"] = page["next_cursor"]
    if not args.json:
        print(f"{shown} lead{'s' * (shown != 1)}", file=sys.stderr)
    return EXIT_OK


def _configure_leads_backfill(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="count the leads to backfill, change nothing")


def leads_backfill(args: argparse.Namespace) -> int:
    """Index the leads stored before lead lists existed (docs/migrations.md); reads the AWS settings."""
    from chalicelib.config import Settings
    from chalicelib.store.dynamodb import DynamoDBLeads

    settings = Settings.from_env()
    report = DynamoDBLeads(settings.leads_table, settings.outbox_table).backfill_listing(args.dry_run)
    verb = "to index" if args.dry_run else "indexed"
    print(f"{report['found']} lead{'s' * (report['found'] != 1)} in {settings.leads_table} {verb}"
          + ("" if args.dry_run else f"; {report['updated']} updated (the others were rewritten meanwhile)"))
    print(json.dumps(report))
    return EXIT_OK


# --- the table ------------------------------------------------------------------------------------

COMMANDS: list[Command] = [
    Command(("rules", "validate"), "check a rule set; print its errors with path and line", rules_validate,
            _file_argument),
    Command(("rules", "doc"), "render a rule set as the marketing/sales SLA (Markdown)", rules_doc, _configure_doc),
    Command(("rules", "schema"), f"print the rule-set JSON Schema (the repo keeps it in {SCHEMA_PATH})",
            rules_schema, _output_argument),
    Command(("rules", "publish"), "validate a rule set, then create and publish it through the API (--yes)",
            rules_publish, _configure_publish),
    Command(("rules", "diff"), "what changes between two rule sets (files or API versions), rule by rule",
            rules_diff, _configure_diff),
    Command(("rules", "suggest"), "learn points from outcomes; write them as a rule set measured on a holdout",
            rules_suggest, _configure_suggest),
    Command(("export",), "export live events and outcomes from DynamoDB to Parquet (for backtests)", export,
            _configure_export),
    Command(("import",), "turn a CRM or marketing export (CSV, Parquet) into history for backtests",
            import_export, _configure_import),
    Command(("handoff", "redrive"), "send parked Slack alerts again, each once (after fixing why they failed)",
            handoff_redrive, _configure_redrive),
    Command(("leads", "list"), "list leads by stage, route, owner, since when, or what they await (API)",
            leads_list, _configure_leads_list),
    Command(("leads", "backfill"), "index leads stored before lead lists existed (a one-off migration)",
            leads_backfill, _configure_leads_backfill),
    Command(("backtest",), "replay a history under a rule set: funnel, AUC, precision at capacity, warnings",
            backtest_history, _configure_backtest),
]

GROUP_HELP = {"rules": "author and check rule sets", "leads": "look at leads through the API", "handoff": "Slack alerts the outbox could not deliver"}


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baton", description="Baton: lead scoring and sales handoff.")
    parser.set_defaults(handler=None, _parser=parser)
    groups: dict[tuple[str, ...], argparse._SubParsersAction[argparse.ArgumentParser]] = {
        (): parser.add_subparsers(title="commands", metavar="COMMAND")
    }
    for command in commands:
        for depth in range(1, len(command.path)):
            prefix = command.path[:depth]
            if prefix not in groups:
                group = groups[prefix[:-1]].add_parser(prefix[-1], help=GROUP_HELP.get(prefix[-1]))
                group.set_defaults(handler=None, _parser=group)
                groups[prefix] = group.add_subparsers(title="commands", metavar="COMMAND")
        sub = groups[command.path[:-1]].add_parser(command.path[-1], help=command.help, description=command.help)
        if command.configure is not None:
            command.configure(sub)
        sub.set_defaults(handler=command.run, _parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.handler is None:  # a group without its subcommand: show what it offers
        args._parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Handler = args.handler
    try:
        return handler(args)
    except Exception as exc:  # a missing setting is one line, not a traceback
        from baton.environment import explain

        problem = explain(exc)
        if problem is None:
            raise
        print(f"baton: {problem}", file=sys.stderr)
        return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
