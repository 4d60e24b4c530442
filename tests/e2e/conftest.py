"""Fixtures for browser tests: the real local stack (``python -m devstack``) and headless Chromium.

The browser is the system Chromium (``/usr/bin/chromium``, installed with apt when missing and we
may); Playwright never downloads one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BATON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ADMIN_TOKEN = "dev-admin-token"


@dataclass
class RunningStack:
    app_url: str
    landing_url: str  # http://127.0.0.1:<port>, no trailing slash
    outbox: Path
    log: Any  # () -> str: the stack's output so far, for assertion messages

    def api(self, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.app_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """``python -m devstack`` on free ports, its Slack outbox in a temp dir; SIGINT at the end."""
    app_port, landing_port = free_port(), free_port()
    outbox = tmp_path_factory.mktemp("stack") / "slack-outbox.jsonl"
    env = {
        **os.environ,
        "BATON_MOTO_PORT": str(free_port()),
        "BATON_APP_PORT": str(app_port),
        "BATON_LANDING_PORT": str(landing_port),
        "BATON_SLACK_OUTBOX_FILE": str(outbox),
        "BATON_SCHEDULE_SECONDS": "0.5",  # the outbox sweeper: alerts arrive sooner
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("AWS_ENDPOINT_URL", "BATON_ADMIN_TOKEN", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN",
                 "BATON_CORS_ORIGINS", "BATON_REDIRECT_ALLOWLIST"):  # fmt: skip
        env.pop(name, None)
    app_url, landing_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{landing_port}"
    # Output goes to a file, not a pipe nobody reads: a full pipe would block the stack.
    with tempfile.TemporaryFile() as output:

        def log() -> str:
            output.seek(0)
            return output.read().decode(errors="replace")[-4000:]

        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
        try:
            deadline = time.monotonic() + 90
            while not (_answers(app_url + "/health") and _answers(landing_url + "/index.html")):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the local stack did not come up (rc={proc.poll()}):\n{log()}")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.25)
            yield RunningStack(app_url, landing_url, outbox, log)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _ensure_chromium() -> str | None:
    """The path of a usable Chromium, installing the distro package when missing; None if we cannot."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
            return None
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (requirements-dev.txt)"
    )
    executable = _ensure_chromium()
    if executable is None:
        pytest.skip(f"no Chromium at {CHROMIUM} and it cannot be installed here (needs apt-get as root)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
