"""The size of a DynamoDB item as DynamoDB counts it against its 400 KB limit.

Per attribute: its name's UTF-8 bytes plus its value's size: strings and binary by their bytes,
numbers by about one byte per two significant digits plus one, booleans and nulls one byte, lists
and maps 3 bytes plus one per element plus their elements (the rules in the DynamoDB developer
guide, "Item sizes and formats").
"""

from __future__ import annotations

from typing import Any

ITEM_LIMIT = 400 * 1024


def item_size(item: dict[str, Any]) -> int:
    """``item`` in DynamoDB JSON (``{"pk": {"S": ...}, ...}``, as GetItem and Scan return it)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "B":
        return len(data)
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in data)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")
