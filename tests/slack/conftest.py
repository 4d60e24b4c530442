"""Fixtures for the Slack adapter tests (helpers live in ``slack_fakes``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_fakes import FakeSlack, handoff_dict

from chalicelib.handoff_message import HandoffMessage


@pytest.fixture
def fake_slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    # slack_sdk routes through HTTP(S)_PROXY from the environment; loopback must stay direct.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeSlack()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def make_handoff() -> Any:
    """``make_handoff(**top_level_overrides) -> HandoffMessage``."""

    def make(**overrides: Any) -> HandoffMessage:
        return HandoffMessage.model_validate(handoff_dict(**overrides))

    return make


@pytest.fixture
def handoff_data() -> dict[str, Any]:
    return handoff_dict()


@pytest.fixture
def handoff() -> HandoffMessage:
    return HandoffMessage.model_validate(handoff_dict())
