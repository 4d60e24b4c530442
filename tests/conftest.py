"""Shared fixtures. AWS ones are opt-in: pure unit tests never touch boto3 or moto."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.cfn import app_env, deploy_data_plane
from devstack.stack import free_port

__all__ = ["free_port"]  # re-exported: tests that start servers need free ports

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # botocore's account-based endpoints are not routed by moto (DynamoDB Streams): PITFALLS.md.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy credentials and region, no endpoint override, no cached clients: nothing reaches AWS."""
    from chalicelib import aws

    for name, value in _AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture
def moto_aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The data-plane template deployed in a moto mock; the BATON_* variables point at it.

    Yields the stack outputs (``LeadsTableName``, ``HandoffTopicArn``, ...).
    """
    import boto3
    from moto import mock_aws

    from chalicelib.config import settings

    with mock_aws():
        outputs = deploy_data_plane(boto3.client("cloudformation"), "local")
        for name, value in app_env(outputs, "local").items():
            monkeypatch.setenv(name, value)
        settings.cache_clear()
        yield outputs
    settings.cache_clear()
