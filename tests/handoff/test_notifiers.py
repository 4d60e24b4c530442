"""Notifiers against a fake Slack on loopback: retries honour 429 Retry-After, nobody sleeps."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from slack_fakes import FakeSlack, Reply

from chalicelib.errors import DeliveryFailed
from chalicelib.handoff.notifiers import (
    BotNotifier,
    FileNotifier,
    PostedMessage,
    WebhookNotifier,
    notifier_from_settings,
)
from chalicelib.handoff.retry import RetryPolicy

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*New SQL*", "verbatim": True}}]
TOKEN = "xoxb-0000-fake-token"
OK_POST = {"ok": True, "channel": "C1", "ts": "1.2"}


class Sleeper:
    """Stands in for time.sleep: records what was asked, waits for nothing."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeper() -> Sleeper:
    return Sleeper()


@pytest.fixture
def policy(sleeper: Sleeper) -> RetryPolicy:
    return RetryPolicy(max_retries=3, backoff_seconds=0.5, sleep=sleeper)


def webhook(fake: FakeSlack, policy: RetryPolicy) -> WebhookNotifier:
    return WebhookNotifier(
        {"#sales-emea": f"{fake.base}/webhook/T1/B1/emea", "default": f"{fake.base}/webhook/T1/B2/default"},
        retry=policy,
    )


def bot(fake: FakeSlack, policy: RetryPolicy) -> BotNotifier:
    return BotNotifier(TOKEN, base_url=f"{fake.base}/api/", retry=policy)


def assert_no_secrets(err: DeliveryFailed, fake: FakeSlack) -> None:
    dumped = json.dumps(err.to_dict()) + str(err)
    assert str(fake.port) not in dumped and "webhook" not in dumped.lower().replace("incoming webhook", "")
    assert TOKEN not in dumped


