"""Settings: what each stage's environment names, including the event sources app.py registers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from chalicelib.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_event_sources_are_named_after_the_stage() -> None:
    names = Settings.from_env({"BATON_STAGE": "prod"})
    assert (names.handoff_topic, names.rescore_queue, names.outbox_stream_arn) == (
        "baton-prod-handoff", "baton-prod-rescore", "")
    assert Settings.from_env({}).handoff_topic == "baton-local-handoff"


def test_the_environment_overrides_the_names() -> None:
    names = Settings.from_env({"BATON_STAGE": "prod", "BATON_HANDOFF_TOPIC": "t", "BATON_RESCORE_QUEUE": "q",
                               "BATON_OUTBOX_STREAM_ARN": "arn:aws:dynamodb:x:1:table/o/stream/s"})
    assert (names.handoff_topic, names.rescore_queue, names.outbox_stream_arn) == (
        "t", "q", "arn:aws:dynamodb:x:1:table/o/stream/s")


def test_app_registers_its_handlers_on_those_names() -> None:
    code = ("import json, app; print(json.dumps({c.name: getattr(c, 'topic', None) or getattr(c, 'queue', None) "
            "or getattr(c, 'stream_arn', None) for c in app.app.event_sources}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(BATON_STAGE="qa", BATON_OUTBOX_STREAM_ARN="arn:aws:dynamodb:x:1:table/o/stream/s")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    sources = json.loads(out.stdout)
    assert sources["slack_notifier"] == "baton-qa-handoff"
    assert sources["rescore_worker"] == "baton-qa-rescore"
    assert sources["outbox_relay"] == "arn:aws:dynamodb:x:1:table/o/stream/s"
