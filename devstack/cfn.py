"""Deploy the data-plane template into moto and turn its outputs into the app's environment.

One function shared by the local stack, the test fixtures and the benchmarks
(``data_plane_on_moto``), so all run the very template that production deploys instead of a
hand-made copy of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "data-plane.yaml"
APP_OVERRIDES = ROOT / "infra" / "app-overrides.yaml"

# Stack output -> environment variable the app (chalicelib.config) reads.
OUTPUT_ENV = {
    "LeadsTableName": "BATON_LEADS_TABLE",
    "RulesetsTableName": "BATON_RULESETS_TABLE",
    "OutboxTableName": "BATON_OUTBOX_TABLE",
    "HandoffTopicArn": "BATON_HANDOFF_TOPIC_ARN",
    "DeadLetterQueueUrl": "BATON_DLQ_URL",
    "RescoreQueueUrl": "BATON_RESCORE_QUEUE_URL",
    "OutboxStreamArn": "BATON_OUTBOX_STREAM_ARN",
}


def deploy_data_plane(cfn: Any, stage: str = "local", timeout: float = 60.0) -> dict[str, str]:
    """Create the stack with ``cfn`` (a CloudFormation client) and return its outputs by key."""
    name = f"baton-{stage}-data-plane"
    cfn.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
    )
    deadline = time.monotonic() + timeout
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            raise RuntimeError(f"stack {name} ended in {status}")
        time.sleep(0.2)  # moto creates synchronously; this only guards a real endpoint


def app_env(outputs: dict[str, str], stage: str = "local") -> dict[str, str]:
    """The BATON_* variables the app needs to find the deployed data plane."""
    env = {var: outputs[key] for key, var in OUTPUT_ENV.items()}
    env["BATON_STAGE"] = stage
    env["BATON_SSM_PREFIX"] = f"/baton/{stage}/"
    return env


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (``!Ref``, ``!Sub``...) read as their long form."""


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_tag)


def load_template(path: Path) -> dict[str, Any]:
    return dict(yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader))  # a SafeLoader


def gateway_response(response_type: str, template: Path = APP_OVERRIDES) -> tuple[int, bytes]:
    """The status and JSON body API Gateway answers for ``response_type`` in the app stack.

    The local stack answers the same way where chalice local would answer as API Gateway does by
    default (an unknown route: ``403 {"message": "Missing Authentication Token"}``).
    """
    api = load_template(template)["Resources"]["RestAPI"]["Properties"]
    response = api["GatewayResponses"][response_type]
    return int(response["StatusCode"]), response["ResponseTemplates"]["application/json"].encode()


@contextlib.contextmanager
def data_plane_on_moto(stage: str = "bench") -> Iterator[dict[str, str]]:
    """For benchmarks: start an in-process moto server, point the AWS SDK at it, deploy the data
    plane; yield the app's ``BATON_*`` variables (for ``Settings.from_env``); stop it at the end."""
    import boto3
    from moto.server import ThreadedMotoServer

    from devstack.stack import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would drown the figures
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x",
                       "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"})
    try:
        yield app_env(deploy_data_plane(boto3.client("cloudformation"), stage), stage)
    finally:
        server.stop()
