"""Suggestion benchmark: ``baton rules suggest`` on 50,000 leads / 1,000,000 events, against one backtest.

    .venv/bin/python bench/suggest.py [--leads 50000] [--events 1000000] [--workers 2] [--capacity 150]

The history is ``baton.synth.planted_history`` (known weights; generation is timed apart: it is the
input, not the work). The whole suggestion (lead rows, features, leak check, the L1 fit, thresholds,
writing and validating the YAML, the backtest that measures it on the holdout, both baselines) is
timed, then one backtest of the same history under the suggested rules, as ``baton backtest`` runs
it (``baton.backtest.report.measure``), in the same run: ``ratio_vs_backtest`` is the first over the
second. The logistic baseline's own fit is timed inside the suggestion and printed beside it.

Targets (issue 20): the whole suggestion <= 30 s on 2 cores; learning the rules (the suggestion
without its measuring backtest) <= 3 backtests. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baton.backtest.report import measure
from baton.suggest import suggest
from baton.synth import planted_history

TARGET_SECONDS = 30.0
TARGET_LEARNING_RATIO = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--capacity", type=float, default=150.0, help="SQLs per week sales can work")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    started = time.perf_counter()
    history = planted_history(args.leads, seed=args.seed, events_per_lead=args.events / args.leads)
    print(f"history: {args.leads:,} leads, {len(history.events):,} events, {len(history.outcomes):,} outcomes "
          f"(generated in {time.perf_counter() - started:.1f} s)")

    load_before = os.getloadavg()[0]  # the machine is shared: the figures mean little without it
    started = time.perf_counter()
    s = suggest(history.events, history.outcomes, holdout_fraction=0.3, capacity=args.capacity,
                workers=args.workers)
    seconds = time.perf_counter() - started
    headline = s.headline()
    print(f"suggestion: {seconds:.2f} s, {headline['rules']} rules; holdout AUC {headline['holdout_auc']}, "
          f"logistic {headline['logistic_holdout_auc']} (its fit {s.baseline.logistic_seconds:.2f} s), "
          f"boosting {headline['boosting_holdout_auc']}; SQL share {headline['sql_share']}")

    started = time.perf_counter()
    report = measure(history.events, history.outcomes, s.ruleset, capacity=args.capacity, holdout_fraction=0.3,
                     workers=args.workers)
    backtest_seconds = time.perf_counter() - started
    assert report.holdout is not None
    print(f"one backtest of the same history under the suggested rules: {backtest_seconds:.2f} s "
          f"(holdout AUC {report.holdout['quality']['auc']:.4f})")
    ratio = seconds / backtest_seconds
    learning = (seconds - s.report.seconds) / backtest_seconds
    print(f"ratio: suggestion / backtest {ratio:.2f}; learning alone (without its measuring backtest) "
          f"{learning:.2f} backtests (target <= {TARGET_LEARNING_RATIO:g}); whole suggestion target <= "
          f"{TARGET_SECONDS:g} s")
    load_after = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    print(json.dumps({
        "leads": args.leads, "events": len(history.events), "seconds": round(seconds, 3),
        "backtest_seconds": round(backtest_seconds, 3), "ratio_vs_backtest": round(ratio, 3),
        "learning_ratio_vs_backtest": round(learning, 3), "logistic_seconds": round(s.baseline.logistic_seconds, 3),
        "rules": headline["rules"], "holdout_auc": headline["holdout_auc"],
        "logistic_holdout_auc": headline["logistic_holdout_auc"],
        "boosting_holdout_auc": headline["boosting_holdout_auc"], "sql_share": headline["sql_share"],
        "target_seconds": TARGET_SECONDS, "within_target": seconds <= TARGET_SECONDS,
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }))


if __name__ == "__main__":
    main()
