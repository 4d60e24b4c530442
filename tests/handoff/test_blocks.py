"""Block Kit builders: content, escaping (no mention injection) and Block Kit limits."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_fakes import PAYLOADS, handoff_dict

from chalicelib.errors import BadRequest
from chalicelib.handoff.blocks import (
    ACTION_ACCEPT,
    ACTION_RECYCLE,
    ACTION_REJECT,
    LIMITS,
    OUTCOME_BLOCK_ID,
    REJECT_REASONS,
    check_limits,
    digest_blocks,
    escape,
    handoff_blocks,
    outcome_blocks,
    reminder_blocks,
    text_length,
    truncate,
)
from chalicelib.handoff.message import HandoffMessage

AT = datetime(2026, 11, 23, 10, 5, tzinfo=timezone.utc)


def texts(blocks: Any) -> list[str]:
    """Every text Slack will render or parse: text objects, at any depth."""
    found: list[str] = []
    if isinstance(blocks, dict):
        if blocks.get("type") in ("plain_text", "mrkdwn") and isinstance(blocks.get("text"), str):
            found.append(blocks["text"])
        for value in blocks.values():
            found.extend(texts(value))
    elif isinstance(blocks, list):
        for item in blocks:
            found.extend(texts(item))
    return found


def mrkdwn_objects(blocks: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(blocks, dict):
        if blocks.get("type") == "mrkdwn":
            found.append(blocks)
        for value in blocks.values():
            found.extend(mrkdwn_objects(value))
    elif isinstance(blocks, list):
        for item in blocks:
            found.extend(mrkdwn_objects(item))
    return found


# Baton's own tokens are the only "<…>" Slack may parse; every "&" starts an entity.
OWN_TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[0-9: -]+ UTC>|<@[UW][A-Z0-9]+>")
BARE_AMP = re.compile(r"&(?!amp;|lt;|gt;)")


def assert_inert(text: str) -> None:
    rest = OWN_TOKEN.sub("", text)
    assert "<" not in rest and ">" not in rest, text
    assert not BARE_AMP.search(text), text


def by_type(blocks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == kind]


# --- escape and truncate ---------------------------------------------------------------------


def test_escape_the_three_control_characters() -> None:
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape("&lt;") == "&amp;lt;"  # a literal "&lt;" typed by a lead stays literal
    assert escape("Zoë's *bold*") == "Zoë's *bold*"


def test_truncate_keeps_limits_entities_and_tokens_whole() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("a" * 8 + "&amp;b", 10)
    assert cut == "a" * 8 + "\u2026"
    cut = truncate("due " + "<!date^1^{date_short_pretty} {time}|x UTC>", 20)
    assert cut == "due\u2026"
    emoji = truncate("\U0001f600" * 10, 5)
    assert text_length(emoji) <= 5 and emoji.endswith("\u2026")


# --- the handoff message ---------------------------------------------------------------------


def test_header_and_fallback_say_who(handoff: HandoffMessage) -> None:
    text, blocks = handoff_blocks(handoff)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "New SQL: Jane Doe, VP Sales at Acme", "emoji": True},
    }
    assert text.startswith("New SQL: Jane Doe, VP Sales at Acme")
    assert "hand-raiser: demo_request" in text
    assert check_limits(blocks) == []


def test_fields_show_who_and_scores(handoff: HandoffMessage) -> None:
    _, blocks = handoff_blocks(handoff)
    fields = [f["text"] for f in next(b for b in blocks if "fields" in b)["fields"]]
    assert len(fields) <= 10
    for expected in ("Jane Doe", "VP Sales", "Acme", "DE", "120", "Software", "*A* · 45 pts", "72.5"):
        assert any(expected in f for f in fields), expected


def test_top_five_reasons_by_absolute_points_with_signs(handoff: HandoffMessage) -> None:
    _, blocks = handoff_blocks(handoff)
    section = next(t for t in texts(blocks) if t.startswith("*Top reasons*"))
    lines = section.splitlines()[1:]
    assert [line.split("`")[1] for line in lines[:5]] == ["+40", "+25", "+20", "+15", "-10"]
    assert "Visited careers page" in lines[4]
    assert lines[5] == "_and 2 more rules_"
    assert "Email opened" not in section


def test_recent_events_newest_first_with_slack_dates(handoff: HandoffMessage) -> None:
    _, blocks = handoff_blocks(handoff)
    section = next(t for t in texts(blocks) if t.startswith("*Recent activity*"))
    first, second = section.splitlines()[1:]
    assert first.startswith("• Demo request: demo-page")
    assert "<!date^1795427880^{date_short_pretty} {time}|2026-11-23 09:58 UTC>" in first
    assert "/pricing" in second


def test_sla_deadline_and_context(handoff: HandoffMessage) -> None:
    _, blocks = handoff_blocks(handoff)
    sla = next(t for t in texts(blocks) if t.startswith("*Follow up by:*"))
    assert "<!date^1795442400^{date_short_pretty} {time}|2026-11-23 14:00 UTC>" in sla
    assert "4 h SLA" in sla
    context = by_type(blocks, "context")[0]["elements"][0]["text"]
    assert "Rule set v3" in context
    assert handoff.transition_id in context and handoff.lead_id in context


def test_actions_accept_recycle_and_reject_with_a_reason(handoff: HandoffMessage) -> None:
    _, blocks = handoff_blocks(handoff)
    (actions,) = by_type(blocks, "actions")
    assert blocks[-1] is actions
    accept, recycle, reject = actions["elements"]
    ids = {"l": handoff.lead_id, "t": handoff.transition_id}
    assert (accept["action_id"], accept["style"], accept["text"]["text"]) == (
        ACTION_ACCEPT,
        "primary",
        "Accept",
    )
    assert (recycle["action_id"], recycle["text"]["text"]) == (ACTION_RECYCLE, "Recycle")
    assert "style" not in recycle
    assert json.loads(accept["value"]) == ids == json.loads(recycle["value"])
    assert accept["value"] == json.dumps(ids, separators=(",", ":"))
    assert (reject["type"], reject["action_id"]) == ("static_select", ACTION_REJECT)
    assert [o["text"]["text"] for o in reject["options"]] == [
        "Not a fit",
        "No budget",
        "Bad timing",
        "Wrong contact",
        "Duplicate",
        "Other",
    ]
    assert [json.loads(o["value"]) for o in reject["options"]] == [
        {**ids, "r": code} for code in REJECT_REASONS
    ]


def test_mql_is_worded_for_marketing_without_sales_actions(make_handoff: Any) -> None:
    msg = make_handoff(stage="mql", from_stage="lead", sla_deadline=None)
    text, blocks = handoff_blocks(msg)
    assert blocks[0]["text"]["text"] == "New MQL: Jane Doe, VP Sales at Acme"
    assert text.startswith("New MQL:")
    assert by_type(blocks, "actions") == []
    assert any(t.startswith("*Marketing qualified:*") for t in texts(blocks))
    assert not any("Follow up by" in t for t in texts(blocks))


def test_fast_track_is_flagged(make_handoff: Any) -> None:
    _, blocks = handoff_blocks(make_handoff(fast_track=True, from_stage="lead"))
    why = blocks[1]["text"]["text"]
    assert "Fast track" in why and "LEAD → SQL" in why


def test_an_sql_made_by_a_rescore_says_which_change_caused_it(make_handoff: Any) -> None:
    _, blocks = handoff_blocks(make_handoff(source="rescore", rescore={"from_version": 3, "to_version": 4}))
    why = blocks[1]["text"]["text"]
    assert "*Caused by:* re-scoring with rule set v4 (was v3)" in why
    assert blocks[-1]["type"] == "actions", "the normal alert: Accept / Recycle / Reject"
    _, blocks = handoff_blocks(make_handoff(rescore={"from_version": None, "to_version": 1}))
    assert "(was the default rule set)" in blocks[1]["text"]["text"]
    _, blocks = handoff_blocks(make_handoff())
    assert "Caused by" not in blocks[1]["text"]["text"]


def test_sparse_lead_still_renders_valid_blocks(make_handoff: Any) -> None:
    msg = make_handoff(lead={"email": "solo@x.example"}, reasons=[], key_events=[], sla_deadline=None)
    _, blocks = handoff_blocks(msg)
    assert blocks[0]["text"]["text"] == "New SQL: solo@x.example"
    assert check_limits(blocks) == []
    assert all(t.strip() for t in texts(blocks))


@pytest.mark.parametrize(
    "evil",
    [
        "<!channel>",
        "<!here|here>",
        "<@U1>",
        "<@U123ABC>",
        "<#C123|general>",
        "<https://evil.example|click me>",
        "Tom & Jerry",
        "<!subteam^S123>",
        "&lt;!channel&gt;",
    ],
)
def test_lead_text_cannot_mention_or_link(make_handoff: Any, evil: str) -> None:
    lead = {
        "email": f"{evil}@x.example",
        "first_name": evil,
        "last_name": evil,
        "job_title": evil,
        "company": evil,
        "country": evil,
        "industry": evil,
    }
    reasons = [{"rule": "r", "label": evil, "points": 5, "kind": "fit"}]
    events = [{"type": "demo_request", "at": "2026-11-23T09:00:00Z", "label": evil}]
    msg = make_handoff(lead=lead, reasons=reasons, key_events=events, reason=evil, source=evil)
    for text, blocks in (handoff_blocks(msg), reminder_blocks(msg, "escalation", 3)):
        dumped = json.dumps(blocks)
        assert evil not in dumped or evil == escape(evil)
        assert_inert(text)
        for t in texts(blocks):
            assert_inert(t)
        assert all(m.get("verbatim") is True for m in mrkdwn_objects(blocks))


# Any text a lead can send: control characters, astral emoji, Slack syntax, very long strings.
lead_text = st.one_of(
    st.none(),
    st.text(max_size=200),
    st.text(alphabet="<>&!@#|^*_~`\n\t\u2028 aé\U0001f600", max_size=200),
)
required_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=200).filter(
    lambda s: s.strip()
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lead=st.fixed_dictionaries(
        {
            "email": lead_text,
            "first_name": lead_text,
            "last_name": lead_text,
            "job_title": lead_text,
            "company": lead_text,
            "country": lead_text,
            "industry": lead_text,
            "company_size": st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
        }
    ),
    labels=st.lists(required_text, max_size=60),
    reason=st.text(alphabet="<>&!@ x\U0001f600", min_size=1, max_size=1000).filter(lambda s: s.strip()),
    grade=st.text(alphabet="<>&ABCD+-", min_size=1, max_size=16).filter(lambda s: s.strip()),
    points=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
)
def test_any_lead_text_gives_blocks_within_limits(
    lead: dict[str, Any], labels: list[str], reason: str, grade: str, points: float
) -> None:
    data = handoff_dict(
        lead=lead,
        reason=reason,
        reasons=[
            {"rule": f"r{i}", "label": label, "points": points, "kind": "engagement"}
            for i, label in enumerate(labels)
        ],
        key_events=[{"type": "t", "at": "2026-11-20T00:00:00Z", "label": label} for label in labels],
        scores={"fit": points, "grade": grade, "engagement": abs(points)},
    )
    msg = HandoffMessage.model_validate(data)
    for text, blocks in (handoff_blocks(msg), reminder_blocks(msg, "reminder", 1.5)):
        assert check_limits(blocks) == []
        json.loads(json.dumps(blocks))
        assert text_length(text) <= 3000
        assert_inert(text)
        for t in texts(blocks):
            assert_inert(t)
            assert t.strip()
    outcome = outcome_blocks(handoff_blocks(msg)[1], "reject", "U0ABC", "duplicate", AT)
    assert check_limits(outcome) == []


def test_long_values_are_truncated_with_an_ellipsis(make_handoff: Any) -> None:
    long_name = "<" * 200
    msg = make_handoff(lead={"first_name": long_name, "company": "x" * 200}, reason="y" * 1000)
    _, blocks = handoff_blocks(msg)
    header = blocks[0]["text"]["text"]
    assert text_length(header) <= LIMITS["header_text"] and header.endswith("\u2026")
    assert "&l\u2026" not in header and "&lt\u2026" not in header
    assert check_limits(blocks) == []


# --- after a click ---------------------------------------------------------------------------


def recorded_blocks() -> list[dict[str, Any]]:
    payload = json.loads((PAYLOADS / "block_actions_accept.json").read_text())
    blocks: list[dict[str, Any]] = payload["message"]["blocks"]
    return blocks


def test_outcome_replaces_the_buttons_with_who_and_when() -> None:
    original = recorded_blocks()
    blocks = outcome_blocks(original, "accept", "U061F7AUR", None, AT)
    assert by_type(blocks, "actions") == []
    outcome = blocks[-1]
    assert outcome["block_id"] == OUTCOME_BLOCK_ID
    assert outcome["elements"][0]["text"] == (
        "\u2705 Accepted by <@U061F7AUR> at <!date^1795428300^{date_short_pretty} {time}|2026-11-23 10:05 UTC>"
    )
    # Everything else is the message as Slack sent it back: not re-escaped, not changed.
    assert blocks[:-1] == original[:-1]
    assert "Acme &amp; Sons &lt;GmbH&gt;" in blocks[0]["text"]["text"]
    assert original[-1]["type"] == "actions"  # the input is not mutated


@pytest.mark.parametrize(
    ("action", "reason", "expected"),
    [
        ("recycle", None, "\u267b\ufe0f Recycled by <@U061F7AUR>"),
        ("reject", "not_fit", "\u274c Rejected by <@U061F7AUR>"),
    ],
)
def test_outcome_wording(action: Any, reason: str | None, expected: str) -> None:
    line = outcome_blocks(recorded_blocks(), action, "U061F7AUR", reason, AT)[-1]["elements"][0]["text"]
    assert line.startswith(expected)
    if reason:
        assert line.endswith("reason: Not a fit")


def test_outcome_is_idempotent_and_escapes_odd_users() -> None:
    once = outcome_blocks(recorded_blocks(), "accept", "U061F7AUR", None, AT)
    twice = outcome_blocks(once, "reject", "<!channel>", "other", AT)
    assert len(twice) == len(once)
    assert len([b for b in twice if b.get("block_id") == OUTCOME_BLOCK_ID]) == 1
    line = twice[-1]["elements"][0]["text"]
    assert "by &lt;!channel&gt; at" in line
    assert_inert(line)


# --- reminders and digests -------------------------------------------------------------------


def test_reminder_and_escalation(handoff: HandoffMessage) -> None:
    text, blocks = reminder_blocks(handoff, "reminder", 2)
    assert text.startswith("\u23f0 SLA reminder: SQL Jane Doe, VP Sales at Acme")
    assert "overdue by 2 h" in blocks[0]["text"]["text"]
    assert by_type(blocks, "actions")[0]["elements"][0]["action_id"] == ACTION_ACCEPT
    text, blocks = reminder_blocks(handoff, "escalation", 6.5)
    assert text.startswith("\U0001f6a8 Escalation:")
    assert "#sales-emea" in blocks[0]["text"]["text"] and "overdue by 6.5 h" in text
    assert check_limits(blocks) == []
    with pytest.raises(ValueError):
        reminder_blocks(handoff, "nag", 1)  # type: ignore[arg-type]


def test_digest_shows_twenty_and_counts_the_rest() -> None:
    transitions = [
        {"lead_id": f"L{i}", "name": f"Lead <{i}>", "company": "A&B", "from_stage": "mql", "stage": "sql"}
        for i in range(25)
    ]
    text, blocks = digest_blocks({"ruleset_version": 4, "transitions": transitions, "total": 30})
    assert text == "Re-score with rule set v4: 30 stage changes"
    body = "\n".join(t for t in texts(blocks)[1:])
    assert body.count("\u2022 ") == 20
    assert "Lead &lt;19&gt; (A&amp;B): MQL → SQL · `L19`" in body
    assert "Lead &lt;20&gt;" not in body
    assert body.endswith("_and 10 more_")
    assert check_limits(blocks) == []


def test_a_digest_counts_the_sqls_it_leaves_to_their_own_alerts() -> None:
    one = {"lead_id": "L1", "name": "Ada", "company": None, "from_stage": "lead", "stage": "mql"}
    _, blocks = digest_blocks({"ruleset_version": 5, "transitions": [one], "total": 1, "sql_alerts": 12})
    assert "12 new SQLs were alerted to their routes, each on its own." in json.dumps(blocks)
    _, blocks = digest_blocks({"ruleset_version": 5, "transitions": [one], "total": 1})
    assert "alerted to their routes" not in json.dumps(blocks)


def test_digest_edge_cases() -> None:
    text, blocks = digest_blocks({"ruleset_version": 2, "transitions": []})
    assert text == "Re-score with rule set v2: 0 stage changes"
    assert "No lead changed stage" in blocks[1]["text"]["text"]
    one = {"lead_id": "L1", "name": None, "company": None, "from_stage": "sql", "stage": "mql"}
    text, _ = digest_blocks({"ruleset_version": 2, "transitions": [one]})
    assert text.endswith("1 stage change")
    with pytest.raises(BadRequest) as caught:
        digest_blocks({"ruleset_version": 2, "transitions": [{"name": "x"}]})
    assert caught.value.details["field"] == "transitions.0.lead_id"


def test_digest_lines_are_split_to_respect_section_limits() -> None:
    transitions = [
        {"lead_id": "L" * 50, "name": "&" * 200, "company": "<" * 200, "from_stage": "mql", "stage": "sql"}
        for _ in range(20)
    ]
    _, blocks = digest_blocks({"ruleset_version": 1, "transitions": transitions})
    assert len(blocks) > 2
    assert check_limits(blocks) == []


@pytest.mark.parametrize("evil", ["*URGENT*", "_call now_", "~Acme~", "`rm -rf`", "Acme\u202eMOC.LIVE", "\u2066x\u2069"])
def test_lead_text_cannot_format_or_reorder(make_handoff: Any, evil: str) -> None:
    """Slack's mrkdwn has no escape for * _ ~ ` and bidi controls reorder text: lead-supplied
    text keeps neither effect, in the alert, the reminder and the fallback."""
    lead = {"email": "x@x.example", "first_name": evil, "last_name": "Doe", "job_title": evil, "company": evil,
            "country": evil, "industry": evil}
    events = [{"type": "demo_request", "at": "2026-11-23T09:00:00Z", "label": f"Requested a demo: {evil}"}]
    msg = make_handoff(lead=lead, key_events=events, source=evil)
    for text, blocks in (handoff_blocks(msg), reminder_blocks(msg, "reminder", 3)):
        for t in [text, *texts(blocks)]:
            assert not set(t) & set("\u202e\u2066\u2069"), "bidi controls are dropped"
            if set(evil) & set("*_~`"):
                assert evil not in t, "formatting characters from the lead are made inert"


# --- what the alert says about a lead (issue 22) ---------------------------------------------


def _field_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [f["text"] for f in next(b for b in blocks if "fields" in b)["fields"]]


def _valid_for_slack(blocks: list[dict[str, Any]]) -> None:
    from slack_sdk.models.blocks import Block

    for block in Block.parse_all(blocks):
        block.validate_json()  # raises on what Slack would refuse
    assert check_limits(blocks) == []


def test_a_lead_without_a_name_shows_its_email_once(make_handoff: Any) -> None:
    msg = make_handoff(lead={"email": "solo@x.example", "company": "Acme", "job_title": "CTO"})
    _, blocks = handoff_blocks(msg)
    fields = _field_texts(blocks)
    assert not any(f.startswith("*Name*") for f in fields)
    assert sum("solo@x.example" in f for f in fields) == 1
    assert "*Email*\nsolo@x.example" in fields
    _valid_for_slack(blocks)


def test_unknown_lead_details_are_left_out_not_dashed(make_handoff: Any) -> None:
    msg = make_handoff(lead={"email": "jane@x.example", "first_name": "Jane"})
    _, blocks = handoff_blocks(msg)
    fields = _field_texts(blocks)
    assert [f.split("\n")[0] for f in fields] == ["*Name*", "*Email*", "*Fit*", "*Engagement*", "*Source*"]
    assert not any("\u2014" in t for t in texts(blocks))
    assert blocks[0]["text"]["text"] == "New SQL: Jane"  # no " at …" either
    _valid_for_slack(blocks)


@pytest.mark.parametrize(("engagement", "shown"), [(49.9997, "49.9"), (72.5, "72.5"), (60.0, "60"), (59.96, "59.9")])
def test_the_engagement_shown_never_rounds_up_to_a_threshold(make_handoff: Any, engagement: float, shown: str) -> None:
    text, blocks = handoff_blocks(make_handoff(scores={"fit": 45, "grade": "A", "engagement": engagement}))
    assert f"*Engagement*\n{shown}" in _field_texts(blocks)
    assert f"engagement {shown})" in text
    _, reminder = reminder_blocks(make_handoff(scores={"fit": 45, "grade": "A", "engagement": engagement}),
                                  "reminder", 1.0)
    assert any(t == f"*Engagement*\n{shown}" for t in texts(reminder))


def test_why_now_gives_the_threshold_and_the_rule_label(make_handoff: Any) -> None:
    _, blocks = handoff_blocks(make_handoff(reason="engagement 62.3 of 60 needed, fit A (85)"))
    assert "*Why now:* engagement 62.3 of 60 needed, fit A (85)" in texts(blocks)[1]


def test_an_sql_alert_links_to_the_lead_page_and_keeps_the_link_after_a_decision() -> None:
    from chalicelib.handoff.blocks import ACTION_VIEW_LEAD, LEAD_LINK_BLOCK_ID
    from chalicelib.handoff.interactions import Ignored, parse_interaction

    msg = HandoffMessage.model_validate(handoff_dict())
    url = "https://baton.example.com/v1/leads/L1/page?expires=1&sig=" + "a" * 64
    _, blocks = handoff_blocks(msg, url)
    (link,) = [b for b in blocks if b.get("block_id") == LEAD_LINK_BLOCK_ID]
    assert link["accessory"] == {"type": "button", "action_id": ACTION_VIEW_LEAD,
                                 "text": {"type": "plain_text", "text": "View lead", "emoji": True}, "url": url}
    assert blocks.index(link) < [b.get("block_id") for b in blocks].index("baton_actions")
    assert check_limits(blocks) == []
    assert check_limits([{**link, "accessory": {**link["accessory"], "url": "x" * 3001}}]) != []
    decided = outcome_blocks(blocks, "accept", "U0ABC", None, AT)
    assert link in decided, "the page stays reachable from the message after Accept"
    _, reminder = reminder_blocks(msg, "reminder", 1.0, url)
    assert [b for b in reminder if b.get("block_id") == LEAD_LINK_BLOCK_ID] == [link]
    assert LEAD_LINK_BLOCK_ID not in json.dumps(handoff_blocks(msg)[1]), "no URL, no link"
    # Slack posts the link button's click too: Baton answers it and does nothing.
    from urllib.parse import urlencode

    click = {"type": "block_actions", "user": {"id": "U0ABC"}, "actions": [{"action_id": ACTION_VIEW_LEAD}]}
    assert isinstance(parse_interaction(urlencode({"payload": json.dumps(click)}).encode()), Ignored)