def test_importing_the_handoff_package_does_not_import_slack_sdk() -> None:
    code = (
        "import sys\n"
        "import chalicelib.handoff, chalicelib.handoff.message, chalicelib.handoff.delivery\n"
        "import chalicelib.handoff.blocks, chalicelib.handoff.interactions, chalicelib.handoff.signature\n"
        "from chalicelib.handoff.notifiers import BotNotifier, FileNotifier, WebhookNotifier, notifier_from_settings\n"
        "BotNotifier('xoxb-x'); WebhookNotifier('https://hooks.slack.com/services/T/B/x'); FileNotifier('/tmp/x')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('slack_sdk', 'slack')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- incoming webhooks -----------------------------------------------------------------------


def test_webhook_posts_json_to_the_channels_url(fake_slack: FakeSlack, policy: RetryPolicy) -> None:
    posted = webhook(fake_slack, policy).post("#sales-emea", "New SQL: Jane", BLOCKS)
    assert posted == PostedMessage(channel="#sales-emea", ts=None)
    (request,) = fake_slack.requests
    assert request.path == "/webhook/T1/B1/emea"
    assert request.headers["content-type"].startswith("application/json")
    assert request.json() == {
        "text": "New SQL: Jane",
        "blocks": BLOCKS,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def test_webhook_channel_lookup_and_fallbacks(fake_slack: FakeSlack, policy: RetryPolicy) -> None:
    notifier = webhook(fake_slack, policy)
    notifier.post("sales-emea", "a", BLOCKS)
    notifier.post("#sales-us", "b", BLOCKS)
    assert [r.path for r in fake_slack.requests] == ["/webhook/T1/B1/emea", "/webhook/T1/B2/default"]
    single = WebhookNotifier(f"{fake_slack.base}/webhook/only", retry=policy)
    single.post("#anything", "c", BLOCKS)
    assert fake_slack.requests[-1].path == "/webhook/only"
    mapped = WebhookNotifier({"#a": f"{fake_slack.base}/webhook/a"}, default=f"{fake_slack.base}/webhook/d")
    mapped.retry = policy
    mapped.post("#b", "d", BLOCKS)
    assert fake_slack.requests[-1].path == "/webhook/d"
    unmapped = WebhookNotifier({"#a": f"{fake_slack.base}/webhook/a"}, retry=policy)
    with pytest.raises(DeliveryFailed) as caught:
        unmapped.post("#b", "e", BLOCKS)
    assert caught.value.details == {"channel": "#b", "retryable": False}


def test_webhook_429_waits_retry_after_then_succeeds(
    fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper
) -> None:
    fake_slack.then(Reply(429, "rate_limited", {"Retry-After": "7"}), Reply(200, "ok"))
    webhook(fake_slack, policy).post("#sales-emea", "x", BLOCKS)
    assert sleeper.calls == [7.0]
    assert len(fake_slack.requests) == 2
    assert fake_slack.requests[0].body == fake_slack.requests[1].body


def test_webhook_500_twice_then_ok(fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper) -> None:
    fake_slack.then(Reply(500, "oops"), Reply(503, "oops"), Reply(200, "ok"))
    webhook(fake_slack, policy).post("#sales-emea", "x", BLOCKS)
    assert len(fake_slack.requests) == 3
    assert sleeper.calls == [0.5, 1.0]


def test_webhook_always_500_fails_after_bounded_retries(
    fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper
) -> None:
    fake_slack.then(Reply(500, "internal_error"))
    with pytest.raises(DeliveryFailed) as caught:
        webhook(fake_slack, policy).post("#sales-emea", "x", BLOCKS)
    assert len(fake_slack.requests) == 4  # the first try and 3 retries
    assert sleeper.calls == [0.5, 1.0, 2.0]
    assert caught.value.details == {"status": 500, "retryable": True, "error": "internal_error"}
    assert_no_secrets(caught.value, fake_slack)


def test_webhook_client_errors_are_not_retried(
    fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper
) -> None:
    fake_slack.then(Reply(404, "no_service"))
    with pytest.raises(DeliveryFailed) as caught:
        webhook(fake_slack, policy).post("#sales-emea", "x", BLOCKS)
    assert len(fake_slack.requests) == 1 and sleeper.calls == []
    assert caught.value.details == {"status": 404, "retryable": False, "error": "no_service"}


def test_a_long_retry_after_is_handed_back_not_slept(
    fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper
) -> None:
    fake_slack.then(Reply(429, "rate_limited", {"Retry-After": "120"}))
    with pytest.raises(DeliveryFailed) as caught:
        webhook(fake_slack, policy).post("#sales-emea", "x", BLOCKS)
    assert len(fake_slack.requests) == 1 and sleeper.calls == []
    assert caught.value.details["retry_after"] == 120.0
    assert caught.value.details["retryable"] is True


def test_an_html_error_page_is_not_echoed(fake_slack: FakeSlack, policy: RetryPolicy) -> None:
    fake_slack.then(Reply(502, "<html><body>Bad gateway for /webhook/T1/B1/emea</body></html>"))
    with pytest.raises(DeliveryFailed) as caught:
        webhook(fake_slack, policy).post("#sales-emea", "x", BLOCKS)
    assert "error" not in caught.value.details
    assert_no_secrets(caught.value, fake_slack)


def test_webhooks_cannot_update(fake_slack: FakeSlack, policy: RetryPolicy) -> None:
    notifier = webhook(fake_slack, policy)
    assert notifier.can_update is False
    with pytest.raises(DeliveryFailed, match="response_url"):
        notifier.update("#sales-emea", "1.2", "x", BLOCKS)
    assert fake_slack.requests == []


@pytest.mark.parametrize("make", [webhook, bot])
def test_respond_replaces_the_original_through_response_url(
    fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper, make: Any
) -> None:
    fake_slack.then(Reply(500, "x"), Reply(200, "ok"))
    make(fake_slack, policy).respond(f"{fake_slack.base}/actions/T1/123/abc", "Accepted", BLOCKS)
    assert [r.path for r in fake_slack.requests] == ["/actions/T1/123/abc"] * 2
    assert fake_slack.requests[-1].json() == {"text": "Accepted", "blocks": BLOCKS, "replace_original": True}
    assert sleeper.calls == [0.5]


def test_connection_errors_are_retried_then_fail(policy: RetryPolicy, sleeper: Sleeper) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/webhook/T/B/secret", retry=policy)
    with pytest.raises(DeliveryFailed) as caught:
        notifier.post("#x", "x", BLOCKS)
    assert sleeper.calls == [0.5, 1.0, 2.0]
    assert caught.value.details["status"] is None and caught.value.details["retryable"] is True
    assert "secret" not in json.dumps(caught.value.to_dict()) and str(port) not in str(caught.value)


def test_non_http_urls_are_refused_without_echo() -> None:
    with pytest.raises(DeliveryFailed) as caught:
        WebhookNotifier("hooks.slack.com/services/T/B/secret")
    assert "secret" not in str(caught.value) and "secret" not in repr(caught.value.details)


# --- bot token -------------------------------------------------------------------------------


def test_bot_posts_with_chat_post_message(fake_slack: FakeSlack, policy: RetryPolicy) -> None:
    fake_slack.then(Reply(200, OK_POST))
    posted = bot(fake_slack, policy).post("#sales-emea", "New SQL: Jane", BLOCKS)
    assert posted == PostedMessage(channel="C1", ts="1.2")
    (request,) = fake_slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    body = request.json()
    assert (body["channel"], body["text"], body["blocks"]) == ("#sales-emea", "New SQL: Jane", BLOCKS)
    assert body["unfurl_links"] is False


def test_bot_updates_with_chat_update(fake_slack: FakeSlack, policy: RetryPolicy) -> None:
    fake_slack.then(Reply(200, OK_POST))
    notifier = bot(fake_slack, policy)
    assert notifier.can_update is True
    assert notifier.update("C1", "1.2", "Accepted", BLOCKS) == PostedMessage("C1", "1.2")
    request = fake_slack.requests[0]
    assert request.path == "/api/chat.update"
    assert {k: request.json()[k] for k in ("channel", "ts", "text")} == {
        "channel": "C1",
        "ts": "1.2",
        "text": "Accepted",
    }


def test_bot_429_waits_retry_after_then_succeeds(
    fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper
) -> None:
    fake_slack.then(
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}), Reply(200, OK_POST)
    )
    assert bot(fake_slack, policy).post("#sales-emea", "x", BLOCKS).ts == "1.2"
    assert sleeper.calls == [7.0]
    assert len(fake_slack.requests) == 2


