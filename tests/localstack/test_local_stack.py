"""`python -m devstack` (what `make run` starts) serves /health and stops cleanly on Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import LocalStack, free_port

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
        "BATON_LOCAL_DIR": str(tmp_path / "local"),  # BATON_PERSIST=0 as every stack a test starts
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    assert env["BATON_PERSIST"] == "0", "tests/conftest.py sets it for the session"
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
            publish = [sys.executable, "-m", "baton.cli", "rules", "publish", "chalicelib/rules/default.yaml",
                       "--api", api, "--token", "dev-admin-token"]
            dry = subprocess.run(publish, cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert dry.returncode == 0 and "dry run" in dry.stdout, dry.stderr
            real = subprocess.run([*publish, "--yes"], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert real.returncode == 0, real.stderr
            assert "as version 2 (previous: 1)" in real.stdout
            assert json.loads((tmp_path / "local" / "stack.json").read_text())["api_url"] == api
            if (ROOT / "examples" / "landing" / "index.html").is_file():
                with urllib.request.urlopen(f"http://127.0.0.1:{landing_port}/", timeout=5) as page:
                    assert page.status == 200

            proc.send_signal(signal.SIGINT)
            try:
                # A ceiling, not a timing: the stop takes 1-5 s, and a loaded machine (a CI box running
                # other tests) can stretch that several times over; a stack that hangs never ends.
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running 60 s after SIGINT:\n{log()}")
            assert rc == 0, log()
            assert "stopped" in log()
            # A stack started by a test keeps nothing, and its stack.json went with it.
            assert sorted(p.name for p in (tmp_path / "local").iterdir()) == [], log()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def _stack(tmp_path: Path, shell_prefix: str = "") -> Any:
    """``python -m devstack`` on free ports, started through ``sh -c`` (so a test can set what it
    inherits); yields (process, app url, log reader) once /health answers."""
    app_port = free_port()
    env = {**os.environ, "BATON_MOTO_PORT": str(free_port()), "BATON_APP_PORT": str(app_port),
           "BATON_LANDING_PORT": str(free_port()), "BATON_SLACK_OUTBOX_FILE": str(tmp_path / "outbox.jsonl"),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    env.pop("AWS_ENDPOINT_URL", None)
    with tempfile.TemporaryFile() as output:
        script = f"{shell_prefix}exec {sys.executable} -m devstack"
        proc = subprocess.Popen(["sh", "-c", script], cwd=ROOT, env=env, stdout=output, stderr=output)

        def log() -> str:
            output.seek(0)
            return output.read().decode(errors="replace")[-4000:]

        url = f"http://127.0.0.1:{app_port}"
        try:
            deadline = time.monotonic() + 90
            while _get(url + "/health") is None:
                assert proc.poll() is None and time.monotonic() < deadline, f"no /health:\n{log()}"
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=0.5)
            yield proc, url, log
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_stack_started_with_sigint_ignored_still_stops_on_ctrl_c(tmp_path: Path) -> None:
    """`make run &` from a script, or a CI runner, hands the stack SIGINT *ignored*."""
    with _stack(tmp_path, shell_prefix="trap '' INT; ") as (proc, url, log):
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=60)  # a ceiling, not a timing: a deaf stack would never end
        except subprocess.TimeoutExpired:
            pytest.fail(f"SIGINT ignored:\n{log()}")
        assert rc == 0 and "stopped" in log()
        assert _get(url + "/health") is None


def test_chalice_local_dies_with_a_killed_stack_and_logs_no_query_strings(tmp_path: Path) -> None:
    with _stack(tmp_path) as (proc, url, log):
        urllib.request.urlopen(url + "/health?email=ada%40acme.io&key=s3cret", timeout=5).close()
        proc.kill()  # SIGKILL: no handler runs, no stop()
        proc.wait()
        deadline = time.monotonic() + 60  # a ceiling: an orphan would answer for ever
        while _get(url + "/health") is not None:
            assert time.monotonic() < deadline, "chalice local outlived the stack"
            time.sleep(0.2)
        written = log()
        assert '"GET /health HTTP/1.1" 200' in written
        assert "ada" not in written and "s3cret" not in written


class _Interrupted(Exception):
    pass


def test_wait_answers_a_signal_the_kernel_hands_to_another_thread() -> None:
    """The kernel may deliver Ctrl-C to any thread of the stack (it runs several): ``wait`` must still
    let the main thread take it while chalice local runs, not once chalice local has exited."""
    stack = LocalStack(run_app=False)
    app = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    stack._app = app
    main = threading.main_thread().ident
    stdin = app.stdin
    assert main is not None and stdin is not None
    taken_while_app_runs: list[bool] = []  # (the app runs until its stdin is closed)

    def interrupt_from_here_once_main_waits() -> None:
        # Until the main thread is inside wait(), then a SIGINT to this thread, not to the main one.
        while not _inside(sys._current_frames().get(main), LocalStack.wait.__code__):
            time.sleep(0)  # (yields the GIL: no timing involved)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        # A ceiling, so that a wait() deaf to it fails instead of hanging: end "chalice local" then.
        deadline = time.monotonic() + 10
        while _inside(sys._current_frames().get(main), LocalStack.wait.__code__) and time.monotonic() < deadline:
            time.sleep(0.01)
        stdin.close()

    def handler(signum: int, frame: object) -> None:
        taken_while_app_runs.append(not stdin.closed)
        raise _Interrupted

    previous = signal.signal(signal.SIGINT, handler)
    sender = threading.Thread(target=interrupt_from_here_once_main_waits, daemon=True)
    try:
        sender.start()
        with pytest.raises(_Interrupted):
            stack.wait()
            stack.wait()  # (a wait() that returned when "chalice local" ended takes the signal late)
    finally:
        signal.signal(signal.SIGINT, previous)
        sender.join()
        app.kill()
        app.wait()
    assert taken_while_app_runs == [True]


def _inside(frame: Any, code: Any) -> bool:
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False
