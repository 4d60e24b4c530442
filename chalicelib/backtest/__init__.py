"""Backtesting: replay history through the production engine, measure, sweep, compare.

Pure Python: nothing here imports pandas or pyarrow at module level (``chalicelib`` ships to Lambda,
where neither is installed); the I/O functions and ``to_frame`` helpers import them when called.
"""

from chalicelib.backtest.metrics import (
    by_channel,
    by_offer,
    compare,
    funnel,
    lift_by_decile,
    recommend_threshold,
    ruleset_changes,
    sql_quality,
    stage_counts,
    stage_matrix,
    summary,
    sweeps,
    threshold_sweep,
    time_to_stage,
    to_frame,
    weekly_sqls,
)
from chalicelib.backtest.replay import BacktestResult, LeadReport, Outcome, backtest

__all__ = [
    "BacktestResult",
    "LeadReport",
    "Outcome",
    "backtest",
    "by_channel",
    "by_offer",
    "compare",
    "funnel",
    "lift_by_decile",
    "recommend_threshold",
    "ruleset_changes",
    "sql_quality",
    "stage_counts",
    "stage_matrix",
    "summary",
    "sweeps",
    "threshold_sweep",
    "time_to_stage",
    "to_frame",
    "weekly_sqls",
]
