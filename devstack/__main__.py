"""``python -m devstack``: run the local stack until Ctrl-C or SIGTERM (``make run``).

``python -m devstack --reset`` (``make reset``): forget the kept data and the local Slack outbox.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from devstack.cfn import ROOT
from devstack.stack import STACK_FILE, LocalStack
from devstack.state import reset

log = logging.getLogger("devstack")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM shuts down the same clean way as Ctrl-C


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the stack, whatever this process inherited.

    Started with ``&`` from a non-interactive shell, a process inherits SIGINT *ignored*, and Python
    then installs no KeyboardInterrupt handler: Ctrl-C (or ``kill -INT``) did nothing at all.
    """
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def banner(stack: LocalStack) -> str:
    env, reg = os.environ, stack.registry
    posts = env.get("SLACK_WEBHOOK_URL") or env.get("SLACK_BOT_TOKEN")
    slack = "posting to Slack too" if posts else "no Slack token set"
    token = "$BATON_ADMIN_TOKEN" if env.get("BATON_ADMIN_TOKEN") else "dev-admin-token"
    if stack.state is None:
        data = "not kept: the stack starts empty (BATON_PERSIST=0)"
    else:
        kept = "reloaded" if stack.restored is not None else "new"
        data = f"{stack.state.directory}  ({kept}; kept between runs, `make reset` empties it)"
    rules = "published" if stack.ruleset_published else "kept"
    return f"""
Baton local stack is up
  API           {stack.app_url}    try: curl {stack.app_url}/health
  AWS (moto)    {stack.endpoint}    AWS_ENDPOINT_URL for boto3 and the aws cli
  landing page  {stack.landing_url or "(no examples/landing/)"}
  data          {data}
  rule set      version {stack.ruleset_version} active ({rules})
  Slack outbox  {env["BATON_SLACK_OUTBOX_FILE"]}  ({slack})
  admin token   {token}  (SSM {env["BATON_SSM_PREFIX"]}admin-token)
  HubSpot URL   {stack.app_url}/v1/webhooks/hubspot  (signed as plain http, or a tunnel's https)
  handlers      sns={len(reg.sns)} sqs={len(reg.sqs)} streams={len(reg.streams)} schedules={len(reg.schedules)}
Ctrl-C stops everything.
"""


def local_dir() -> Path:
    return Path(os.environ.get("BATON_LOCAL_DIR") or ROOT / ".baton")


def reset_command(where: Path) -> int:
    """Forget the kept tables and queues and the local Slack outbox, unless a stack uses them now."""
    try:
        pid = json.loads((where / STACK_FILE).read_text(encoding="utf-8")).get("pid")
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError, AttributeError):
        pass  # no stack file, or its stack is gone
    else:
        print(f"the local stack (pid {pid}) is running with {where}: stop it first (Ctrl-C)", file=sys.stderr)
        return 1
    outbox = Path(os.environ.get("BATON_SLACK_OUTBOX_FILE") or where / "slack-outbox.jsonl")
    removed = reset(where / "state", outbox)
    (where / STACK_FILE).unlink(missing_ok=True)
    print("removed " + ", ".join(map(str, removed)) if removed else f"nothing to remove in {where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--reset"]:
        return reset_command(local_dir())
    if args:
        print("usage: python -m devstack [--reset]", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("BATON_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S")  # fmt: skip
    for noisy in ("werkzeug", "botocore"):  # moto logs every request, botocore every client
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop_on_signals()
    env = os.environ
    stack = LocalStack(
        moto_port=int(env.get("BATON_MOTO_PORT", "5000")), app_port=int(env.get("BATON_APP_PORT", "8000")),
        landing_port=int(env.get("BATON_LANDING_PORT", "8080")),
        schedule_seconds=float(env.get("BATON_SCHEDULE_SECONDS", "2")),
        autoreload=env.get("BATON_AUTORELOAD") == "1", local_dir=local_dir(),
        persist=env.get("BATON_PERSIST", "1") != "0", snapshot_seconds=float(env.get("BATON_SNAPSHOT_SECONDS", "10")),
    )  # fmt: skip
    rc = 0
    try:
        stack.start()
        print(banner(stack), flush=True)
        rc = stack.wait() or 1  # chalice local is not meant to exit by itself
        log.error("chalice local exited")
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:  # a port in use, a snapshot it cannot read (StateError)...
        log.error("%s", exc)
        rc = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave chalice local running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        log.info("stopped")
    return rc


if __name__ == "__main__":
    sys.exit(main())
