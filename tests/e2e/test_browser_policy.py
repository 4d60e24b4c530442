"""Browser tests skip on a developer's machine without Chromium, and fail in CI."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import browser_unavailable, in_ci


@pytest.mark.parametrize("value", ["true", "1", "yes", "True"])
def test_in_ci_a_missing_browser_is_a_failure(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match=r"no Chromium.*CI is set"):
        browser_unavailable("no Chromium at /usr/bin/chromium")


@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_elsewhere_it_is_a_skip(value: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="no Chromium"):
        browser_unavailable("no Chromium at /usr/bin/chromium")
