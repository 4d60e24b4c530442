"""Fixtures for browser tests: the real local stack (``python -m devstack``) and headless Chromium.

The browser is the system Chromium (``/usr/bin/chromium``, installed with apt when missing and we
may); Playwright never downloads one. Without a browser they skip, except when ``CI`` is set:
there they fail, so a CI machine without Chromium cannot pass with the pages untested.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from tests.stackproc import ADMIN_TOKEN, StackProcess, running_stack

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BATON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


class RunningStack(StackProcess):
    @property
    def outbox(self) -> Path:
        return self.slack_outbox

    def api(self, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(self.app_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """``python -m devstack`` on free ports, its Slack outbox in a temp dir; SIGINT at the end."""
    with running_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield RunningStack(**{f.name: getattr(stack, f.name) for f in fields(stack)})


def until(check: Any, timeout: float, what: str, log: Any) -> Any:
    """Poll ``check`` until it returns something; fail with the stack's output after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s\n--- stack output ---\n{log()}")
        time.sleep(0.2)


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


def in_ci() -> bool:
    """``CI`` set (as CI services set it): a browser test that cannot run is a failure there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def browser_unavailable(reason: str) -> None:
    """Skip for this reason on a developer's machine; fail in CI, where a skipped browser test
    would let the landing and lead pages go untested without anyone noticing."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: browser tests must run; BATON_SKIP_BROWSER=1 opts out explicitly)",
                    pytrace=False)
    pytest.skip(reason)


def skip_browser() -> bool:
    """``BATON_SKIP_BROWSER=1`` (README): no Chromium install and no browser tests."""
    return os.environ.get("BATON_SKIP_BROWSER", "0") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Skipped before their fixtures run: no local stack is started for a test that will not run.
    if skip_browser():
        for item in items:
            if "browser" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.skip(reason="BATON_SKIP_BROWSER is set"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if skip_browser():
        pytest.skip("BATON_SKIP_BROWSER is set")
    try:
        from playwright import sync_api
    except ImportError:
        browser_unavailable("playwright is not installed: pip install -r requirements-dev.txt")
    executable = _ensure_chromium()
    if executable is None:
        browser_unavailable(f"no Chromium at {CHROMIUM} and it cannot be installed here (needs apt-get as root)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
