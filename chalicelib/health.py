"""Readiness of the things this deployment is configured with."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import __version__
from chalicelib.aws import client
from chalicelib.config import Settings


def _check(call: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        call(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        # Only the error class: messages can echo ARNs and account ids.
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def health(settings: Settings) -> dict[str, Any]:
    ddb = client("dynamodb")
    checks: dict[str, Any] = {
        "leads_table": {"name": settings.leads_table, **_check(ddb.describe_table, TableName=settings.leads_table)},
        "rulesets_table": {
            "name": settings.rulesets_table,
            **_check(ddb.describe_table, TableName=settings.rulesets_table),
        },
        "outbox_table": {"name": settings.outbox_table, **_check(ddb.describe_table, TableName=settings.outbox_table)},
    }
    if settings.handoff_topic_arn:
        checks["handoff_topic"] = _check(client("sns").get_topic_attributes, TopicArn=settings.handoff_topic_arn)
    else:
        checks["handoff_topic"] = {"ok": False, "error": "BATON_HANDOFF_TOPIC_ARN is not set"}
    return {
        "status": "ok" if all(c["ok"] for c in checks.values()) else "degraded",
        "version": __version__,
        "stage": settings.stage,
        "checks": checks,
    }
