"""Fixtures for the handoff tests (helpers live in ``slack_fakes``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_fakes import FakeSlack, handoff_dict, serving_fake_slack

from chalicelib.handoff.message import HandoffMessage


@pytest.fixture
def fake_slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with serving_fake_slack(monkeypatch) as fake:
        yield fake


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
