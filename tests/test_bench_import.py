"""bench/import.py on a small export: it imports what it made and its last line is the JSON it promises.

The figures themselves are machine-dependent and not checked (no timing assertions); what is
checked is that the benchmark measures what it says: the whole export imported, events from
the count and amount columns, and the floor (the importer's own reading and writing) reported
beside the ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent.parent / "bench" / "import.py"


def test_the_benchmark_imports_its_export_and_prints_the_ratio_and_the_floor(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "3000", "--repeat", "1", "--floor", "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"rows", "seconds", "rows_per_s", "ratio_vs_read_csv", "floor_seconds", "floor_ratio"} <= set(figures)
    assert figures["rows"] == figures["leads"] == 3000
    assert figures["floor_seconds"] > 0 and figures["floor_ratio"] > 0
    history = tmp_path / "history"
    assert pq.read_metadata(history / "leads.parquet").num_rows == 3000
    assert sum(json.loads((history / "import-summary.json").read_text())["events"].values()) == figures["events"]
    assert not (tmp_path / "floor").exists()  # (the floor's own files are removed)
