"""GET /health through chalice.test.Client against the data plane deployed in moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from chalice.test import Client

from chalicelib import __version__

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(moto_aws: dict[str, str]) -> Iterator[Client]:
    from app import app

    # stage "local": the test client applies that stage's environment from .chalice/config.json.
    with Client(app, stage_name="local", project_dir=str(ROOT)) as c:
        yield c


def test_health_ok(client: Client) -> None:
    response = client.http.get("/health")
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["stage"] == "local"
    assert body["checks"] and all(check["ok"] for check in body["checks"].values())


def test_health_degraded_when_a_table_is_missing(client: Client, moto_aws: dict[str, str]) -> None:
    boto3.client("dynamodb").delete_table(TableName=moto_aws["OutboxTableName"])
    response = client.http.get("/health")
    assert response.status_code == 503
    body = json.loads(response.body)
    assert body["status"] == "degraded"
    assert body["checks"]["outbox_table"]["ok"] is False
    assert body["checks"]["leads_table"]["ok"] is True