def test_bot_500_twice_then_ok(fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper) -> None:
    fake_slack.then(Reply(500, "oops"), Reply(500, "oops"), Reply(200, OK_POST))
    assert bot(fake_slack, policy).post("#sales-emea", "x", BLOCKS) == PostedMessage("C1", "1.2")
    assert len(fake_slack.requests) == 3
    assert sleeper.calls == [0.5, 1.0]


def test_bot_always_500_fails_after_bounded_retries(
    fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper
) -> None:
    fake_slack.then(Reply(500, "<html>down</html>"))
    with pytest.raises(DeliveryFailed) as caught:
        bot(fake_slack, policy).post("#sales-emea", "x", BLOCKS)
    assert len(fake_slack.requests) == 4
    assert sleeper.calls == [0.5, 1.0, 2.0]
    assert caught.value.details == {"status": 500, "retryable": True}
    assert_no_secrets(caught.value, fake_slack)


def test_bot_api_errors_are_not_retried(fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper) -> None:
    fake_slack.then(Reply(200, {"ok": False, "error": "channel_not_found"}))
    notifier = bot(fake_slack, policy)
    with pytest.raises(DeliveryFailed) as caught:
        notifier.post("#nowhere", "x", BLOCKS)
    assert caught.value.details == {"status": 200, "retryable": False, "error": "channel_not_found"}
    assert len(fake_slack.requests) == 1 and sleeper.calls == []
    assert TOKEN not in repr(notifier)


