"""Fixtures of the reliability suite (``-m reliability``).

Two ways to run Baton here:

- ``service``: the app in-process through ``chalice.test.Client`` on moto (fresh per test), with
  every secret seeded so fuzzed requests get past authentication and signatures;
- ``live_stack``: the real local stack (``python -m devstack``: moto server, data plane,
  ``chalice local``, the SNS consumer and schedules) as a subprocess on free ports, once per session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.support import Service, running_service
from tests.stackproc import ADMIN_TOKEN, INGEST_TOKEN, StackProcess, running_stack


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

LIVE_ADMIN_TOKEN = ADMIN_TOKEN
LIVE_INGEST_TOKEN = INGEST_TOKEN
LiveStack = StackProcess


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """``python -m devstack`` on free ports, its Slack outbox in a temp dir; SIGINT at the end."""
    with running_stack(tmp_path_factory.mktemp("live"), schedule_seconds=0.3) as stack:
        yield stack
