"""The score-over-time chart as inline SVG: pure, no plotting library (nothing more ships to Lambda).

Two lines on one points axis (fit, engagement), a dashed line per stage threshold, and a marker
per transition. Every text is escaped; colours are presentation attributes, not ``style``, so the
page's Content-Security-Policy needs no inline styles for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

from chalicelib.leadpage.history import Point

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 84, 28, 36  # room for the y labels, threshold labels, legend, dates
MIN_SPAN = 3600.0  # the chart shows at least an hour
FIT_COLOUR, ENGAGEMENT_COLOUR, THRESHOLD_COLOUR, MARK_COLOUR = "#1f77b4", "#d95f02", "#6b6b6b", "#2a9d3c"


@dataclass(frozen=True)
class Mark:
    """A transition: when, to which stage, and why (shown on hover)."""

    at: float
    stage: str
    reason: str


def score_chart(points: Sequence[Point], marks: Sequence[Mark] = (), thresholds: Mapping[str, float] | None = None
                ) -> str:
    """The SVG element (a string) for a lead's score over time."""
    thresholds = dict(thresholds or {})
    if not points:
        return _svg('<text x="50%" y="50%" text-anchor="middle" fill="#555">No activity yet</text>', "no data")
    t0, t1 = points[0].at, points[-1].at
    if t1 - t0 < MIN_SPAN:  # a new lead: show the last hour, its score flat at where it started before
        t0 = t1 - MIN_SPAN
    values = [p.fit for p in points] + [p.engagement for p in points] + list(thresholds.values())
    low, high, step = _axis(min(0.0, *values), max(10.0, *values))
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * width

    def y(v: float) -> float:
        return TOP + (high - v) / (high - low) * height

    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{width}" height="{height}" fill="#fafafa" stroke="#ddd"/>']
    for tick in _ticks(low, high, step):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + width}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" fill="#555">'
                     f'{tick:g}</text>')
    for t in _time_ticks(t0, t1):
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
                     f'fill="#555">{escape(_date(t, t1 - t0))}</text>')
    for name, value in sorted(thresholds.items(), key=lambda kv: kv[1]):
        label = escape(f"{name} \u2265 {value:g}")
        parts.append(f'<g class="threshold" data-stage="{escape(name.lower())}"><line x1="{LEFT}" '
                     f'x2="{LEFT + width}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{THRESHOLD_COLOUR}" '
                     f'stroke-dasharray="6 4"/><text x="{LEFT + width + 6}" y="{y(value) + 4:.1f}" font-size="11" '
                     f'fill="{THRESHOLD_COLOUR}">{label}</text></g>')
    for mark in marks:
        if not t0 <= mark.at <= t1:
            continue
        mx = x(mark.at)
        parts.append(f'<g class="transition" data-stage="{escape(mark.stage)}"><title>'
                     f'{escape(mark.stage.upper())} {escape(_date(mark.at, 0))}: {escape(mark.reason)}</title>'
                     f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP}" y2="{TOP + height}" stroke="{MARK_COLOUR}" '
                     f'stroke-width="1.5"/><circle cx="{mx:.1f}" cy="{TOP}" r="4" fill="{MARK_COLOUR}"/>'
                     f'<text x="{mx:.1f}" y="{TOP - 8}" text-anchor="middle" font-size="11" font-weight="bold" '
                     f'fill="{MARK_COLOUR}">{escape(mark.stage.upper())}</text></g>')
    for name, colour, pick in (("fit", FIT_COLOUR, lambda p: p.fit),
                               ("engagement", ENGAGEMENT_COLOUR, lambda p: p.engagement)):
        held = [f"{x(t0):.1f},{y(pick(points[0])):.1f}"] if points[0].at > t0 else []
        coords = " ".join(held + [f"{x(p.at):.1f},{y(pick(p)):.1f}" for p in points])
        parts.append(f'<polyline class="line" data-series="{name}" points="{coords}" fill="none" '
                     f'stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>')
    for n, (name, colour) in enumerate((("Fit", FIT_COLOUR), ("Engagement", ENGAGEMENT_COLOUR))):
        lx = LEFT + n * 110
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{HEIGHT - 8}" y2="{HEIGHT - 8}" stroke="{colour}" '
                     f'stroke-width="3"/><text x="{lx + 24}" y="{HEIGHT - 4}" font-size="12" fill="#333">{name}</text>')
    last = points[-1]
    summary = (f"fit {last.fit:g} and engagement {last.engagement:.1f} now; "
               f"{len(marks)} transition{'s' * (len(marks) != 1)}")
    return _svg("".join(parts), summary)


def _svg(body: str, summary: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
            f'aria-labelledby="chart-title chart-desc" class="score-chart" font-family="system-ui, sans-serif">'
            f'<title id="chart-title">Score over time</title><desc id="chart-desc">{escape(summary)}</desc>'
            f"{body}</svg>")


def _axis(low: float, high: float) -> tuple[float, float, float]:
    """Bounds rounded out to a whole number of tick steps, and the step."""
    step = _step(high - low)
    return math.floor(low / step) * step, math.ceil(high * 1.05 / step) * step, step


def _step(span: float) -> float:
    raw = max(span, 1e-9) / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _ticks(low: float, high: float, step: float) -> list[float]:
    return [round(low + n * step, 9) for n in range(round((high - low) / step) + 1)]


def _time_ticks(t0: float, t1: float, count: int = 5) -> list[float]:
    return [t0 + (t1 - t0) * n / (count - 1) for n in range(count)]


def _date(t: float, span: float) -> str:
    at = datetime.fromtimestamp(t, tz=timezone.utc)
    if span and span < 2 * 86400:
        return at.strftime("%d %b %H:%M")
    return at.strftime("%d %b %Y") if span else at.strftime("%d %b %Y %H:%M UTC")