def test_retries_are_bounded_across_mixed_failures(
    fake_slack: FakeSlack, policy: RetryPolicy, sleeper: Sleeper
) -> None:
    fake_slack.then(
        Reply(429, {"ok": False}, {"Retry-After": "1"}),
        Reply(500, "x"),
        Reply(429, {}, {"Retry-After": "2"}),
        Reply(503, "x"),
    )
    with pytest.raises(DeliveryFailed):
        bot(fake_slack, policy).post("#a", "x", BLOCKS)
    assert len(fake_slack.requests) == 4
    assert sleeper.calls == [1.0, 1.0, 2.0]


# --- local outbox file -----------------------------------------------------------------------


def test_file_notifier_appends_json_lines_and_prints_where_not_what(tmp_path: Path) -> None:
    out = io.StringIO()
    clock = iter([1000.0, 1000.0, 999.0])
    path = tmp_path / "outbox" / "slack.jsonl"
    notifier = FileNotifier(path, stream=out, clock=lambda: next(clock))
    first = notifier.post("#sales-emea", "New SQL: Tom &amp; Jerry\nat Acme", BLOCKS)
    second = notifier.post("#sales-emea", "again", BLOCKS)
    third = notifier.post("#sales-emea", "and again", BLOCKS)
    assert first.ts == "1000.000000" and second.ts is not None and third.ts is not None
    assert first.ts < second.ts < third.ts  # unique and increasing, like Slack's
    notifier.update("#sales-emea", "1000.000000", "Accepted", BLOCKS)
    notifier.respond("https://hooks.slack.com/actions/T/1/secret", "Accepted", BLOCKS, replace_original=False)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["post", "post", "post", "update", "respond"]
    assert records[0] == {
        "kind": "post",
        "channel": "#sales-emea",
        "ts": "1000.000000",
        "text": "New SQL: Tom &amp; Jerry\nat Acme",
        "blocks": BLOCKS,
    }
    assert records[3]["ts"] == "1000.000000"
    assert records[4]["replace_original"] is False and "secret" not in path.read_text()
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[0] == f"[slack post] #sales-emea ts=1000.000000: written to {path}"
    assert "Tom" not in out.getvalue(), "no personal data on the terminal"


def test_file_notifier_reports_an_unwritable_outbox(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DeliveryFailed, match="not writable"):
        FileNotifier(blocker / "slack.jsonl", stream=io.StringIO()).post("#a", "x", BLOCKS)


# --- choosing a notifier ---------------------------------------------------------------------


def test_notifier_from_settings_prefers_bot_then_webhook_then_file(tmp_path: Path) -> None:
    outbox = str(tmp_path / "slack.jsonl")
    hook = "https://hooks.slack.com/services/T/B/x"
    assert isinstance(notifier_from_settings(hook, {"#a": hook}, "xoxb-1", outbox), BotNotifier)
    assert isinstance(notifier_from_settings(hook, None, None, outbox), WebhookNotifier)
    assert isinstance(notifier_from_settings(None, {"#a": hook}, "", outbox), WebhookNotifier)
    assert isinstance(notifier_from_settings("", {}, None, outbox), FileNotifier)
    with pytest.raises(DeliveryFailed, match="no Slack settings"):
        notifier_from_settings(None, None, None, "")


def test_webhook_map_plus_single_url_as_default(fake_slack: FakeSlack, policy: RetryPolicy) -> None:
    notifier = notifier_from_settings(
        f"{fake_slack.base}/webhook/default", {"#a": f"{fake_slack.base}/webhook/a"}, None, "", retry=policy
    )
    notifier.post("#a", "x", BLOCKS)
    notifier.post("#b", "x", BLOCKS)
    assert [r.path for r in fake_slack.requests] == ["/webhook/a", "/webhook/default"]
