"""Work queues: SQS in AWS and the local stack, a list in tests."""

from __future__ import annotations

import json
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.errors import Unavailable


class Queue(Protocol):
    def send(self, body: dict[str, Any]) -> None: ...


class SqsQueue:
    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, body: dict[str, Any]) -> None:
        try:
            client("sqs").send_message(QueueUrl=self.url, MessageBody=json.dumps(body, separators=(",", ":")))
        except (ClientError, BotoCoreError):
            raise Unavailable("the work queue is unavailable; retry", retry_after=2) from None


class InMemoryQueue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, body: dict[str, Any]) -> None:
        self.messages.append(json.loads(json.dumps(body)))

    def take(self) -> dict[str, Any] | None:
        return self.messages.pop(0) if self.messages else None
