"""Helpers of the reliability suite: tokens and secrets, request signing, table snapshots, and an
HTTP sender that behaves like a real webhook sender (retries a 503 after its ``Retry-After``)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.yaml"

# The in-process service (moto) is seeded with these; the live local stack uses its dev defaults.
ADMIN_TOKEN = "rel-admin-token"
INGEST_TOKEN = "rel-ingest-token"
SLACK_SIGNING_SECRET = "rel-slack-signing-secret"
SOURCE_SECRETS = {name: f"rel-{name}-secret" for name in ("typeform", "calendly", "mailchimp", "hubspot", "segment")}
TABLE_VARS = ("BATON_LEADS_TABLE", "BATON_RULESETS_TABLE", "BATON_OUTBOX_TABLE")


# -- signing ------------------------------------------------------------------------------------

@dataclass
class Signer:
    """Signs requests as each vendor (and Slack) would, so fuzzed bodies get past verification."""

    sendgrid_key: Any = None  # an EC P-256 private key; its public half is the sendgrid "secret"

    def sendgrid_public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.sendgrid_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def webhook(self, source: str, method: str, path: str, body: bytes, now: float) -> dict[str, str]:
        stamp = str(int(now))
        secret = SOURCE_SECRETS.get(source, "")
        if source == "segment":
            return {"X-Signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}
        if source == "typeform":
            digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
            return {"Typeform-Signature": f"sha256={digest}"}
        if source == "calendly":
            sig = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            return {"Calendly-Webhook-Signature": f"t={stamp},v1={sig}"}
        if source == "hubspot":
            from chalicelib.sources.hubspot import signature_v3

            millis = str(int(now * 1000))
            url = f"https://localhost{path}"  # what app.py rebuilds for a request with no Host header
            return {"X-HubSpot-Signature-v3": signature_v3(secret, method, url, body, millis),
                    "X-HubSpot-Request-Timestamp": millis}
        if source == "sendgrid" and self.sendgrid_key is not None:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            sig = self.sendgrid_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
            return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                    "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
        return {}


def slack_headers(body: bytes, now: float, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    from chalicelib.handoff.signature import compute_signature

    stamp = str(int(now))
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": compute_signature(secret, stamp, body)}


# -- DynamoDB snapshots -------------------------------------------------------------------------

def snapshot(ddb: Any, tables: list[str]) -> dict[str, list[str]]:
    """Every item of each table, canonical and sorted: equal snapshots mean nothing was stored."""
    out: dict[str, list[str]] = {}
    for table in tables:
        items: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            page = ddb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
            items += [json.dumps(i, sort_keys=True) for i in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        out[table] = sorted(items)
    return out


def table_names() -> list[str]:
    return [os.environ[v] for v in TABLE_VARS]


def error_shape_problems(status: int, body: Any) -> list[str]:
    """What is wrong with a 4xx/5xx body against ``{"error": {"code", "message", "details"}}``."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return [f"{status}: body is not {{'error': {{...}}}}: {body!r:.300}"]
    err = body["error"]
    problems = []
    if set(err) != {"code", "message", "details"}:
        problems.append(f"{status}: error keys are {sorted(err)}")
    if not isinstance(err.get("code"), str) or not err.get("code"):
        problems.append(f"{status}: error.code is {err.get('code')!r}")
    if not isinstance(err.get("message"), str) or not err.get("message", "").strip():
        problems.append(f"{status}: error.message is {err.get('message')!r}")
    if not isinstance(err.get("details"), dict):
        problems.append(f"{status}: error.details is {err.get('details')!r}")
    elif "field" in err["details"] and not isinstance(err["details"]["field"], str):
        problems.append(f"{status}: error.details.field is {err['details']['field']!r}")
    return problems


# -- a real sender over HTTP --------------------------------------------------------------------

