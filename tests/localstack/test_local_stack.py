"""`python -m devstack` (what `make run` starts) serves /health and stops cleanly on Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.localstack, pytest.mark.slow]


def _get(url: str) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except OSError:
        return None  # not listening yet


def test_local_stack_serves_health_and_stops_on_sigint(tmp_path: Path) -> None:
    app_port, landing_port = free_port(), free_port()
    env = {
        **os.environ,
        "BATON_MOTO_PORT": str(free_port()),
        "BATON_APP_PORT": str(app_port),
        "BATON_LANDING_PORT": str(landing_port),
        "BATON_SLACK_OUTBOX_FILE": str(tmp_path / "slack-outbox.jsonl"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    # Output goes to a file, not a pipe nobody reads: a full pipe would block the stack.
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
        try:
            deadline, answer = time.monotonic() + 90, None
            while answer is None and time.monotonic() < deadline and proc.poll() is None:
                answer = _get(f"http://127.0.0.1:{app_port}/health")
                if answer is None:  # wait a little, on the process so an early exit ends the loop
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=0.5)

            def log() -> str:
                output.seek(0)
                return output.read().decode(errors="replace")[-4000:]

            assert answer is not None, f"no /health answer (rc={proc.poll()}):\n{log()}"
            status, body = answer
            assert status == 200, body
            assert body["status"] == "ok"
            assert body["stage"] == "local"
            assert all(check["ok"] for check in body["checks"].values())
            # The default rule set is published, and `baton rules publish` publishes through the API.
            api = f"http://127.0.0.1:{app_port}"
            publish = [sys.executable, "-m", "chalicelib.cli", "rules", "publish", "chalicelib/rules/default.yaml",
                       "--api", api, "--token", "dev-admin-token"]
            dry = subprocess.run(publish, cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert dry.returncode == 0 and "dry run" in dry.stdout, dry.stderr
            real = subprocess.run([*publish, "--yes"], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert real.returncode == 0, real.stderr
            assert "as version 2 (previous: 1)" in real.stdout
            if (ROOT / "examples" / "landing" / "index.html").is_file():
                with urllib.request.urlopen(f"http://127.0.0.1:{landing_port}/", timeout=5) as page:
                    assert page.status == 200

            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0, log()
            assert "stopped" in log()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
