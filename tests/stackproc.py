"""The real local stack (``python -m devstack``) as a subprocess on free ports, for tests over HTTP."""

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

from devstack.stack import free_port

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "dev-admin-token"
INGEST_TOKEN = "dev-ingest-token"
# Settings a developer's shell may hold that would change what the stack under test does.
_SCRUB = ("AWS_ENDPOINT_URL", "BATON_ADMIN_TOKEN", "BATON_INGEST_TOKEN", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN",
          "BATON_PUBLIC_URL", "BATON_CORS_ORIGINS", "BATON_REDIRECT_ALLOWLIST")


@dataclass
class StackProcess:
    app_url: str
    landing_url: str  # http://127.0.0.1:<port>, no trailing slash
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
        )


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def running_stack(workdir: Path, schedule_seconds: float = 0.5, extra_env: dict[str, str] | None = None
                  ) -> Iterator[StackProcess]:
    """Start the stack, wait until the API and landing page answer, SIGINT it at the end.

    It keeps no data (the test session sets BATON_PERSIST=0) unless ``extra_env`` says otherwise.
    """
    app_port, landing_port, moto_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(extra_env or {})
    env.update({
        "BATON_MOTO_PORT": str(moto_port), "BATON_APP_PORT": str(app_port), "BATON_LANDING_PORT": str(landing_port),
        "BATON_SLACK_OUTBOX_FILE": str(workdir / "slack-outbox.jsonl"),
        "BATON_SCHEDULE_SECONDS": str(schedule_seconds),  # the outbox sweeper: alerts arrive sooner
        "PYTHONUNBUFFERED": "1",
    })
    with tempfile.TemporaryFile() as output:  # a file, not a pipe nobody reads: a full pipe blocks
        proc = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=ROOT, env=env, stdout=output, stderr=output)
        stack = StackProcess(f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{landing_port}",
                             f"http://127.0.0.1:{moto_port}", workdir / "slack-outbox.jsonl", output)
        try:
            deadline = time.monotonic() + 90
            while not (answers(stack.app_url + "/health") and answers(stack.landing_url + "/index.html")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the local stack did not come up (rc={proc.poll()}):\n{stack.log()}")
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
