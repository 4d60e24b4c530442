"""From a form post to a Slack message and back: outbox, SNS (moto), the consumer, interactions."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.errors import DeliveryFailed
from chalicelib.outbox.items import OutboxItem
from chalicelib.outbox.relay import SnsPublisher
from chalicelib.state import lead_id_for
from tests.app.conftest import ADMIN, FORM_HEADERS, Api

SIGNING_SECRET = "test-signing-secret"
FORM = "email=ada%40acme.io&first_name=Ada&last_name=%3C%21channel%3E&job_title=CTO&company_size=300" \
       "&industry=software&country=US"
ADA = lead_id_for("ada@acme.io")  # (a form's answer names no lead)


@pytest.fixture
def slack_file(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import boto3

    from chalicelib import bootstrap
    from chalicelib.config import settings

    path = tmp_path / "slack.jsonl"
    monkeypatch.setenv("BATON_SLACK_OUTBOX_FILE", str(path))
    settings.cache_clear()
    boto3.client("ssm").put_parameter(Name="/baton/local/slack/signing-secret", Value=SIGNING_SECRET,
                                      Type="SecureString")
    bootstrap.use(None)
    return path


def _sns_event(message: OutboxItem) -> dict[str, Any]:
    attributes = {k: {"Type": "String", "Value": v} for k, v in message.attributes.items()}
    attributes["message_id"] = {"Type": "String", "Value": message.id}
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:x",
                         "Sns": {"Type": "Notification", "MessageId": "m1", "TopicArn": "arn:aws:sns:x",
                                 "Subject": None, "Message": json.dumps(message.body),
                                 "Timestamp": "2026-11-23T10:00:00.000Z", "MessageAttributes": attributes}}]}


def _tick(api: Api, name: str) -> Any:
    return api.client.lambda_.invoke(name, api.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])).payload


def _posts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class FlakyPublisher:
    """SNS down for the first ``failures`` publishes, then the real one."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.real = SnsPublisher(__import__("os").environ["BATON_HANDOFF_TOPIC_ARN"])
        self.published: list[OutboxItem] = []

    def publish(self, item: OutboxItem) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryFailed("SNS is down")
        self.real.publish(item)
        self.published.append(item)


def test_sql_is_announced_once_even_when_sns_fails_for_a_while(api: Api, slack_file: Path) -> None:
    from chalicelib.bootstrap import container

    flaky = FlakyPublisher(failures=2)
    container().extras["publisher"] = flaky
    assert api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS).json_body["ok"]
    assert api.get(f"/v1/leads/{ADA}", headers=ADMIN).json_body["stage"] == "sql"
    sweep = _tick(api, "outbox_sweeper")
    assert sweep == {"sent": 0, "failed": 1}
    assert _tick(api, "outbox_sweeper") == {"sent": 0, "failed": 1}
    assert _tick(api, "outbox_sweeper") == {"sent": 1, "failed": 0}
    assert _tick(api, "outbox_sweeper") == {"sent": 0, "failed": 0}
    assert len(flaky.published) == 1
    item = flaky.published[0]
    # SNS redelivers; the consumer posts once.
    for _ in range(3):
        api.client.lambda_.invoke("slack_notifier", _sns_event(item))
    posts = _posts(slack_file)
    assert len(posts) == 1
    post = posts[0]
    assert post["channel"] == "#sales"
    rendered = json.dumps(post["blocks"])
    assert "<!channel>" not in rendered and "&lt;!channel&gt;" in rendered
    assert "Requested a demo" in rendered


def _signed(body: str, ts: int | None = None) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time()))
    sig = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sig}


def _interaction(lead_id: str, action_id: str, value: dict[str, str], selected: bool = False,
                 response_url: str | None = None) -> str:
    action: dict[str, Any] = {"action_id": action_id, "block_id": "baton_actions", "type": "button",
                              "value": json.dumps(value), "action_ts": "1.2"}
    if selected:
        action = {"action_id": action_id, "block_id": "baton_actions", "type": "static_select",
                  "selected_option": {"value": json.dumps(value), "text": {"type": "plain_text", "text": "x"}},
                  "action_ts": "1.2"}
    payload = {
        "type": "block_actions", "user": {"id": "U123", "username": "rep", "name": "rep"},
        "team": {"id": "T1"}, "channel": {"id": "C1", "name": "sales"},
        "container": {"type": "message", "message_ts": "111.222", "channel_id": "C1"},
        "message": {"ts": "111.222", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]},
        "actions": [action],
        **({"response_url": response_url} if response_url else {}),
    }
    return urlencode({"payload": json.dumps(payload)})


def _handoff_id(api: Api, lead_id: str) -> str:
    history = api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body["stage_history"]
    return str([h for h in history if h["stage"] == "sql"][-1]["transition_id"])


