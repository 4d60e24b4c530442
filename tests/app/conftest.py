"""The app on moto through ``chalice.test.Client``: real routes, real DynamoDB calls, no network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

ADMIN = {"Authorization": "Bearer test-admin"}
INGEST = {"Authorization": "Bearer test-ingest"}
JSON_HEADERS = {"Content-Type": "application/json"}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}


class Api:
    def __init__(self, client: Any) -> None:
        self.client = client

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: str | bytes | None = None
             ) -> Any:
        data = raw if raw is not None else json.dumps(body)
        return self.client.http.post(path, headers={**JSON_HEADERS, **(headers or {})}, body=data)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.http.get(path, headers=headers or {})


@pytest.fixture
def api(moto_aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    import boto3
    from chalice.test import Client

    import app as app_module
    from chalicelib import bootstrap

    ssm = boto3.client("ssm")
    for name, value in {"admin-token": "test-admin", "ingest-token": "test-ingest"}.items():
        ssm.put_parameter(Name=f"/baton/local/{name}", Value=value, Type="SecureString")
    monkeypatch.setenv("BATON_REDIRECT_ALLOWLIST", "https://www.example.com/")
    monkeypatch.setenv("BATON_CORS_ORIGINS", "https://www.example.com")
    bootstrap.use(None)
    with Client(app_module.app) as client:
        yield Api(client)
    bootstrap.use(None)


def table_items(table: str) -> list[dict[str, Any]]:
    import boto3

    return boto3.client("dynamodb").scan(TableName=table)["Items"]
