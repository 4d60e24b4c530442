"""Slack delivery: what posting an alert through the outbox costs, and how fast one sweeper drains
a backlog.

Commits SQL alerts for a few channels into the outbox table on an in-process moto server, publishes
them (the relay, with SNS stubbed out), then has one delivery sweeper post them to a Slack
stand-in that answers at once. The pace is set to a millisecond, so the figure is the deliverer's
own cost (in AWS a channel takes one post a second). Every DynamoDB call is counted. Baseline in
the same run: a bare PutItem on the same endpoint, the cost of one store call here.

    .venv/bin/python bench/delivery.py [--alerts 300] [--channels 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Slack:
    def __init__(self) -> None:
        self.posts = 0

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self.posts += 1


class NoSns:
    def publish(self, item: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--channels", type=int, default=3)
    args = parser.parse_args()

    from chalicelib.aws import client
    from chalicelib.handoff.delivery import Deliverer
    from chalicelib.outbox.items import OutboxItem
    from chalicelib.outbox.relay import relay
    from chalicelib.queues import InMemoryQueue
    from chalicelib.store.dynamodb import DynamoDBOutbox
    from devstack.cfn import data_plane_on_moto
    from tests.handoff.slack_fakes import handoff_dict

    with data_plane_on_moto() as env:
        table = env["BATON_OUTBOX_TABLE"]
        ddb = client("dynamodb")
        calls: list[str] = []
        spent: dict[str, float] = {}
        began: list[float] = []
        ddb.meta.events.register("before-call.dynamodb", lambda **_: began.append(time.perf_counter()))

        def after(model: Any, **_: Any) -> None:
            calls.append(model.name)
            spent[model.name] = spent.get(model.name, 0.0) + time.perf_counter() - began.pop()

        ddb.meta.events.register("after-call.dynamodb", after)

        start = time.perf_counter()
        for n in range(100):
            ddb.put_item(TableName=table, Item={"pk": {"S": f"floor-{n}"}})
        floor_ms = (time.perf_counter() - start) * 10
        for n in range(100):
            ddb.delete_item(TableName=table, Key={"pk": {"S": f"floor-{n}"}})

        outbox = DynamoDBOutbox(table)
        now = time.time()
        for n in range(args.alerts):
            body = handoff_dict(transition_id=f"t_{n:05d}", lead_id=f"L{n:05d}")
            body["route"] = {**body["route"], "channel": f"#sales-{n % args.channels}"}
            outbox.put(OutboxItem(f"t_{n:05d}", "handoff", body, {"stage": "sql"}, now))
        calls.clear()
        relay(outbox, NoSns(), limit=args.alerts, now=now - 60)  # published a minute ago: all due
        relay_calls = len(calls)

        slack = Slack()
        deliverer = Deliverer(outbox, lambda: slack, InMemoryQueue(), pace_seconds=0.001)
        calls.clear()
        spent.clear()
        start = time.perf_counter()
        while slack.posts < args.alerts:
            deliverer.sweep(0)
        seconds = time.perf_counter() - start
        per_alert = len(calls) / args.alerts
        kinds = {name: f"{calls.count(name)} x {spent[name] * 1000 / calls.count(name):.1f} ms"
                 for name in sorted(set(calls))}
        assert outbox.backlog().undelivered == 0
    ms = seconds * 1000 / args.alerts
    print(f"{args.alerts} alerts on {args.channels} channels posted by one sweeper in {seconds:.2f} s: "
          f"{ms:.1f} ms an alert, {args.alerts / seconds:.0f} alerts/s")
    print(f"store calls an alert: {per_alert:.2f} to post ({kinds}), "
          f"{relay_calls / args.alerts:.2f} to publish")
    print(f"one store call here (a bare PutItem): {floor_ms:.1f} ms; "
          f"the alert costs {ms / floor_ms:.1f} of them (Slack itself answered at once)")
    print(json.dumps({"alerts": args.alerts, "ms_per_alert": round(ms, 2), "alerts_per_s": round(args.alerts / seconds, 1),
                      "store_calls_per_alert": round(per_alert, 2),
                      "publish_calls_per_alert": round(relay_calls / args.alerts, 2),
                      "put_item_ms": round(floor_ms, 2), "ratio": round(ms / floor_ms, 2)}))


if __name__ == "__main__":
    main()
