"""Import benchmark: a 1,000,000-row CRM export through ``baton import``, against ``pandas.read_csv``.

    .venv/bin/python bench/import.py [--rows 1000000] [--repeat 2] [--keep DIR] [--floor]

The export has the 37 columns of the public X Education "Lead Scoring" export (docs/datasets.md),
with values drawn from that file's categories and ranges (seeded; no download needed): keys, a
lead number, categories, counts, amounts, a last activity, a converted flag, a trailing delimiter.
It is imported with the mapping in docs/mappings/x-education-leads.yaml (typed attributes, count
and amount columns spread as events, value-mapped activities, an outcome per lead), writing
leads, events and outcomes as Parquet (a count or amount column is one events row standing for
its N events: about 16 events a lead in 4 rows).

The baseline, in the same run on the same file, is ``pandas.read_csv(path)`` with its defaults:
reading the file and nothing else. Each side runs ``--repeat`` times, alternating; the best of
each is compared (a shared machine's other work only ever adds time). The last line is JSON with
``rows``, ``seconds``, ``rows_per_s`` and ``ratio_vs_read_csv``. Target: ratio <= 3. It also
gives each side's CPU seconds (all threads) and the load average before and after: on a busy
machine the import's threads get no second core, and the CPU ratio says what the wall ratio
would be alone.

``--floor`` also measures what any import writing this layout pays before it computes anything:
the importer's own read of the mapped CSV columns, plus the Parquet encoding of the three tables
it wrote (read back, repeated columns as dictionaries as the importer hands them over) on two
threads, as it writes them. Hashing the lead ids, cleaning, typing and building the events come on
top of that floor, which the JSON line gives as ``floor_seconds`` and ``floor_ratio``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baton import importer
from baton.importer import import_file, load_mapping
from chalicelib.rules.loader import load_ruleset

MAPPING = Path(__file__).resolve().parents[1] / "docs" / "mappings" / "x-education-leads.yaml"
RULES = MAPPING.with_name("x-education-rules.yaml")  # declares the export's event types
TARGET = 3.0

ORIGINS = (["Landing Page Submission", "API", "Lead Add Form", "Lead Import"], [0.53, 0.39, 0.075, 0.005])
SOURCES = (["Google", "Direct Traffic", "Olark Chat", "Organic Search", "Reference", "Welingak Website",
            "Referral Sites", "Facebook", ""], [0.31, 0.275, 0.19, 0.125, 0.058, 0.015, 0.014, 0.006, 0.007])
ACTIVITIES = (["Email Opened", "SMS Sent", "Olark Chat Conversation", "Page Visited on Website", "Converted to Lead",
               "Email Bounced", "Email Link Clicked", "Form Submitted on Website", "", "Unreachable", "Unsubscribed",
               "Had a Phone Conversation"],
              [0.372, 0.297, 0.105, 0.069, 0.046, 0.035, 0.029, 0.013, 0.011, 0.01, 0.007, 0.006])
OCCUPATIONS = (["Unemployed", "", "Working Professional", "Student", "Other", "Housewife", "Businessman"],
               [0.606, 0.291, 0.076, 0.023, 0.002, 0.001, 0.001])
COUNTRIES = (["India", "", "United States", "United Arab Emirates", "Singapore", "Saudi Arabia", "United Kingdom"],
             [0.703, 0.266, 0.008, 0.006, 0.007, 0.005, 0.005])
TAGS = (["", "Will revert after reading the email", "Ringing", "Interested in other courses", "Already a student",
         "Closed by Horizzon", "switched off", "Busy", "Lost to EINS"],
        [0.363, 0.224, 0.13, 0.056, 0.05, 0.039, 0.026, 0.02, 0.092])
QUALITY = (["", "Might be", "Not Sure", "High in Relevance", "Worst", "Low in Relevance"],
           [0.516, 0.169, 0.118, 0.069, 0.065, 0.063])
SELECT = (["Select", "", "Finance Management", "Human Resource Management", "Marketing Management"],
          [0.21, 0.16, 0.21, 0.21, 0.21])
YES_NO = (["No", "Yes"], [0.92, 0.08])
HEADER = ["Prospect ID", "Lead Number", "Lead Origin", "Lead Source", "Do Not Email", "Do Not Call", "Converted",
          "TotalVisits", "Total Time Spent on Website", "Page Views Per Visit", "Last Activity", "Country",
          "Specialization", "How did you hear about X Education", "What is your current occupation",
          "What matters most to you in choosing a course", "Search", "Magazine", "Newspaper Article",
          "X Education Forums", "Newspaper", "Digital Advertisement", "Through Recommendations",
          "Receive More Updates About Our Courses", "Tags", "Lead Quality", "Update me on Supply Chain Content",
          "Get updates on DM Content", "Lead Profile", "City", "Asymmetrique Activity Index",
          "Asymmetrique Profile Index", "Asymmetrique Activity Score", "Asymmetrique Profile Score",
          "I agree to pay the amount through cheque", "A free copy of Mastering The Interview",
          "Last Notable Activity"]


def make_export(path: Path, rows: int, seed: int = 7) -> None:
    """A seeded export shaped like the X Education file, written in chunks (CSV, trailing comma)."""
    rng = np.random.default_rng(seed)
    chunk = 200_000
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(HEADER) + ",\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)

            def pick(choices: tuple[list[str], list[float]], size: int = n) -> np.ndarray:
                values, weights = choices
                return rng.choice(np.array(values, dtype=object), size=size, p=np.array(weights) / sum(weights))

            visits = rng.poisson(3.4, n).astype(float)
            missing = rng.random(n) < 0.015
            time_on_site = np.where(visits > 0, rng.gamma(1.2, 400, n).round(), 0)
            pages = np.where(visits > 0, (rng.gamma(2.0, 1.2, n) + 1).round(2), 0)
            frame = pd.DataFrame({
                "Prospect ID": [f"{x:032x}" for x in rng.integers(0, 2**63, n) * (start + np.arange(n) + 1)],
                "Lead Number": start + np.arange(n) + 500_000,
                "Lead Origin": pick(ORIGINS), "Lead Source": pick(SOURCES), "Do Not Email": pick(YES_NO),
                "Do Not Call": "No", "Converted": (rng.random(n) < 0.385).astype(int),
                "TotalVisits": np.where(missing, np.nan, visits), "Total Time Spent on Website": time_on_site,
                "Page Views Per Visit": np.where(missing, np.nan, pages), "Last Activity": pick(ACTIVITIES),
                "Country": pick(COUNTRIES), "Specialization": pick(SELECT), "How did you hear about X Education": "Select",
                "What is your current occupation": pick(OCCUPATIONS),
                "What matters most to you in choosing a course": "Better Career Prospects",
            })
            for name in HEADER[16:24]:
                frame[name] = "No"
            frame["Tags"] = pick(TAGS)
            frame["Lead Quality"] = pick(QUALITY)
            frame["Update me on Supply Chain Content"] = "No"
            frame["Get updates on DM Content"] = "No"
            frame["Lead Profile"] = pick(SELECT)
            frame["City"] = pick(SELECT)
            frame["Asymmetrique Activity Index"] = "02.Medium"
            frame["Asymmetrique Profile Index"] = "02.Medium"
            frame["Asymmetrique Activity Score"] = rng.integers(7, 19, n)
            frame["Asymmetrique Profile Score"] = rng.integers(11, 21, n)
            frame["I agree to pay the amount through cheque"] = "No"
            frame["A free copy of Mastering The Interview"] = pick(YES_NO)
            frame["Last Notable Activity"] = pick(ACTIVITIES)
            frame[""] = ""  # the original's trailing delimiter
            frame.to_csv(handle, header=False, index=False)


def floor_seconds(export: Path, history: Path, mapping: importer.Mapping, repeat: int) -> tuple[float, float]:
    """(read, write): the best of ``repeat`` runs of the importer's CSV read and of re-encoding its
    output with its own writing code (``_read``, ``_write``: the floor is its own, not a model of it)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    layout = importer._layout(export, mapping)
    columns = importer._check_columns(mapping, layout.header, {})
    schemas = {name: pq.read_schema(history / f"{name}.parquet") for name in ("leads", "events", "outcomes")}
    repeated = {"leads": [name for name in schemas["leads"].names if name not in importer.LEAD_COLUMNS],
                "events": ["event_id", "type", "source"], "outcomes": ["outcome", "reason"]}
    tables = {name: pq.read_table(history / f"{name}.parquet", read_dictionary=[
        column for column in repeated[name] if schemas[name].field(column).type == "string"]) for name in schemas}
    floor = history.with_name("floor")
    floor.mkdir(exist_ok=True)

    def write(*names: str) -> None:
        for name in names:
            importer._write(floor / f"{name}.parquet", tables[name], repeated[name])

    reads: list[float] = []
    writes: list[float] = []
    with importer.import_memory():  # (the memory the importer uses)
        for _ in range(repeat):
            t = time.perf_counter()
            importer._read(export, mapping, layout, columns)
            reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            with ThreadPoolExecutor(max_workers=2) as pool:  # (the importer's two writers: events; leads and outcomes)
                done = [pool.submit(write, "events"), pool.submit(write, "leads", "outcomes")]
            for future in done:
                future.result()
            writes.append(time.perf_counter() - t)
    shutil.rmtree(floor, ignore_errors=True)
    return min(reads), min(writes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side; the best is compared")
    parser.add_argument("--keep", metavar="DIR", help="keep the export and the imported history here")
    parser.add_argument("--floor", action="store_true", help="also measure reading and writing alone (see above)")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="baton-bench-import-"))
    work.mkdir(parents=True, exist_ok=True)
    export = work / "export.csv"
    started = time.perf_counter()
    make_export(export, args.rows)
    size = export.stat().st_size
    print(f"export: {args.rows:,} rows x {len(HEADER)} columns, {size / 1e6:.0f} MB "
          f"(made in {time.perf_counter() - started:.1f} s)")
    mapping, lines = load_mapping(MAPPING)
    ruleset = load_ruleset(RULES)

    read_runs: list[float] = []
    import_runs: list[float] = []
    read_cpu: list[float] = []
    import_cpu: list[float] = []
    summary = None
    load_before = os.getloadavg()[0]
    for run in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        frame = pd.read_csv(export)
        read_runs.append(time.perf_counter() - t)
        read_cpu.append(time.process_time() - c)
        assert len(frame) == args.rows
        del frame
        out = work / "history"
        shutil.rmtree(out, ignore_errors=True)
        t, c = time.perf_counter(), time.process_time()
        summary = import_file(export, mapping, out, lines=lines, ruleset=ruleset)
        import_runs.append(time.perf_counter() - t)
        import_cpu.append(time.process_time() - c)
        print(f"run {run + 1}: read_csv {read_runs[-1]:.2f} s (CPU {read_cpu[-1]:.2f}), "
              f"import {import_runs[-1]:.2f} s (CPU {import_cpu[-1]:.2f})")
    load = (load_before, os.getloadavg()[0])
    assert summary is not None
    seconds, baseline = min(import_runs), min(read_runs)
    events = sum(summary.events.values())
    print(f"imported {summary.leads:,} leads, {events:,} events, {sum(summary.outcomes.values()):,} outcomes, "
          f"{summary.skipped_rows:,} rows skipped")
    print(f"import: {seconds:.2f} s ({args.rows / seconds:,.0f} rows/s); pandas.read_csv alone: {baseline:.2f} s; "
          f"ratio {seconds / baseline:.2f} (target <= {TARGET:g}); CPU {min(import_cpu):.2f} s vs "
          f"{min(read_cpu):.2f} s, ratio {min(import_cpu) / min(read_cpu):.2f}; load average {load[0]:.1f} -> {load[1]:.1f}")
    floor: dict[str, float] = {}
    if args.floor:
        read, write = floor_seconds(export, work / "history", mapping, args.repeat)
        floor = {"floor_seconds": round(read + write, 3), "floor_ratio": round((read + write) / baseline, 3)}
        print(f"floor: the importer's CSV read {read:.2f} s + writing its three files {write:.2f} s = "
              f"{read + write:.2f} s, ratio {(read + write) / baseline:.2f} vs read_csv, before any hashing, "
              f"cleaning, typing or event building")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "rows": args.rows, "seconds": round(seconds, 3), "rows_per_s": round(args.rows / seconds),
        "ratio_vs_read_csv": round(seconds / baseline, 3), "read_csv_seconds": round(baseline, 3),
        "events": events, "leads": summary.leads, "seconds_runs": [round(s, 3) for s in import_runs],
        "read_csv_runs": [round(s, 3) for s in read_runs], "cpu_seconds": round(min(import_cpu), 3),
        "read_csv_cpu_seconds": round(min(read_cpu), 3), "cpu_ratio": round(min(import_cpu) / min(read_cpu), 3),
        "load_average": [round(x, 2) for x in load], "target": TARGET, **floor,
    }))


if __name__ == "__main__":
    main()
