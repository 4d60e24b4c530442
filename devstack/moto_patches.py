"""moto 5.2's DynamoDB, made to behave like DynamoDB under concurrent requests.

The local stack (and tests that run a moto server in-process) call ``serialize_moto_dynamodb``
before starting the server. Without it, concurrent writers lose updates in moto that real
DynamoDB would never lose, and every transaction slows down with the table's size. The same
patch counts write calls, so that the local stack snapshots its tables only when they changed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

_WRITE_ACTIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
_writes = 0
_lock = threading.RLock()  # held by every DynamoDB call once serialize_moto_dynamodb() ran


def dynamodb_writes() -> int:
    """How many write calls this process's moto DynamoDB has served (to skip unchanged snapshots)."""
    return _writes


def dynamodb_items(tables: Sequence[str], region: str) -> dict[str, list[dict[str, Any]]]:
    """Every item of ``tables`` (by name) as DynamoDB JSON, all read at one moment.

    Read from this process's moto (a ThreadedMotoServer or mock_aws) under the lock every DynamoDB
    call takes, so no write lands between two tables (a lead's state and its outbox message are
    one transaction). A Scan through the API reads a page at a time and took 100 times longer.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][region]
    with _lock:
        return {name: [item.to_json()["Attributes"] for item in backend.get_table(name).all_items()]
                for name in tables}  # fmt: skip


def serialize_moto_dynamodb() -> None:
    """Make this process's moto DynamoDB behave like DynamoDB under concurrent requests.

    1. moto's TransactWriteItems checks each condition and writes item by item with no lock, and
       on failure restores whole deep-copied tables: a cancelled transaction wipes out what another
       request committed meanwhile (lost updates real DynamoDB never makes), and two conditional
       puts can both pass. Every DynamoDB call runs under one lock here.
    2. That deep copy of every table a transaction touches makes each write O(table size): the
       stack slows down as data grows. Under the lock, backing up the touched items is enough.
       Likewise every Query sorts the whole table by DynamoType (slow Python comparisons).
    """
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "serialized", False):
        return
    lock = _lock
    unlocked = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        global _writes
        with lock:
            if self._get_action() in _WRITE_ACTIONS:
                _writes += 1
            return unlocked(self)

    call_action.serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]

    class TablesAreNotCopied:  # what moto.dynamodb.models sees as the copy module
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = TablesAreNotCopied  # type: ignore[assignment]
    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        undo = []
        for entry in transact_items:
            op: Any = next(iter(entry.values()), {})
            table: Any = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            key = op.get("Item") or op.get("Key") if table is not None else None
            if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
                continue
            if table.range_key_attr and table.range_key_attr not in key:
                continue
            h = DynamoType(key[table.hash_key_attr])
            r = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            streamed = len(table.stream_shard.items) if table.stream_shard is not None else 0
            undo.append((table, h, r, copy.deepcopy(table.get_item(h, r)), streamed))
        try:
            return transact(self, transact_items)
        except Exception:
            for table, h, r, old, streamed in reversed(undo):
                if r is None:
                    table.items.pop(h, None) if old is None else table.items.__setitem__(h, old)
                elif old is None:
                    table.items[h].pop(r, None)
                else:
                    table.items[h][r] = old
                if table.stream_shard is not None:
                    del table.stream_shard.items[streamed:]
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def all_items(self: Table) -> list[Any]:  # what every Query sorts: by native keys, not DynamoType
        items = [i for group in self.items.values() for i in (group.values() if self.range_key_attr else [group])]
        return sorted(items, key=lambda i: (i.hash_key.cast_value, i.range_key.cast_value if i.range_key else ""))

    Table.all_items = all_items  # type: ignore[method-assign]