def test_slack_buttons_record_outcomes_only_when_signed(api: Api, slack_file: Path) -> None:
    api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS)
    lead_id = ADA
    handoff = _handoff_id(api, lead_id)
    body = _interaction(lead_id, "baton_accept", {"l": lead_id, "t": handoff})
    unsigned = api.client.http.post("/v1/slack/interactions", headers={"Content-Type":
                                    "application/x-www-form-urlencoded"}, body=body)
    assert unsigned.status_code == 401
    stale = api.client.http.post("/v1/slack/interactions", headers=_signed(body, int(time.time()) - 600), body=body)
    assert stale.status_code == 401
    assert api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body["outcomes"] == []
    ok = api.client.http.post("/v1/slack/interactions", headers=_signed(body), body=body)
    assert ok.status_code == 200, ok.json_body
    assert ok.json_body["outcome"] == "accepted"
    updates = [p for p in _posts(slack_file) if p.get("kind") != "post"]
    assert updates, "the original message is updated to show who acted"
    reject = _interaction(lead_id, "baton_reject", {"l": lead_id, "t": handoff, "r": "no_budget"}, selected=True)
    r = api.client.http.post("/v1/slack/interactions", headers=_signed(reject), body=reject)
    assert r.status_code == 200, r.json_body
    outcomes = api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body["outcomes"]
    assert [(o["outcome"], o["reason"], o["actor"]) for o in outcomes] == [
        ("accepted", None, "slack:U123"), ("rejected", "no_budget", "slack:U123")
    ]


def test_one_outcome_per_decision_however_often_the_click_arrives(api: Api, slack_file: Path) -> None:
    """A double click, or the same signed request replayed within Slack's five minutes."""
    api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS)
    lead_id = ADA
    body = _interaction(lead_id, "baton_accept", {"l": lead_id, "t": _handoff_id(api, lead_id)})
    answers = [api.client.http.post("/v1/slack/interactions", headers=_signed(body), body=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json_body["outcome"] == "accepted" and answers[2].json_body["duplicate"] is True
    outcomes = api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body["outcomes"]
    assert [o["outcome"] for o in outcomes] == ["accepted"]


def test_a_click_acts_only_on_the_hand_off_its_alert_was_about(api: Api, slack_file: Path) -> None:
    api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS)
    lead_id = ADA
    made_up = _interaction(lead_id, "baton_recycle", {"l": lead_id, "t": "t_madeup"})
    r = api.client.http.post("/v1/slack/interactions", headers=_signed(made_up), body=made_up)
    assert r.status_code == 200 and "out of date" in r.json_body["ignored"]
    lead = api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body
    assert lead["stage"] == "sql" and lead["outcomes"] == []


def test_answers_go_only_to_slack_hosts(api: Api, slack_file: Path) -> None:
    api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS)
    lead_id = ADA
    value = {"l": lead_id, "t": _handoff_id(api, lead_id)}
    for url in ("https://evil.example/hook", "http://hooks.slack.com/actions/x", "https://hooks.slack.com.evil.io/a",
                "https://hooks.slack.com@evil.io/a"):
        body = _interaction(lead_id, "baton_accept", value, response_url=url)
        r = api.client.http.post("/v1/slack/interactions", headers=_signed(body), body=body)
        assert r.status_code == 400 and r.json_body["error"]["details"]["field"] == "payload.response_url"
    assert api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body["outcomes"] == []


def test_sla_reminder_then_escalation(api: Api, slack_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.bootstrap import container

    form = FORM.replace("company_size=300", "company_size=5000")  # the enterprise route escalates
    api.post("/v1/forms/demo", raw=form, headers=FORM_HEADERS)
    lead_id = ADA
    c = container()
    start = time.time()
    c.clock = lambda: start + 5 * 3600  # 4 h SLA on the enterprise route: overdue
    c._rulesets = None
    c._leads = None
    moved = {"reminded": 0, "escalated": 0, "deadlines_moved": 1}
    assert _tick(api, "sla_checker") == moved, "the alert is not posted yet: the SLA has not started"
    assert _tick(api, "outbox_sweeper")["sent"] == 1
    handoff = _handoff_id(api, lead_id)
    c.clock = lambda: start + 10 * 3600  # Slack acknowledges it 10 h after the lead became an SQL
    assert c.deliverer().attempt(handoff) == "posted"
    c.clock = lambda: start + 10 * 3600 + 4 * 3600 + 60  # one SLA after that
    assert _tick(api, "sla_checker") == {"reminded": 1, "escalated": 0, "deadlines_moved": 0}
    assert _tick(api, "sla_checker") == {"reminded": 0, "escalated": 0, "deadlines_moved": 0}
    c.clock = lambda: start + 19 * 3600
    assert _tick(api, "sla_checker") == {"reminded": 0, "escalated": 1, "deadlines_moved": 0}
    kinds = [item.kind for item in c.outbox.pending()]
    assert sorted(kinds) == ["escalation", "reminder"]
    lead = api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body
    assert lead["handoff"]["route"] == "enterprise"


def test_erasure_removes_the_pending_alert_and_nothing_is_posted_after(api: Api, slack_file: Path) -> None:
    from chalicelib.bootstrap import container

    api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS)
    lead_id = ADA
    flaky = FlakyPublisher(failures=0)
    container().extras["publisher"] = flaky
    assert _tick(api, "outbox_sweeper")["sent"] == 1  # on SNS; Slack not reached yet
    (item,) = flaky.published
    assert api.client.http.delete(f"/v1/leads/{lead_id}", headers=ADMIN).status_code == 200
    assert container().outbox.delivery(item.id) is None, "the delivery record, with the lead's data, is gone"
    api.client.lambda_.invoke("slack_notifier", _sns_event(item))  # SNS delivers it after the erasure
    _tick(api, "delivery_sweeper")
    assert _posts(slack_file) == []
