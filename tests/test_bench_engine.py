"""bench/engine.py's instruction count: what runs under valgrind scores, and the count is read right.

valgrind itself is too slow for the suite (minutes); the parts around it are checked here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "engine.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("side", ["default", "generated", "rule_engine_engine"])
def test_each_side_scores_the_stream_in_its_own_process(side: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--score-side", side, "--runs", "2", "--events", "300", "--leads", "10"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # nothing printed: the count is of scoring alone


def test_instructions_are_one_warm_run_per_event(bench: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    counted: list[tuple[Any, ...]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        side, runs = command[command.index("--score-side") + 1], int(command[command.index("--runs") + 1])
        counted.append((side, runs))
        per_run = {"default": 20_000, "generated": 25_000, "rule_engine_engine": 1_000_000}[side] * 100
        return subprocess.CompletedProcess(command, 0, "", f"==1== Collected : {7_000_000 + runs * per_run}\n")

    monkeypatch.setattr(bench.shutil, "which", lambda name: "/usr/bin/valgrind")
    monkeypatch.setattr(bench.subprocess, "run", run)
    assert bench.instructions(100, 5, 7) == 0
    assert sorted(counted) == sorted((side, runs) for side in bench.SIDES for runs in (1, 2))
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["instructions_per_event_50_rules"] == 25_000
    assert figures["rule_engine_instructions_per_event"] == 1_000_000
    assert figures["instructions_ratio_vs_rule_engine"] == 40.0


def test_a_machine_without_valgrind_is_told_so(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="needs valgrind"):
        bench.instructions(100, 5, 7)
