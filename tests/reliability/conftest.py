"""Fixtures of the reliability suite (``-m reliability``).

Two ways to run Baton here:

- ``service``: the app in-process through ``chalice.test.Client`` on moto (fresh per test), with
  every secret seeded so fuzzed requests get past authentication and signatures;
- ``live_stack``: the real local stack (``python -m devstack``: moto server, data plane,
  ``chalice local``, the SNS consumer and schedules) as a subprocess on free ports, once per session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import free_port
from tests.reliability.support import (
    ADMIN_TOKEN,
    INGEST_TOKEN,
    ROOT,
    SLACK_SIGNING_SECRET,
    SOURCE_SECRETS,
    Signer,
    snapshot,
    table_names,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: fuzzing, concurrency, redelivery and fault injection (tests/reliability)"
    )


# -- in-process: chalice.test.Client on moto ----------------------------------------------------

@dataclass
class Service:
    client: Any  # chalice.test.Client
    ddb: Any
    signer: Signer
    slack_file: Path

    @property
    def tables(self) -> list[str]:
        return table_names()

    def snapshot(self) -> dict[str, list[str]]:
        return snapshot(self.ddb, self.tables)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
        return self.client.http.request(method, path, headers=headers or {}, body=body)


@pytest.fixture
def service(moto_aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Service]:
    import boto3
    from chalice.test import Client
    from cryptography.hazmat.primitives.asymmetric import ec

    import app as app_module
    from chalicelib import bootstrap
    from chalicelib.aws import client as aws_client
    from chalicelib.config import settings

    signer = Signer(ec.generate_private_key(ec.SECP256R1()))
    ssm = boto3.client("ssm")
    params = {
        "admin-token": ADMIN_TOKEN, "ingest-token": INGEST_TOKEN, "slack/signing-secret": SLACK_SIGNING_SECRET,
        "sources/sendgrid/secret": signer.sendgrid_public_pem(),
        **{f"sources/{name}/secret": value for name, value in SOURCE_SECRETS.items()},
    }  # fmt: skip
    for name, value in params.items():
        ssm.put_parameter(Name=f"/baton/local/{name}", Value=value, Type="SecureString")
    slack_file = tmp_path / "slack-outbox.jsonl"
    monkeypatch.setenv("BATON_SLACK_OUTBOX_FILE", str(slack_file))
    monkeypatch.setenv("BATON_REDIRECT_ALLOWLIST", "https://www.example.com/")
    monkeypatch.setenv("BATON_CORS_ORIGINS", "https://www.example.com")
    monkeypatch.delenv("BATON_PUBLIC_URL", raising=False)
    settings.cache_clear()
    bootstrap.use(None)
    with Client(app_module.app) as client:
        yield Service(client, aws_client("dynamodb"), signer, slack_file)
    bootstrap.use(None)


# -- the real local stack over HTTP ------------------------------------------------------------

LIVE_ADMIN_TOKEN = "dev-admin-token"
LIVE_INGEST_TOKEN = "dev-ingest-token"


@dataclass
class LiveStack:
    app_url: str
    moto_url: str
    slack_outbox: Path
    output: Any  # the stack's stdout/stderr file

    def log(self) -> str:
        self.output.seek(0)
        return str(self.output.read().decode(errors="replace")[-6000:])

    def aws(self, service: str) -> Any:
        """A boto3 client on the stack's moto server (to look at tables and queues, never to fake)."""
        import boto3

        return boto3.session.Session().client(
            service, endpoint_url=self.moto_url, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )  # fmt: skip


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """``python -m devstack`` on free ports, its Slack outbox in a temp dir; SIGINT at the end."""
    app_port, moto_port = free_port(), free_port()
    outbox = tmp_path_factory.mktemp("live") / "slack-outbox.jsonl"
    env = {
        **os.environ,
        "BATON_MOTO_PORT": str(moto_port),
        "BATON_APP_PORT": str(app_port),
        "BATON_LANDING_PORT": str(free_port()),
        "BATON_SLACK_OUTBOX_FILE": str(outbox),
        "BATON_SCHEDULE_SECONDS": "0.3",  # the outbox sweeper: alerts arrive sooner
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("AWS_ENDPOINT_URL", "BATON_ADMIN_TOKEN", "BATON_INGEST_TOKEN", "SLACK_WEBHOOK_URL",
                 "SLACK_BOT_TOKEN", "BATON_PUBLIC_URL"):  # fmt: skip
        env.pop(name, None)
    app_url = f"http://127.0.0.1:{app_port}"
    with tempfile.TemporaryFile() as output:  # a file, not a pipe nobody reads: a full pipe blocks
        proc = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=ROOT, env=env, stdout=output, stderr=output)
        stack = LiveStack(app_url, f"http://127.0.0.1:{moto_port}", outbox, output)
        try:
            deadline = time.monotonic() + 90
            while not _answers(app_url + "/health"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the local stack did not come up (rc={proc.poll()}):\n{stack.log()}")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.25)
            yield stack
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
