"""The data-plane template deploys into moto with the keys, index and stream the app relies on."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from devstack.cfn import OUTPUT_ENV

EXPECTED_OUTPUTS = {
    "LeadsTableName", "RulesetsTableName", "OutboxTableName", "OutboxStreamArn", "HandoffTopicArn",
    "DeadLetterQueueUrl", "DeadLetterQueueArn", "RescoreQueueUrl", "RescoreQueueArn",
}  # fmt: skip


def _keys(table: dict[str, Any]) -> dict[str, str]:
    return {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}


def test_every_output_exists_and_is_exported(moto_aws: dict[str, str]) -> None:
    assert set(moto_aws) == EXPECTED_OUTPUTS
    assert all(moto_aws.values())
    assert set(OUTPUT_ENV) <= EXPECTED_OUTPUTS
    exports = {e["Name"]: e["Value"] for e in boto3.client("cloudformation").list_exports()["Exports"]}
    assert {f"baton-local-{key}" for key in EXPECTED_OUTPUTS} == set(exports)


def test_names_follow_the_stage(moto_aws: dict[str, str]) -> None:
    assert moto_aws["LeadsTableName"] == "baton-local-leads"
    assert moto_aws["RulesetsTableName"] == "baton-local-rulesets"
    assert moto_aws["OutboxTableName"] == "baton-local-outbox"
    assert moto_aws["HandoffTopicArn"].endswith(":baton-local-handoff")
    assert moto_aws["RescoreQueueArn"].endswith(":baton-local-rescore")
    assert moto_aws["DeadLetterQueueArn"].endswith(":baton-local-dlq")


def test_leads_table_has_keys_the_sparse_sla_index_and_the_list_index(moto_aws: dict[str, str]) -> None:
    from chalicelib.lead_list import PROJECTED

    table = boto3.client("dynamodb").describe_table(TableName=moto_aws["LeadsTableName"])["Table"]
    assert _keys(table) == {"pk": "HASH", "sk": "RANGE"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    gsi, stage = sorted(table["GlobalSecondaryIndexes"], key=lambda i: i["IndexName"])
    assert gsi["IndexName"] == "gsi1"
    assert _keys(gsi) == {"gsi1pk": "HASH", "gsi1sk": "RANGE"}
    assert gsi["Projection"]["ProjectionType"] == "ALL"
    # Lead lists: what the store writes and reads (lead_list.PROJECTED) is what the index keeps.
    assert stage["IndexName"] == "stage"
    assert _keys(stage) == {"stage": "HASH", "stage_at": "RANGE"}
    assert stage["Projection"]["ProjectionType"] == "INCLUDE"
    assert sorted(stage["Projection"]["NonKeyAttributes"]) == sorted(PROJECTED)
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {"pk": "S", "sk": "S", "gsi1pk": "S", "gsi1sk": "S", "stage": "S", "stage_at": "N"}


def test_rulesets_and_outbox_tables(moto_aws: dict[str, str]) -> None:
    ddb = boto3.client("dynamodb")
    rulesets = ddb.describe_table(TableName=moto_aws["RulesetsTableName"])["Table"]
    assert _keys(rulesets) == {"pk": "HASH", "sk": "RANGE"}
    outbox = ddb.describe_table(TableName=moto_aws["OutboxTableName"])["Table"]
    assert _keys(outbox) == {"pk": "HASH"}
    assert outbox["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert outbox["LatestStreamArn"] == moto_aws["OutboxStreamArn"]


def test_outbox_stream_is_readable(moto_aws: dict[str, str]) -> None:
    boto3.client("dynamodb").put_item(TableName=moto_aws["OutboxTableName"], Item={"pk": {"S": "t1"}})
    streams = boto3.client("dynamodbstreams")
    (shard,) = streams.describe_stream(StreamArn=moto_aws["OutboxStreamArn"])["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=moto_aws["OutboxStreamArn"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    (record,) = streams.get_records(ShardIterator=iterator)["Records"]
    assert record["eventName"] == "INSERT"
    assert record["dynamodb"]["NewImage"] == {"pk": {"S": "t1"}}


def test_rescore_queue_redrives_to_the_dlq(moto_aws: dict[str, str]) -> None:
    import json

    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=moto_aws["RescoreQueueUrl"], AttributeNames=["All"]
    )
    redrive = json.loads(attrs["Attributes"]["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": moto_aws["DeadLetterQueueArn"], "maxReceiveCount": 5}
    assert attrs["Attributes"]["VisibilityTimeout"] == "300"
    dlq = boto3.client("sqs").get_queue_attributes(
        QueueUrl=moto_aws["DeadLetterQueueUrl"], AttributeNames=["MessageRetentionPeriod"]
    )
    assert dlq["Attributes"]["MessageRetentionPeriod"] == str(14 * 24 * 3600)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_other_stages_deploy_side_by_side(moto_aws: dict[str, str], stage: str) -> None:
    from devstack.cfn import deploy_data_plane

    outputs = deploy_data_plane(boto3.client("cloudformation"), stage)
    assert outputs["LeadsTableName"] == f"baton-{stage}-leads"