@dataclass
class Sender:
    """POSTs JSON like a webhook sender: a 503 (or a dropped connection) is retried after
    ``Retry-After``; any other 5xx is recorded as a failure, never retried away."""

    base_url: str
    token: str
    retries_503: int = 0
    server_errors: list[tuple[int, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                attempts: int = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for _ in range(attempts):
            req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, json.load(resp)
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                status = exc.code
                if status == 503 and exc.headers.get("Retry-After"):
                    with self._lock:
                        self.retries_503 += 1
                    time.sleep(min(float(exc.headers["Retry-After"]), 2.0))
                    continue
                payload = json.loads(raw) if raw else None
                if status >= 500:
                    with self._lock:
                        self.server_errors.append((status, raw.decode(errors="replace")[:300]))
                return status, payload
            except (ConnectionError, urllib.error.URLError):  # the server dropped us: send again
                time.sleep(0.2)
        raise AssertionError(f"{method} {path}: still failing after {attempts} attempts")

    def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        return self.request("POST", path, body, token)

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        return self.request("GET", path, None, token)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def button_ids(post: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (lead id, transition id) pairs a Slack post's buttons carry (``{"l": ..., "t": ...}``)."""
    found: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            value = node.get("value")
            if isinstance(value, str) and value.startswith("{"):
                try:
                    data = json.loads(value)
                except ValueError:
                    data = None
                if isinstance(data, dict) and "l" in data and "t" in data:
                    found.add((str(data["l"]), str(data["t"])))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(post.get("blocks", []))
    return found


# -- the app in-process: chalice.test.Client on moto -------------------------------------------

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


@dataclass
class Service:
    client: Any  # chalice.test.Client
    ddb: Any  # the app's own DynamoDB client
    signer: Signer
    slack_file: Path
    writes: list[str] = field(default_factory=list)  # successful write calls of the app's client
    _known: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        def record(http_response: Any, model: Any, **_: Any) -> None:
            if model.name in WRITES and getattr(http_response, "status_code", 500) < 300:
                self.writes.append(model.name)

        self.ddb.meta.events.register("after-call.dynamodb", record)

    @property
    def tables(self) -> list[str]:
        return table_names()

    def snapshot(self) -> dict[str, list[str]]:
        return snapshot(self.ddb, self.tables)

    def known(self) -> dict[str, list[str]]:
        """The tables as they were after the last write seen (scanned again only after a write)."""
        if self._known is None or self.writes:
            self._known = self.snapshot()
            self.writes.clear()
        return self._known

    def reset(self) -> None:
        """Empty the three tables and forget cached state: the next test starts from nothing."""
        from chalicelib import bootstrap

        for table in self.tables:
            keys = [k["AttributeName"] for k in self.ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
            projection = {"ProjectionExpression": ", ".join(f"#{k}" for k in keys),
                          "ExpressionAttributeNames": {f"#{k}": k for k in keys}}  # fmt: skip
            while items := self.ddb.scan(TableName=table, **projection)["Items"]:
                for key in items:
                    self.ddb.delete_item(TableName=table, Key=key)
        bootstrap.use(None)
        self._known = None
        self.writes.clear()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
        return self.client.http.request(method, path, headers=headers or {}, body=body)


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}  # fmt: skip


@contextlib.contextmanager
def running_service(tmp: Path) -> Iterator[Service]:
    """The data plane in a fresh moto mock, secrets seeded, the app behind ``chalice.test.Client``."""
    import boto3
    import pytest
    from chalice.test import Client
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto import mock_aws

    import app as app_module
    from chalicelib import aws, bootstrap
    from chalicelib.config import settings
    from devstack.cfn import app_env, deploy_data_plane

    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name, value in _AWS_ENV.items():
            mp.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_REGION",
                     "BATON_PUBLIC_URL"):  # fmt: skip
            mp.delenv(name, raising=False)
        aws.reset_clients()
        for name, value in app_env(deploy_data_plane(boto3.client("cloudformation"), "local"), "local").items():
            mp.setenv(name, value)
        signer = Signer(ec.generate_private_key(ec.SECP256R1()))
        ssm = boto3.client("ssm")
        params = {
            "admin-token": ADMIN_TOKEN, "ingest-token": INGEST_TOKEN, "slack/signing-secret": SLACK_SIGNING_SECRET,
            "sources/sendgrid/secret": signer.sendgrid_public_pem(),
            **{f"sources/{name}/secret": value for name, value in SOURCE_SECRETS.items()},
        }  # fmt: skip
        for name, value in params.items():
            ssm.put_parameter(Name=f"/baton/local/{name}", Value=value, Type="SecureString")
        slack_file = tmp / "slack-outbox.jsonl"
        mp.setenv("BATON_SLACK_OUTBOX_FILE", str(slack_file))
        mp.setenv("BATON_REDIRECT_ALLOWLIST", "https://www.example.com/")
        mp.setenv("BATON_CORS_ORIGINS", "https://www.example.com")
        settings.cache_clear()
        bootstrap.use(None)
        try:
            with Client(app_module.app) as client:
                yield Service(client, aws.client("dynamodb"), signer, slack_file)
        finally:
            bootstrap.use(None)
            aws.reset_clients()
            settings.cache_clear()
