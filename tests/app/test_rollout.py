"""Publishing re-scores every lead (fanned out through a queue); shadows pilot a candidate."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from chalicelib.queues import InMemoryQueue
from tests.app.conftest import ADMIN, INGEST, Api, table_items


@pytest.fixture
def queue(api: Api) -> InMemoryQueue:
    from chalicelib.bootstrap import container

    q = InMemoryQueue()
    container().extras["queue"] = q
    return q


def _drain(api: Api, queue: InMemoryQueue) -> int:
    """Deliver queued work to the SQS handler, as Lambda would (one message per invocation)."""
    handled = 0
    while (message := queue.take()) is not None:
        event = api.client.events.generate_sqs_event(message_bodies=[json.dumps(message)], queue_name="rescore")
        api.client.lambda_.invoke("rescore_worker", event)
        handled += 1
    return handled


def _ruleset(api: Api, mql_engagement: int, name: str = "candidate") -> int:
    from chalicelib.rules.loader import default_ruleset

    body = default_ruleset().model_dump(mode="json", by_alias=True)
    body["name"] = name
    body["stages"]["mql"]["when"] = {"all": [{"field": "engagement", "op": "gte", "value": mql_engagement}]}
    created = api.post("/v1/rulesets", body, headers=ADMIN)
    assert created.status_code == 201, created.json_body
    return int(created.json_body["version"])


def _views(api: Api, n: int) -> None:
    events = [{"event_id": f"v{i}-{j}", "type": "page_view", "email": f"lead{i}@acme.io",
               "occurred_at": f"2026-11-{10 + j:02d}T10:00:00Z", "properties": {"path": "/product/x"}}
              for i in range(n) for j in range(2)]
    assert api.post("/v1/events", {"events": events}, headers=INGEST).status_code == 202


def _stages(api: Api, n: int) -> list[str]:
    return [api.get(f"/v1/leads?email=lead{i}@acme.io", headers=ADMIN).json_body["stage"] for i in range(n)]


def test_publish_rescores_every_lead_and_sends_one_digest(api: Api, queue: InMemoryQueue) -> None:
    v1 = _ruleset(api, 1000, "strict")
    api.post(f"/v1/rulesets/{v1}/publish", headers=ADMIN)
    _drain(api, queue)
    _views(api, 30)
    assert set(_stages(api, 30)) == {"lead"}
    v2 = _ruleset(api, 5, "loose")
    published = api.post(f"/v1/rulesets/{v2}/publish", headers=ADMIN).json_body
    assert published["rescore"]["mode"] == "active"
    running = api.get(f"/v1/rulesets/{v2}", headers=ADMIN).json_body["rescore"][0]
    assert running["status"] == "running"
    _drain(api, queue)
    status = api.get(f"/v1/rulesets/{v2}", headers=ADMIN).json_body["rescore"][0]
    assert status == {**status, "status": "complete", "leads_total": 30, "leads_done": 30, "failures": 0,
                      "transitions": 30, "alerted": 0}
    assert set(_stages(api, 30)) == {"mql"}
    outbox = table_items(os.environ["BATON_OUTBOX_TABLE"])
    digests = [i for i in outbox if i.get("kind", {}).get("S") == "digest"]
    assert len(digests) == 1
    digest = digests[0]["body"]["S"]
    assert json.loads(digest)["total"] == 30
    from chalicelib.handoff.delivery import render
    from chalicelib.outbox.items import OutboxItem

    # what the Slack consumer posts for it
    channel, text, blocks = render(OutboxItem("digest", "digest", json.loads(digest), {}, 0.0))
    assert channel == "#marketing-mql" and "30 stage changes" in text and "and 10 more" in json.dumps(blocks)
    assert not [i for i in outbox if i.get("kind", {}).get("S") == "handoff"], "no flood of individual alerts"


def test_pages_are_idempotent_and_live_events_are_kept(api: Api, queue: InMemoryQueue) -> None:
    _views(api, 3)
    v1 = _ruleset(api, 5)
    api.post(f"/v1/rulesets/{v1}/publish", headers=ADMIN)
    plans = list(queue.messages)
    queue.messages.clear()
    for plan in plans + plans:  # a plan redelivered (e.g. after a crash) sends its pages again
        _deliver(api, plan)
    pages = list(queue.messages)
    queue.messages.clear()
    # A live event lands while the re-score is under way: scored now, kept for the replay.
    api.post("/v1/events", {"event_id": "live", "type": "email_click", "email": "lead0@acme.io"}, headers=INGEST)
    for page in pages + pages:  # every page delivered twice
        _deliver(api, page)
    status = api.get(f"/v1/rulesets/{v1}", headers=ADMIN).json_body["rescore"][0]
    assert (status["leads_total"], status["leads_done"], status["status"]) == (3, 3, "complete")
    lead = api.get("/v1/leads?email=lead0@acme.io", headers=ADMIN).json_body
    assert lead["event_count"] == 3 and lead["stage"] == "mql"


def _deliver(api: Api, message: dict[str, Any]) -> None:
    event = api.client.events.generate_sqs_event(message_bodies=[json.dumps(message)], queue_name="rescore")
    api.client.lambda_.invoke("rescore_worker", event)


def test_shadow_scores_alongside_without_alerts_then_promotes(api: Api, queue: InMemoryQueue) -> None:
    strict = _ruleset(api, 1000, "strict")
    api.post(f"/v1/rulesets/{strict}/publish", headers=ADMIN)
    _drain(api, queue)
    _views(api, 4)
    candidate = _ruleset(api, 5, "loose")
    r = api.post(f"/v1/rulesets/{candidate}/shadow", headers=ADMIN)
    assert r.status_code == 200 and r.json_body["shadow"] == candidate
    _drain(api, queue)  # the shadow's view of existing leads starts from their history
    api.post("/v1/events", {"type": "page_view", "email": "new@acme.io", "properties": {"path": "/pricing"}},
             headers=INGEST)
    assert _stages(api, 4) == ["lead"] * 4
    compare = api.get("/v1/rulesets/shadow/compare", headers=ADMIN).json_body
    assert compare["counts"]["active"]["mql"] == 0
    assert compare["counts"]["shadow"]["mql"] == 5
    first = compare["disagreements"][0]
    assert (first["active_stage"], first["shadow_stage"], first["right"]) == ("lead", "mql", "undecided")
    assert first["why"][-2:] == ["active: still a lead", first["why"][-1]] and "shadow: mql" in first["why"][-1]
    handoffs = [i for i in table_items(os.environ["BATON_OUTBOX_TABLE"]) if i.get("kind", {}).get("S") == "handoff"]
    assert handoffs == []
    promoted = api.post("/v1/rulesets/shadow/promote", headers=ADMIN).json_body
    assert promoted["active"] == candidate
    _drain(api, queue)
    assert _stages(api, 4) == ["mql"] * 4
    assert api.post("/v1/rulesets/shadow/promote", headers=ADMIN).status_code == 409


def test_shadow_keeps_the_hot_path_at_two_round_trips(api: Api, queue: InMemoryQueue) -> None:
    from chalicelib.aws import client

    candidate = _ruleset(api, 5)
    api.post(f"/v1/rulesets/{candidate}/shadow", headers=ADMIN)
    _views(api, 1)  # warms the rule-set cache
    calls: list[str] = []
    client("dynamodb").meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    for n in range(5):
        api.post("/v1/events", {"event_id": f"hp{n}", "type": "page_view", "email": "lead0@acme.io"},
                 headers=INGEST)
    assert calls.count("GetItem") == 5 and calls.count("TransactWriteItems") == 5
    assert len([c for c in calls if c not in ("GetParameter",)]) == 10
