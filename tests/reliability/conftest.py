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
from tests.reliability.support import ROOT, Service, running_service


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: fuzzing, concurrency, redelivery and fault injection (tests/reliability)"
    )


# -- in-process: chalice.test.Client on moto ----------------------------------------------------

@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A fresh service per test (what the test writes, no other test sees)."""
    with running_service(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for a module whose tests store nothing (every request is refused)."""
    with running_service(tmp_path_factory.mktemp("service")) as running:
        yield running


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
