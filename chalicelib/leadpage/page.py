"""The lead page's HTML, and the refusals: every lead value escaped, no script, one hashed style.

A page carries personal data and opens from a link that is a credential, so it is never cached,
never framed and never sends its URL on as a referrer.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import datetime, timezone
from html import escape
from typing import Any

from chalicelib.engine.fit import unverified_fields
from chalicelib.events import Event
from chalicelib.leadpage.chart import Mark, score_chart
from chalicelib.leadpage.history import LeadView

EVENTS_SHOWN = 200

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fff}
main{max-width:820px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:1.6em}h2{font-size:1.15em;margin:28px 0 8px;border-bottom:1px solid #eee}
.who{color:#555;margin:0 0 16px}.facts{display:flex;flex-wrap:wrap;gap:8px 24px;margin:0;padding:0}
.facts div{min-width:120px}.facts dt{font-size:.8em;color:#666}.facts dd{margin:0;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:.92em}td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #f0f0f0}
.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777;font-size:.85em}
.refused{max-width:560px;margin:80px auto;padding:24px;border:1px solid #e5c07b;background:#fffbf0}
""".strip()
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src 'none'; script-src 'none'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP, "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
}


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")


def refused_page(reason: str) -> str:
    """The 403 (or 404) page: the reason, and nothing about any lead."""
    return _document("Baton: lead page unavailable",
                     f'<main class="refused"><h1>Lead page unavailable</h1><p id="reason">{escape(reason)}</p></main>')


def _when(ts: float | None) -> str:
    if ts is None:
        return "\u2014"
    at = datetime.fromtimestamp(ts, tz=timezone.utc)
    return f'<time datetime="{at.isoformat()}">{at.strftime("%d %b %Y %H:%M UTC")}</time>'


def _text(value: Any) -> str:
    return escape(str(value)) if value not in (None, "") else "\u2014"


def display_name(state_attributes: Mapping[str, Any], email: str | None) -> str:
    name = " ".join(str(state_attributes[k]).strip() for k in ("first_name", "last_name") if state_attributes.get(k))
    return name or email or "Unknown lead"


def lead_page(view: LeadView, expires: int) -> str:
    state, explained = view.state, view.explanation
    attrs = state.attributes
    name = display_name(attrs, state.email)
    role = ", ".join(str(attrs[k]) for k in ("job_title", "company") if attrs.get(k))
    facts = [
        ("Stage", state.stage.upper()), ("Fit", f"{explained['fit']['grade']} ({explained['fit']['score']:g})"),
        ("Engagement", f"{explained['engagement']['score']:.1f}"), ("Route", state.route),
        ("Owner", state.owner), ("Email", state.email),
    ]
    marks = [Mark(h["at"], h["stage"], h.get("reason") or "") for h in state.stage_history]
    claimed = [k.replace("_", " ") for k in unverified_fields(state)]
    body = [
        f'<main><h1 id="lead-name">{escape(name)}</h1>',
        f'<p class="who">{escape(role)}</p>' if role else "",
        (f'<p id="unverified" class="muted">Only a public web form gave: {escape(", ".join(claimed))} '
         "(not verified)</p>") if claimed else "",
        '<dl class="facts">' + "".join(f"<div><dt>{k}</dt><dd>{_text(v)}</dd></div>" for k, v in facts) + "</dl>",
        f"<h2>Score over time</h2>{score_chart(view.series, marks, view.thresholds)}",
        "<h2>Why</h2>", _reasons(explained),
        "<h2>Stage history</h2>", _history(state.stage_history),
        "<h2>Outcomes</h2>", _outcomes(view.outcomes),
        f"<h2>Events ({len(view.events)})</h2>", _events(view.events),
        f'<p class="muted">Baton lead page \u00b7 lead {escape(state.lead_id)} \u00b7 link valid until '
        f"{_when(expires)}</p></main>",
    ]
    return _document(f"{name} \u00b7 Baton", "".join(body))


def _reasons(explained: Mapping[str, Any]) -> str:
    rows = [(f"Fit: {r['label']}", r["points"]) for r in explained["fit"]["rules"]]
    rows += [(f"Engagement: {r['label']}", r["points"]) for r in explained["engagement"]["rules"]]
    if explained.get("disqualified"):
        rows.insert(0, (f"Disqualified: {explained['disqualified']}", 0.0))
    if not rows:
        return '<p class="muted">No rule scores this lead yet.</p>'
    return ('<table id="reasons"><tr><th>Rule</th><th class="num">Points</th></tr>'
            + "".join(f'<tr><td>{escape(str(label))}</td><td class="num">{float(points):+.1f}</td></tr>'
                      for label, points in rows) + "</table>")


def _history(history: list[dict[str, Any]]) -> str:
    if not history:
        return '<p class="muted">Still a lead: no transition yet.</p>'
    return ('<table id="transitions"><tr><th>When</th><th>Stage</th><th>Why</th></tr>'
            + "".join(f"<tr><td>{_when(h['at'])}</td><td>{escape(str(h['stage']).upper())}</td>"
                      f"<td>{_text(h.get('reason'))}</td></tr>" for h in reversed(history)) + "</table>")


def _outcomes(outcomes: list[dict[str, Any]]) -> str:
    if not outcomes:
        return '<p class="muted">No sales feedback yet.</p>'
    return ('<table id="outcomes"><tr><th>When</th><th>Outcome</th><th>By</th><th>Reason</th></tr>'
            + "".join(f"<tr><td>{_when(o.get('at'))}</td><td>{_text(o.get('outcome'))}</td>"
                      f"<td>{_text(o.get('actor'))}</td><td>{_text(o.get('reason'))}</td></tr>"
                      for o in sorted(outcomes, key=lambda o: o.get("at") or 0, reverse=True)) + "</table>")


def _events(events: list[Event]) -> str:
    if not events:
        return '<p class="muted">No events.</p>'
    shown = events[::-1][:EVENTS_SHOWN]
    more = len(events) - len(shown)
    rows = "".join(
        f"<tr><td>{_when(e.ts)}</td><td>{escape(e.type)}</td><td>{escape(e.source)}</td>"
        f"<td>{_text(_event_detail(e))}</td></tr>" for e in shown
    )
    tail = f'<p class="muted">and {more} older events</p>' if more > 0 else ""
    return f'<table id="events"><tr><th>When</th><th>Event</th><th>Source</th><th>Detail</th></tr>{rows}</table>{tail}'


def _event_detail(event: Event) -> str | None:
    props = event.properties
    for key in ("form_id", "path", "url", "campaign", "asset", "offer"):
        if props.get(key):
            return f"{key}: {str(props[key])[:200]}"
    return None
