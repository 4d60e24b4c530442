"""Shared fixtures. AWS ones are opt-in: pure unit tests never touch boto3 or moto."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cfn import app_env, deploy_data_plane
from devstack.stack import free_port

__all__ = ["free_port"]  # re-exported: tests that start servers need free ports

# Every process a test starts inherits this mark (stacks, chalice local, servers): at the end of the
# session none may still run, or `make test` would leave a CI box (or a laptop) serving 503s.
SESSION_MARK = "BATON_TEST_SESSION"


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ[SESSION_MARK] = uuid.uuid4().hex
    # Stacks started by tests keep nothing, and never touch the developer's .baton/ (a running
    # `make run`'s stack.json, its kept data): a test that wants either sets both itself.
    os.environ["BATON_PERSIST"] = "0"
    os.environ["BATON_LOCAL_DIR"] = tempfile.mkdtemp(prefix="baton-test-local-")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(os.environ.get("BATON_LOCAL_DIR", ""), ignore_errors=True)
    mark = os.environ.get(SESSION_MARK)
    if not mark or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    deadline = time.monotonic() + 10  # a stack's processes take a moment to see their parent gone
    left = leftovers(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftovers(mark)
    if left:
        for pid, _ in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        lines = "\n".join(f"  {pid}: {cmd}" for pid, cmd in left)
        print(f"\nprocesses started by this test session were still running (now killed):\n{lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def leftovers(mark: str) -> list[tuple[int, str]]:
    """Live processes (not this one) whose environment carries ``mark``; Linux only."""
    found = []
    needle = f"{SESSION_MARK}={mark}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":  # a zombie has ended; its parent has just not reaped it
                    found.append((pid, (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]))
        except OSError:
            continue
    return found

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # botocore's account-based endpoints are not routed by moto (DynamoDB Streams): PITFALLS.md.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy credentials and region, no endpoint override, no cached clients: nothing reaches AWS."""
    from chalicelib import aws

    for name, value in _AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture
def moto_aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The data-plane template deployed in a moto mock; the BATON_* variables point at it.

    Yields the stack outputs (``LeadsTableName``, ``HandoffTopicArn``, ...).
    """
    import boto3
    from moto import mock_aws

    from chalicelib.config import settings

    with mock_aws():
        outputs = deploy_data_plane(boto3.client("cloudformation"), "local")
        for name, value in app_env(outputs, "local").items():
            monkeypatch.setenv(name, value)
        settings.cache_clear()
        yield outputs
    settings.cache_clear()
