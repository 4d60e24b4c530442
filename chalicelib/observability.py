"""Structured JSON logs and CloudWatch embedded-metric-format (EMF) metrics, stdlib only.

Logs carry ids (lead id, transition id, event id), never emails or names: the lead id is a digest
of the email precisely so it can be logged. Metrics are written as EMF lines on stdout, which
CloudWatch turns into metrics without an API call (so emitting costs no latency).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

NAMESPACE = "Baton"
_metrics = logging.getLogger("baton.metrics")
_metrics.setLevel(logging.WARNING)  # silent (tests, notebooks, the local stack) until configure_logging()
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": round(record.created, 3), "level": record.levelname, "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stdout`` is at the time (the runtime, or a test's capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure_logging(level: str | None = None) -> None:
    """JSON lines on stdout for the Lambda runtime (its default handler prints plain text)."""
    handler = _Stdout()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("BATON_LOG_LEVEL", "INFO"))
    # Metrics are already JSON (EMF): print them as they are.
    raw = _Stdout()
    raw.setFormatter(logging.Formatter("%(message)s"))
    _metrics.handlers[:] = [raw]
    _metrics.propagate = False
    _metrics.setLevel(logging.INFO)
    # slack_sdk logs full request URLs at DEBUG/INFO, and a webhook URL is a secret.
    logging.getLogger("slack_sdk").setLevel(logging.WARNING)


def metric(name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
    """One EMF record. Dimensions: the stage always, plus what was given (e.g. stage=sql)."""
    if not _metrics.isEnabledFor(logging.INFO):
        return
    dims = {"service": "baton", **dimensions}
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": [sorted(dims)], "Metrics": [{"Name": name, "Unit": unit}]}
            ],
        },
        **dims,
        name: value,
    }
    _metrics.info(json.dumps(record, separators=(",", ":")))
