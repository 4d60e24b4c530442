"""The Slack alert of a lead scored by the engine, end to end (engine -> handoff body -> blocks):
the event that tipped the lead over is in Recent activity and a frequency bonus is not, "Why now"
gives the threshold, a hand-raise is named by its rule label, a free-mail typo says so, and what
only a public form claims is marked unverified."""

from __future__ import annotations

from typing import Any

from chalicelib.engine import apply_event, new_lead
from chalicelib.engine.fit import unverified_fields
from chalicelib.events import Event
from chalicelib.handoff.blocks import check_limits, handoff_blocks
from chalicelib.handoff.body import outbox_items
from chalicelib.handoff.message import HandoffMessage
from chalicelib.rules.compile import compile_ruleset
from chalicelib.rules.loader import default_ruleset
from chalicelib.state import lead_id_for

RS = compile_ruleset(default_ruleset(), version=4)
T0 = 1_800_000_000.0
A_TRAITS = {"first_name": "Ada", "job_title": "VP Marketing", "department": "Marketing", "company_size": 250,
            "industry": "Software", "country": "US", "company": "Acme"}


def _alert(email: str, traits: dict[str, Any], events: list[tuple[str, dict[str, Any]]], source: str = "api",
           ) -> tuple[str, list[str]]:
    """Score the events one a minute (the traits come with the first, from ``source``); the SQL
    alert's fallback text and its block texts (fields included)."""
    state = new_lead(lead_id_for(email), email)
    items = []
    for i, (kind, props) in enumerate([("identify", {}), *events]):
        at = T0 + 60 * i
        event = Event(event_id=f"e{i}", type=kind, ts=at, properties=props, traits=traits if i == 0 else {},
                      source=source if i == 0 else "api")
        transitions = apply_event(state, event, RS, at)
        items += outbox_items(state, transitions, RS, "api", at)
    [item] = items
    text, blocks = handoff_blocks(HandoffMessage.model_validate(item.body))
    assert check_limits(blocks) == []
    return text, [b["text"]["text"] if "text" in b else "\n".join(f["text"] for f in b["fields"])
                  for b in blocks if b["type"] == "section"]


def _section(sections: list[str], title: str) -> list[str]:
    return next(s for s in sections if s.startswith(f"*{title}*")).splitlines()[1:]


def test_the_alert_lists_the_tipping_event_and_not_the_frequency_bonus() -> None:
    pricing = ("page_view", {"path": "/pricing"})
    _, sections = _alert("ada@acme.example", A_TRAITS, [
        pricing, pricing, pricing,  # 30 + the 15-point burst: MQL
        ("content_download", {"offer": "roi-guide"}),  # 55
        ("email_click", {}), ("email_click", {}),  # 3 + 3: the second click makes the SQL
    ])
    activity = _section(sections, "Recent activity")
    assert activity[0].startswith("\u2022 Clicked a link in a marketing email \u00b7 ")
    assert sum("Viewed the pricing page" in line for line in activity) == 3
    assert not any("pricing-page views within 7 days" in line for line in activity)
    assert any("3 pricing-page views within 7 days" in line for line in _section(sections, "Top reasons"))
    assert sections[0].startswith("*Why now:* engagement 60.9 of 60 needed, fit A (85)")


def test_a_hand_raiser_alert_names_the_rule_not_the_event_type() -> None:
    text, sections = _alert("ada@acme.example", A_TRAITS, [("demo_request", {"form_id": "demo"})])
    assert sections[0].startswith("*Why now:* fast track: hand-raiser: Requested a demo")
    assert "demo_request" not in text
    assert _section(sections, "Recent activity")[0].startswith("\u2022 Requested a demo: demo \u00b7 ")


def test_a_free_mail_typo_reaches_sales_scored_as_free_mail() -> None:
    # gmial.com is on the disposable list: read as gmail.com, the lead is not disqualified
    _, sections = _alert("joe@gmial.com", {"job_title": "VP Sales", "company_size": 250},
                         [("demo_request", {"form_id": "demo"})])
    reasons = _section(sections, "Top reasons")
    assert any("`-10` Free webmail address (likely typo of gmail.com)" in line for line in reasons)


def test_what_only_a_public_form_claims_is_marked_unverified() -> None:
    # Anyone may post a form with anyone's address: sales sees which details nobody has verified.
    demo = [("demo_request", {"form_id": "demo"})]
    _, sections = _alert("ada@acme.example", A_TRAITS, demo, source="form")
    fields = next(s for s in sections if s.startswith("*Name*"))
    assert "*Company*\nAcme _(web form, unverified)_" in fields
    assert "*Title*\nVP Marketing _(web form, unverified)_" in fields
    assert "*Company size*\n250 _(web form, unverified)_" in fields
    assert "*Email*\nada@acme.example\n" in fields + "\n", "the address is the lead's key, not a claim"
    _, sections = _alert("ada@acme.example", A_TRAITS, demo, source="hubspot")
    assert "unverified" not in next(s for s in sections if s.startswith("*Name*"))


def test_a_verified_source_confirming_a_form_value_clears_the_mark() -> None:
    state = new_lead(lead_id_for("ada@acme.example"), "ada@acme.example")
    apply_event(state, Event(event_id="f", type="form_submitted", ts=T0, traits=A_TRAITS, source="form"), RS, T0)
    fields = ("first_name", "last_name", "job_title", "company", "country", "industry", "company_size")
    assert unverified_fields(state, fields) == [
        "first_name", "job_title", "company", "country", "industry", "company_size"]
    crm = {"company": "Acme", "job_title": "VP Marketing"}  # the CRM agrees on two of them
    apply_event(state, Event(event_id="h", type="identify", ts=T0 + 60, traits=crm, source="hubspot"), RS, T0 + 60)
    assert unverified_fields(state, fields) == ["first_name", "country", "industry", "company_size"]
