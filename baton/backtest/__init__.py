"""Backtesting: replay history through the production engine (``baton.metrics`` measures the result).

Pure Python: nothing here imports pandas or pyarrow at module level; the I/O functions and
``to_frame`` helpers import them when called.
"""

from baton.backtest.replay import BacktestResult, LeadReport, backtest

__all__ = ["BacktestResult", "LeadReport", "backtest"]
