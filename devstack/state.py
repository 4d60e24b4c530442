"""The local stack's data kept between runs, in ``.baton/state/``: moto keeps nothing of its own.

- ``dynamodb.jsonl``: every item of the data plane's tables (leads, rule sets, outbox), as
  DynamoDB JSON, all read at one moment (devstack.moto_patches.dynamodb_items), every few seconds
  when something was written and when the stack stops; loaded with ``BatchWriteItem`` into the
  fresh tables at the next start.
- ``sqs.jsonl``: the messages waiting in the stack's queues at a clean stop (an alert published but
  not yet posted, a re-score in progress, the dead letters); sent again at the next start. A stack
  that was killed loses them, and whatever was written after its last table snapshot.

Writing a snapshot replaces the file atomically (a new file, then ``os.replace``), so a stack
killed mid-write keeps the previous one. Loading writes items, and the outbox table's stream
records those writes: the stack reads the stream from after them (``LATEST``), so a reload never
relays or announces anything again.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("devstack")
FORMAT = 1
TABLES_FILE = "dynamodb.jsonl"
QUEUES_FILE = "sqs.jsonl"
# The data plane's outputs naming the tables that are kept (their names follow the stage).
TABLE_OUTPUTS = ("LeadsTableName", "RulesetsTableName", "OutboxTableName")


class StateError(RuntimeError):
    """A snapshot that cannot be read: the stack refuses to start rather than start empty over it."""


class State:
    """Snapshots of one stack's tables and queues in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()  # the periodic and the final snapshot never write at once

    # -- tables ----------------------------------------------------------------------------------
    def save_tables(self, tables: Mapping[str, list[dict[str, Any]]]) -> int:
        """Write the items of each table (by its key in ``TABLE_OUTPUTS``); returns how many."""
        lines = ({"table": key, "item": _encode(item)} for key in TABLE_OUTPUTS for item in tables.get(key, []))
        with self._lock:
            return self._write(TABLES_FILE, lines)

    def load_tables(self, ddb: Any, outputs: dict[str, str]) -> dict[str, int] | None:
        """Put the saved items into the (empty) tables; None when there is no snapshot."""
        lines = self._read(TABLES_FILE)
        if lines is None:
            return None
        counts = dict.fromkeys(TABLE_OUTPUTS, 0)
        batches: dict[str, list[dict[str, Any]]] = {key: [] for key in TABLE_OUTPUTS}
        for line in lines:
            key = line.get("table")
            if key not in batches or not isinstance(line.get("item"), dict):
                raise StateError(f"{self.directory / TABLES_FILE}: an item of unknown table {key!r}")
            batches[key].append({"PutRequest": {"Item": _decode(line["item"])}})
            counts[key] += 1
            if len(batches[key]) == 25:  # BatchWriteItem's limit
                _batch_write(ddb, outputs[key], batches[key])
                batches[key] = []
        for key, batch in batches.items():
            if batch:
                _batch_write(ddb, outputs[key], batch)
        return counts

    # -- queues ----------------------------------------------------------------------------------
    def save_queues(self, sqs: Any, prefix: str) -> int:
        """Take every visible message out of the queues named ``prefix*`` and write them down.

        Only at a stop, once nothing else receives: receiving hides a message from the workers.
        """
        with self._lock:
            return self._write(QUEUES_FILE, self._queue_lines(sqs, prefix))

    def _queue_lines(self, sqs: Any, prefix: str) -> Iterator[dict[str, Any]]:
        for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
            name = url.rsplit("/", 1)[-1]
            while True:
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                          VisibilityTimeout=600, MessageAttributeNames=["All"])  # fmt: skip
                messages = got.get("Messages", [])
                if not messages:
                    break
                for m in messages:
                    yield {"queue": name, "body": m["Body"], "attributes": _encode(m.get("MessageAttributes", {}))}

    def load_queues(self, sqs: Any) -> int:
        """Send the saved messages again (their queues exist by now); the file is then spent."""
        lines = self._read(QUEUES_FILE)
        if lines is None:
            return 0
        sent = 0
        for line in lines:
            try:
                url = sqs.get_queue_url(QueueName=line["queue"])["QueueUrl"]
            except sqs.exceptions.QueueDoesNotExist:  # the app no longer has it
                log.warning("a kept message for queue %s is dropped: the queue is gone", line["queue"])
                continue
            attributes = {k: {f: v[f] for f in ("DataType", "StringValue", "BinaryValue") if f in v}
                          for k, v in _decode(line.get("attributes", {})).items()}  # fmt: skip
            sqs.send_message(QueueUrl=url, MessageBody=line["body"], MessageAttributes=attributes)
            sent += 1
        (self.directory / QUEUES_FILE).unlink()  # sent: a later crash must not send them twice
        return sent

    # -- files -----------------------------------------------------------------------------------
    def _write(self, name: str, lines: Iterator[dict[str, Any]]) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / name
        partial = target.with_name(f".{name}.{os.getpid()}.partial")
        count = 0
        try:
            with partial.open("w", encoding="utf-8") as out:
                out.write(json.dumps({"format": FORMAT, "saved_at": time.time()}) + "\n")
                for line in lines:
                    out.write(json.dumps(line, separators=(",", ":")) + "\n")
                    count += 1
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return count

    def _read(self, name: str) -> list[dict[str, Any]] | None:
        path = self.directory / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            header, *lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise StateError(f"{path}: not a snapshot ({exc}); `make reset` starts empty") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise StateError(f"{path}: a snapshot of another format; `make reset` starts empty")
        return lines


def reset(state_dir: Path, outbox_file: Path | None) -> list[Path]:
    """Remove the kept tables and queues and the local Slack outbox; returns what was removed."""
    removed = []
    if state_dir.exists():
        shutil.rmtree(state_dir)
        removed.append(state_dir)
    if outbox_file is not None and outbox_file.exists():
        outbox_file.unlink()
        removed.append(outbox_file)
    return removed


def _batch_write(ddb: Any, table: str, requests: list[dict[str, Any]]) -> None:
    pending = {table: requests}
    for attempt in range(10):
        left = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not left:
            return
        pending = left
        time.sleep(0.05 * (attempt + 1))
    raise StateError(f"loading {table}: DynamoDB kept items unprocessed")


# DynamoDB's low-level JSON carries binary values as bytes, which JSON cannot: base64 in the file.
def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__base64__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__base64__"}:
            return base64.b64decode(value["__base64__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
