"""devstack.state: the local stack's tables and queues kept between runs, on moto (no servers)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.__main__ import reset_command
from devstack.cfn import deploy_data_plane
from devstack.moto_patches import dynamodb_items
from devstack.state import QUEUES_FILE, TABLE_OUTPUTS, TABLES_FILE, State, StateError, reset
from devstack.workers import shard_iterators


@contextlib.contextmanager
def a_stack() -> Iterator[tuple[Any, Any, dict[str, str]]]:
    """A new moto account with the data plane deployed: what each start of the local stack gets."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        outputs = deploy_data_plane(boto3.client("cloudformation"))
        yield boto3.client("dynamodb"), boto3.client("sqs"), outputs


def _lead_items(n: int) -> list[dict[str, Any]]:
    return [{"pk": {"S": f"LEAD#{i}"}, "sk": {"S": "STATE"}, "data": {"S": json.dumps({"n": i})},
             "blob": {"B": bytes([i, 0, 255])}, "tags": {"SS": ["a", "b"]}} for i in range(n)]  # fmt: skip


def test_tables_and_queues_survive_a_save_and_a_load_into_new_ones(aws_env: None, tmp_path: Path) -> None:
    state = State(tmp_path / "state")
    items = _lead_items(60)  # more than one BatchWriteItem
    with a_stack() as (ddb, sqs, outputs):
        for item in items:
            ddb.put_item(TableName=outputs["LeadsTableName"], Item=item)
        ddb.put_item(TableName=outputs["OutboxTableName"], Item={"pk": {"S": "MSG#1"}, "body": {"S": "{}"}})
        sqs.send_message(QueueUrl=outputs["RescoreQueueUrl"], MessageBody='{"kind": "plan"}',
                         MessageAttributes={"job": {"DataType": "String", "StringValue": "j1"}})
        names = {key: outputs[key] for key in TABLE_OUTPUTS}
        read = dynamodb_items(list(names.values()), "us-east-1")
        assert state.save_tables({key: read[name] for key, name in names.items()}) == 61
        assert state.save_queues(sqs, "baton-local-") == 1

    with a_stack() as (ddb, sqs, outputs):  # restarted: empty tables and queues
        assert ddb.scan(TableName=outputs["LeadsTableName"])["Count"] == 0
        counts = state.load_tables(ddb, outputs)
        assert counts == {"LeadsTableName": 60, "RulesetsTableName": 0, "OutboxTableName": 1}
        loaded = ddb.scan(TableName=outputs["LeadsTableName"], ConsistentRead=True)["Items"]
        assert sorted(loaded, key=lambda i: i["pk"]["S"]) == sorted(items, key=lambda i: i["pk"]["S"])
        assert state.load_queues(sqs) == 1
        got = sqs.receive_message(QueueUrl=outputs["RescoreQueueUrl"], MessageAttributeNames=["All"])["Messages"]
        assert [(m["Body"], m["MessageAttributes"]["job"]["StringValue"]) for m in got] == [('{"kind": "plan"}', "j1")]
        assert not (tmp_path / "state" / QUEUES_FILE).exists(), "sent once: a later start must not send them again"
        assert state.load_queues(sqs) == 0


def test_a_reload_is_behind_the_stream_position_the_stack_starts_from(aws_env: None, tmp_path: Path) -> None:
    """Loading writes items, and the outbox stream records them; the stack reads from LATEST."""
    import boto3

    (tmp_path / TABLES_FILE).write_text("\n".join(json.dumps(line) for line in [
        {"format": 1, "saved_at": 0},
        {"table": "OutboxTableName", "item": {"pk": {"S": "MSG#kept"}, "body": {"S": "{}"}}},
    ]) + "\n")  # fmt: skip
    with a_stack() as (ddb, _, outputs):
        streams, arn = boto3.client("dynamodbstreams"), outputs["OutboxStreamArn"]
        State(tmp_path).load_tables(ddb, outputs)

        def keys(iterators: dict[str, str]) -> list[str]:
            return [r["dynamodb"]["Keys"]["pk"]["S"] for it in iterators.values()
                    for r in streams.get_records(ShardIterator=it)["Records"]]  # fmt: skip

        assert keys(shard_iterators(streams, arn)) == ["MSG#kept"]  # what reading from the start would relay
        latest = shard_iterators(streams, arn, "LATEST")
        ddb.put_item(TableName=outputs["OutboxTableName"], Item={"pk": {"S": "MSG#new"}, "body": {"S": "{}"}})
        assert keys(latest) == ["MSG#new"]


def test_a_snapshot_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    state = State(tmp_path)
    assert state.load_tables(None, {}) is None  # none yet: a new stack
    (tmp_path / TABLES_FILE).write_text('{"format": 99}\n')
    with pytest.raises(StateError, match="another format; `make reset` starts empty"):
        state.load_tables(None, {})
    (tmp_path / TABLES_FILE).write_text("{not json\n")
    with pytest.raises(StateError, match="not a snapshot"):
        state.load_tables(None, {})
    (tmp_path / TABLES_FILE).write_text('{"format": 1}\n{"table": "Elsewhere", "item": {}}\n')
    with pytest.raises(StateError, match="unknown table"):
        state.load_tables(None, {})


def test_a_snapshot_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    state = State(tmp_path)

    def lines() -> Iterator[dict[str, Any]]:
        yield {"table": "LeadsTableName", "item": {"pk": {"S": "a"}}}
        raise RuntimeError("the stack died mid-scan")

    (tmp_path / TABLES_FILE).write_text('{"format": 1}\n')
    with pytest.raises(RuntimeError):
        state._write(TABLES_FILE, lines())
    assert (tmp_path / TABLES_FILE).read_text() == '{"format": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == [TABLES_FILE]  # no partial file left behind


def test_reset_forgets_the_data_and_the_outbox_but_not_while_a_stack_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BATON_SLACK_OUTBOX_FILE", raising=False)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / TABLES_FILE).write_text("{}")
    (tmp_path / "slack-outbox.jsonl").write_text("{}\n")
    (tmp_path / "stack.json").write_text(json.dumps({"pid": os.getpid()}))  # a live process
    assert reset_command(tmp_path) == 1
    assert "is running" in capsys.readouterr().err and (tmp_path / "state").exists()

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "stack.json").write_text(json.dumps({"pid": gone.pid}))  # left by a killed stack
    assert reset_command(tmp_path) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert reset(tmp_path / "state", tmp_path / "slack-outbox.jsonl") == []
