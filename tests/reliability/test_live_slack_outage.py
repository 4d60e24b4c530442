"""A Slack outage longer than the local stack's old retry budget, against the live local stack.

Before the outbox drove delivery, an alert had the SNS consumer's 5 attempts (about 70 s on the
local stack, issue 21): Slack down for 2 minutes parked every SQL made meanwhile in the dead-letter
queue, never alerted. Here Slack (a fake on loopback, reached through an incoming-webhook URL)
answers 500 for longer than that while SQLs are made, with the backoff compressed (0.5 s doubling
to 2 s, for an hour) so the alerts keep being tried: after Slack recovers, every one is posted
exactly once, at the channel's pace, and nothing reaches the dead-letter queue.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.handoff.slack_fakes import FakeSlack, Reply, serving_fake_slack
from tests.reliability.support import Sender, button_ids
from tests.stackproc import ADMIN_TOKEN, StackProcess, running_stack

pytestmark = [pytest.mark.reliability, pytest.mark.localstack, pytest.mark.slow]

OLD_BUDGET_SECONDS = 70  # the SNS consumer's 5 attempts on the local stack, as measured in issue 21
OLD_BUDGET_ATTEMPTS = 5
OUTAGE_SECONDS = OLD_BUDGET_SECONDS + 5
SQLS = 5
COMPRESSED = {"BATON_DELIVERY_BACKOFF_SECONDS": "0.5", "BATON_DELIVERY_BACKOFF_MAX_SECONDS": "2",
              "BATON_DELIVERY_RETRY_SECONDS": "3600"}


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with pytest.MonkeyPatch.context() as mp, serving_fake_slack(mp) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(slack: FakeSlack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    env = {**COMPRESSED, "SLACK_WEBHOOK_URL": f"{slack.base}/services/T0/B0/outage"}
    with running_stack(tmp_path_factory.mktemp("outage"), schedule_seconds=0.3, extra_env=env) as running:
        yield running


def _make_sql(sender: Sender, n: int, run: str) -> str:
    email = f"outage-{run}-{n}@acme-{run}.io"
    body = {"event_id": f"{run}-{n}", "type": "demo_request", "email": email,
            "traits": {"job_title": "CTO", "company_size": 300, "industry": "software", "country": "US"}}
    status, answer = sender.post("/v1/events", body)
    assert status == 202 and answer["accepted"] == 1, answer
    status, lead = sender.get(f"/v1/leads?email={quote(email)}&limit=1", token=ADMIN_TOKEN)
    assert status == 200 and lead["stage"] == "sql", lead
    return str(lead["lead_id"])


def _lead(sender: Sender, lead_id: str) -> dict[str, Any]:
    status, lead = sender.get(f"/v1/leads/{lead_id}?limit=1", token=ADMIN_TOKEN)
    assert status == 200, lead
    return dict(lead)


def _outbox(stack: StackProcess) -> list[dict[str, Any]]:
    ddb = stack.aws("dynamodb")
    table = next(t for t in ddb.list_tables()["TableNames"] if t.endswith("-outbox"))
    return [i for i in ddb.scan(TableName=table)["Items"] if "kind" in i]


def _posted(slack: FakeSlack) -> list[tuple[float, set[tuple[str, str]]]]:
    """(when, the (lead, transition) ids its buttons carry) of each post Slack accepted."""
    return [(r.at, button_ids(r.json())) for r in list(slack.requests) if r.status == 200]


def test_every_sql_made_during_a_long_outage_is_alerted_once_after_recovery(
    stack: StackProcess, slack: FakeSlack
) -> None:
    from tests.stackproc import INGEST_TOKEN

    sender = Sender(stack.app_url, INGEST_TOKEN)
    slack.then(Reply(500, "internal_error"))
    down_at = time.monotonic()
    run = uuid.uuid4().hex[:6]
    leads = []
    for n in range(SQLS):  # SQLs made across the outage
        leads.append(_make_sql(sender, n, run))
        time.sleep(OUTAGE_SECONDS / (2 * SQLS))
    while time.monotonic() - down_at < OUTAGE_SECONDS:
        time.sleep(1)
    during = {i["pk"]["S"]: i for i in _outbox(stack) if i["lead_id"]["S"] in leads}
    assert len(during) == SQLS and {i["delivery"]["S"] for i in during.values()} == {"pending"}
    attempts = {k: int(i["attempts"]["N"]) for k, i in during.items()}
    assert min(attempts.values()) > OLD_BUDGET_ATTEMPTS, f"kept retrying: {attempts}"
    shown = [_lead(sender, lead)["handoff"] for lead in leads]  # what the API tells an operator
    assert {h["status"] for h in shown} == {"pending"} and all(h["next_attempt_at"] for h in shown)
    assert min(h["attempts"] for h in shown) > OLD_BUDGET_ATTEMPTS

    slack.then(Reply(200, "ok"))
    back_at = time.time()
    deadline = time.monotonic() + 60
    while True:
        posted = [ids for _, ids in _posted(slack)]
        records = {i["pk"]["S"]: i for i in _outbox(stack) if i["lead_id"]["S"] in leads}
        if {i["delivery"]["S"] for i in records.values()} == {"delivered"} and len(posted) >= SQLS:
            break
        assert time.monotonic() < deadline, f"not all alerted within 60 s of recovery:\n{stack.log()}"
        time.sleep(0.3)
    time.sleep(2)  # a few more sweeps: a duplicate would show up now
    alerted = sorted(lead for ids in (ids for _, ids in _posted(slack)) for lead, _ in ids if lead in leads)
    assert alerted == sorted(leads), json.dumps([sorted(ids) for _, ids in _posted(slack)])
    after = {lead: _lead(sender, lead)["handoff"] for lead in leads}
    assert {h["status"] for h in after.values()} == {"delivered"}
    routes = {lead: str(h["route"]) for lead, h in after.items()}
    by_route: dict[str, list[float]] = {}
    for at, ids in _posted(slack):
        for lead, _ in ids:
            if lead in leads:
                by_route.setdefault(routes[lead], []).append(at)
    assert min(min(times) for times in by_route.values()) >= back_at - 0.5, "nothing posted while Slack was down"
    for route, times in by_route.items():
        # Send slots are a second apart per channel; a sender may post up to a second after its
        # slot began (moto answers in tens of milliseconds a call), so two posts can come closer,
        # never three within a second, and the whole burst takes a second a post.
        times.sort()
        assert all(c - a >= 1.0 for a, _, c in zip(times, times[1:], times[2:], strict=False)), f"{route}: {times}"
        assert times[-1] - times[0] >= len(times) - 2, f"{route}: {times}"
    dlq = stack.aws("sqs")
    url = dlq.get_queue_url(QueueName="baton-local-dlq")["QueueUrl"]
    assert dlq.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", []) == [], "nothing parked"

