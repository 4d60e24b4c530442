"""Baton's analyst package: backtest, metrics, synthetic history, the ``baton`` CLI, the SLA document.

It imports the engine from ``chalicelib`` (what Lambda ships) and is never shipped itself: nothing
in ``chalicelib`` or ``app.py`` imports it, and ``make package`` leaves it out of the zip.
"""
