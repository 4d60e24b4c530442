"""Scores and points as people see them (API answers, Slack alerts, transition reasons).

A score is compared with stage thresholds, so it is shown cut, never rounded up: a decayed
engagement of 49.9997 under an ">= 50" rule shows 49.9, not a 50.0 that contradicts the stage.
Cutting to the threshold's own decimals keeps the comparison: for any threshold written with at
most that many decimals, the shown score reaches it exactly when the score does.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache

PLACES = 1


_STEPS = {places: Decimal(1).scaleb(-places) for places in range(10)}  # (0.1 for 1 place)


def shown_score(value: float, places: int = PLACES) -> float:
    """``value`` cut down to ``places`` decimals (from its shortest repr: 2.3 stays 2.3)."""
    step = _STEPS.get(places) or Decimal(1).scaleb(-places)
    return float(Decimal(repr(float(value))).quantize(step, rounding=ROUND_FLOOR))


def shown_points(value: float) -> float:
    """One rule's contribution, rounded: it is never compared with a threshold on its own."""
    return round(float(value), PLACES)


@lru_cache(maxsize=256)  # (stage thresholds: a few values, one per transition reason)
def decimals(value: float) -> int:
    """How many decimals ``value`` is written with (60 -> 0, 60.25 -> 2)."""
    exponent = Decimal(repr(float(value))).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def score_text(value: float, places: int = PLACES) -> str:
    """A shown score as text: "62.3", "60" for a whole number."""
    shown = shown_score(value, places)
    return str(int(shown)) if shown.is_integer() else f"{shown:.{places}f}".rstrip("0")
