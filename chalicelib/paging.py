"""Query-string paging parameters, validated like any other input."""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.errors import ValidationFailed

MAX_LIMIT = 200


def page_params(params: Mapping[str, str], default_limit: int = 20) -> tuple[int, int]:
    def number(name: str, default: int, low: int, high: int) -> int:
        raw = params.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ValidationFailed(f"{name} must be a whole number from {low} to {high}", field=name)
        return int(raw)

    return number("limit", default_limit, 1, MAX_LIMIT), number("cursor", 0, 0, 10**9)
