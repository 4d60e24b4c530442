"""Many writers, one lead, a real DynamoDB endpoint (moto server): no lost update, no double count."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.engine import apply_event, new_lead
from chalicelib.errors import Unavailable
from chalicelib.events import Event
from chalicelib.state import lead_id_for

EMAIL = "many@acme.io"


@pytest.fixture
def moto_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from devstack.cfn import app_env, deploy_data_plane
    from devstack.stack import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto's DynamoDB is not safe under concurrent requests (a racing TransactWriteItems can fail
    # half-applied); the local stack patches it to behave like DynamoDB, and so does this server.
    from devstack.moto_patches import serialize_moto_dynamodb

    serialize_moto_dynamodb()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    try:
        yield app_env(deploy_data_plane(boto3.client("cloudformation"), "conc"), "conc")
    finally:
        server.stop()


def _events() -> list[Event]:
    # Uncapped rules: their decayed sum does not depend on arrival order even without the late-event
    # replay (tests/test_event_time.py covers caps and frequency rules).
    return [
        Event(f"c{i}", "trial_signup" if i % 3 else "meeting_canceled", 1_700_000_000.0 + i * 3600, EMAIL, None,
              {}, {}, "api")
        for i in range(80)
    ]


def test_parallel_writers_equal_the_sequential_result(moto_server: dict[str, str]) -> None:
    from chalicelib.bootstrap import dynamodb_container
    from chalicelib.config import Settings

    c = dynamodb_container(Settings.from_env(moto_server))
    events = _events()

    def send(event: Event) -> None:
        # A webhook sender retries on 503 (what the API answers when retries run out).
        for _ in range(5):
            try:
                c.leads.ingest([event])
                return
            except Unavailable:
                continue
        raise AssertionError("still unavailable after 5 deliveries")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, events + events[:20]))  # with redeliveries

    rs = c.rulesets.active()
    expected = new_lead(lead_id_for(EMAIL), EMAIL)
    for event in sorted(events, key=lambda e: e.ts):
        apply_event(expected, event, rs, event.ts)
    stored = c.leads_repo.get(lead_id_for(EMAIL))
    assert stored is not None
    assert stored.state.event_count == len(events)
    assert len(c.leads_repo.events(lead_id_for(EMAIL))) == len(events)
    # Arrival order differs from time order; decayed sums do not depend on it.
    from chalicelib.engine import engagement_at

    t = max(e.ts for e in events)
    assert engagement_at(stored.state, rs, t) == pytest.approx(engagement_at(expected, rs, t), rel=1e-9)
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1")
