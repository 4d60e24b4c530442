"""JSON bodies, read one way for every caller: API routes, form posts, vendor webhooks and
Slack's ``payload`` field.

Every failure is a ``BadRequest`` (400) naming the field, never a 500: not UTF-8, empty, not
JSON, nested too deeply, a number too long to convert. A UTF-8 byte-order mark is skipped.
``NaN``, ``Infinity`` and numbers beyond a double's range are refused: Python's ``json`` would
accept them, but they are not JSON, no sender means them, and they break arithmetic and storage.
"""

from __future__ import annotations

import json
import math
from typing import Any

from chalicelib.errors import BadRequest


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text[:20]} is out of range")
    return value


def load_json(raw: bytes | str, field: str = "body") -> Any:
    """``raw`` parsed as JSON, or :class:`BadRequest` whose message and ``details["field"]`` name ``field``."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequest(f"the {field} is not UTF-8 encoded JSON", details={"field": field}) from None
    else:
        text = raw.removeprefix("\ufeff")
    if not text.strip():
        raise BadRequest(f"the {field} is empty; send JSON", details={"field": field})
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except _NotFinite as exc:
        problem = f": {exc}"
    except json.JSONDecodeError as exc:
        problem = f" at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        problem = ": nested too deeply"
    except ValueError:  # integers beyond Python's 4300-digit conversion limit
        problem = ": a number is too long"
    raise BadRequest(f"the {field} is not valid JSON{problem}", details={"field": field})
