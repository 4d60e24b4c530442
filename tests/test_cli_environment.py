"""The ``baton`` CLI's surroundings: which API it calls, one clear line for a missing setting,
and ``rules diff`` on files (versions on the API: tests/localstack)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from baton import cli
from baton.environment import DEFAULT_API_URL, api_url, local_stack
from chalicelib.rules.loader import DEFAULT_RULESET_PATH, default_ruleset
from devstack.stack import free_port

DEFAULT = str(DEFAULT_RULESET_PATH)


def _stack_file(directory: Path, pid: int, url: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.json").write_text(json.dumps({"pid": pid, "api_url": url, "aws_endpoint": "http://x:1"}))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- which API ------------------------------------------------------------------------------------


def test_the_api_is_the_variable_else_the_running_stack_else_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BATON_API_URL", raising=False)
    monkeypatch.setenv("BATON_LOCAL_DIR", str(tmp_path))
    assert api_url() == DEFAULT_API_URL  # no stack file
    _stack_file(tmp_path, os.getpid(), "http://127.0.0.1:8100")
    assert api_url() == "http://127.0.0.1:8100"
    monkeypatch.setenv("BATON_API_URL", "https://api.example.com/api")
    assert api_url() == "https://api.example.com/api"


def test_a_stack_file_left_by_a_killed_stack_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATON_API_URL", raising=False)
    monkeypatch.setenv("BATON_LOCAL_DIR", str(tmp_path))
    _stack_file(tmp_path, _dead_pid(), "http://127.0.0.1:8100")
    assert local_stack() is None and api_url() == DEFAULT_API_URL
    (tmp_path / "stack.json").write_text("{not json")
    assert api_url() == DEFAULT_API_URL


def test_without_a_local_dir_the_nearest_dot_baton_from_here_up_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BATON_API_URL", raising=False)
    monkeypatch.delenv("BATON_LOCAL_DIR", raising=False)
    _stack_file(tmp_path / ".baton", os.getpid(), "http://127.0.0.1:8200")
    (tmp_path / "notebooks" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks" / "deeper")
    assert api_url() == "http://127.0.0.1:8200"


# --- a missing setting is one line ----------------------------------------------------------------


@pytest.fixture
def nothing_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A shell with no AWS settings at all and no local stack running."""
    from chalicelib import aws, bootstrap, config

    for name in list(os.environ):
        if name.startswith("AWS_") or name in ("BATON_API_URL", "BATON_ADMIN_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("BATON_LOCAL_DIR", str(tmp_path / "no-stack"))
    aws.reset_clients()
    config.settings.cache_clear()
    bootstrap.use(None)
    yield tmp_path
    aws.reset_clients()
    config.settings.cache_clear()
    bootstrap.use(None)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_export_without_an_aws_region_says_so_in_one_line(
    nothing_configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["export", "--out", str(nothing_configured / "out")]) == cli.EXIT_SETUP
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("baton: no AWS region: set AWS_DEFAULT_REGION"), line


def test_export_names_the_local_stack_settings_when_one_runs(
    nothing_configured: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stack_file(nothing_configured / "no-stack", os.getpid(), "http://127.0.0.1:8100")
    assert cli.main(["export", "--out", str(nothing_configured / "out")]) == cli.EXIT_SETUP
    assert "for the local stack: export AWS_ENDPOINT_URL=http://x:1" in _one_line(capsys.readouterr().err)


def test_export_with_a_region_but_no_credentials_says_so(
    nothing_configured: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert cli.main(["export", "--out", str(nothing_configured / "out")]) == cli.EXIT_SETUP
    assert _one_line(capsys.readouterr().err).startswith("baton: no AWS credentials")


def test_export_to_an_endpoint_nobody_answers_says_where(
    nothing_configured: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["export", "--out", str(nothing_configured / "out")]) == cli.EXIT_SETUP
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("baton: cannot reach AWS at http://127.0.0.1:") and "make run" in line, line


def test_export_of_tables_that_do_not_exist_names_the_settings(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from moto import mock_aws

    from chalicelib import bootstrap, config

    monkeypatch.setenv("BATON_STAGE", "nosuchstage")
    config.settings.cache_clear()
    bootstrap.use(None)
    try:
        with mock_aws():  # an account without Baton's tables
            assert cli.main(["export", "--out", str(tmp_path / "out")]) == cli.EXIT_SETUP
    finally:
        config.settings.cache_clear()
        bootstrap.use(None)
    line = _one_line(capsys.readouterr().err)
    assert "ResourceNotFoundException" in line and "BATON_STAGE" in line, line


@pytest.mark.parametrize("argv", [
    ["rules", "publish", DEFAULT], ["rules", "publish", DEFAULT, "--yes"], ["rules", "diff", "active", DEFAULT],
    ["leads", "list", "--awaiting", "sales"],
])  # fmt: skip
def test_api_commands_with_no_api_running_say_so_in_one_line(
    argv: list[str], nothing_configured: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATON_API_URL", f"http://127.0.0.1:{free_port()}")
    assert cli.main(argv) == cli.EXIT_INVALID
    line = _one_line(capsys.readouterr().err)
    assert "cannot reach the Baton API at http://127.0.0.1:" in line and "BATON_API_URL" in line, line


def test_the_installed_command_prints_no_traceback(nothing_configured: Path) -> None:
    """The same through the console script, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(nothing_configured / "none"), AWS_SHARED_CREDENTIALS_FILE=str(nothing_configured / "none"),
               AWS_EC2_METADATA_DISABLED="true")  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "baton.cli", "export", "--out", str(nothing_configured / "o")],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == cli.EXIT_SETUP
    assert _one_line(done.stderr).startswith("baton: no AWS region")


# --- rules diff on files --------------------------------------------------------------------------


def _candidate(tmp_path: Path) -> Path:
    body = default_ruleset().model_dump(mode="json", by_alias=True)
    body["name"] = "candidate"
    next(r for r in body["fit"] if r["id"] == "title-executive")["points"] = 35
    target = tmp_path / "candidate.yaml"
    target.write_text(yaml.safe_dump(body, sort_keys=False))
    return target


def test_rules_diff_of_two_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = _candidate(tmp_path)
    assert cli.main(["rules", "diff", DEFAULT, str(candidate)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{DEFAULT} -> {candidate}: 2 changes"
    assert "  ~ title-executive (Executive or VP title): points: 30 -> 35" in out
    assert '  ~ name: "default" -> "candidate"' in out


def test_rules_diff_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "diff", DEFAULT, str(_candidate(tmp_path)), "--json"]) == 0
    changes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(c["section"], c["item"], c["field"]) for c in changes} == {
        ("fit", "title-executive", "points"), ("settings", None, "name")}


def test_rules_diff_of_a_missing_or_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rules", "diff", DEFAULT, str(tmp_path / "nope.yaml")]) == cli.EXIT_INVALID
    assert "nope.yaml: cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    assert cli.main(["rules", "diff", str(bad), DEFAULT]) == cli.EXIT_INVALID
    assert "bad.yaml: " in capsys.readouterr().err
