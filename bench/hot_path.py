"""Hot-path cost of one webhook: DynamoDB round trips per event and in-process latency.

Runs the real service (LeadService + DynamoDB repositories) against an in-process moto server,
counts DynamoDB API calls with botocore's event hooks, and compares latency with the floor: a
bare GetItem + PutItem pair on the same endpoint, measured in the same run. Then late events (dated
before each lead's newest): each costs one more call, the Query of the lead's history it replays.

    .venv/bin/python bench/hot_path.py [--events 400] [--late 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--late", type=int, default=40, help="late events, after the in-order ones")
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    from devstack.stack import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would drown the figures
    server.start()
    os.environ.update({
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    })
    try:
        import boto3

        from chalicelib.aws import client
        from chalicelib.bootstrap import dynamodb_container
        from chalicelib.config import Settings
        from chalicelib.events import Event
        from devstack.cfn import app_env, deploy_data_plane

        env = app_env(deploy_data_plane(boto3.client("cloudformation"), "bench"), "bench")
        c = dynamodb_container(Settings.from_env(env))
        calls: list[str] = []
        client("dynamodb").meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))

        leads = [f"lead{i}@acme.io" for i in range(20)]
        c.leads.ingest([Event("warm", "page_view", time.time(), leads[0], None, {"path": "/"}, {}, "api")])
        c.rulesets.active()  # the rule set read happens once per cache period, not per event
        calls.clear()
        latencies: list[float] = []
        for n in range(args.events):
            event = Event(f"e{n}", "page_view", time.time(), leads[n % len(leads)], None,
                          {"path": "/pricing" if n % 3 else "/blog/x"}, {}, "api")
            start = time.perf_counter()
            c.leads.ingest([event])
            latencies.append((time.perf_counter() - start) * 1000)
        per_event = len(calls) / args.events
        kinds = {name: calls.count(name) for name in sorted(set(calls))}

        # Late events: dated an hour back, older than each lead's newest (its history is replayed).
        calls.clear()
        late_latencies: list[float] = []
        for n in range(args.late):
            event = Event(f"late{n}", "email_click", time.time() - 3600, leads[n % len(leads)], None, {}, {}, "api")
            start = time.perf_counter()
            c.leads.ingest([event])
            late_latencies.append((time.perf_counter() - start) * 1000)
        late_calls = len(calls) / args.late
        late_kinds = {name: calls.count(name) for name in sorted(set(calls))}

        ddb = client("dynamodb")
        floor: list[float] = []
        for n in range(args.events):
            start = time.perf_counter()
            ddb.get_item(TableName=env["BATON_LEADS_TABLE"], Key={"pk": {"S": f"F#{n % 20}"}, "sk": {"S": "X"}})
            ddb.put_item(TableName=env["BATON_LEADS_TABLE"],
                         Item={"pk": {"S": f"F#{n % 20}"}, "sk": {"S": "X"}, "data": {"S": "x" * 800}})
            floor.append((time.perf_counter() - start) * 1000)
    finally:
        server.stop()

    p50, p99, floor_p50 = statistics.median(latencies), percentile(latencies, 99), statistics.median(floor)
    print(f"events: {args.events} across 20 leads, DynamoDB calls: {kinds}")
    print(f"DynamoDB calls per event: {per_event:.2f} (budget: 2)")
    print(f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms; floor (GetItem+PutItem) p50 {floor_p50:.2f} ms")
    print(f"ratio vs floor: {p50 / floor_p50:.2f}x")
    late_p50 = statistics.median(late_latencies)
    print(f"late events: {args.late} (each lead's history of ~{args.events // len(leads)} events replayed), "
          f"DynamoDB calls: {late_kinds}")
    print(f"DynamoDB calls per late event: {late_calls:.2f} (budget: 3); latency p50 {late_p50:.2f} ms")
    print(json.dumps({
        "events": args.events, "dynamodb_calls_per_event": round(per_event, 3), "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3), "floor_p50_ms": round(floor_p50, 3), "ratio_vs_floor": round(p50 / floor_p50, 3),
        "late_events": args.late, "late_event_calls": round(late_calls, 3), "late_p50_ms": round(late_p50, 3),
    }))


if __name__ == "__main__":
    main()
