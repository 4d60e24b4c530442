"""Drive the app's non-HTTP handlers locally: `chalice local` serves routes only.

Handlers are found by name in the Chalice app's ``event_sources`` (what ``on_sns_message``,
``on_sqs_message``, ``on_dynamodb_record`` and ``schedule`` register) and called as Lambda calls
them: ``handler(event_dict, context)``, with the event shape AWS sends.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from chalice import app as chalice_app

log = logging.getLogger("devstack")
Handler = Callable[[dict[str, Any], Any], Any]
MAX_RECEIVES = 5  # as the rescore queue's redrive policy; then the message is parked in the DLQ
REGION, ACCOUNT = "us-east-1", "123456789012"


def short_name(name_or_arn: str) -> str:
    """``arn:aws:sns:...:baton-local-handoff`` and ``baton-local-handoff`` name the same thing."""
    return name_or_arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


@dataclass
class FakeContext:
    """The parts of a Lambda context that handlers use."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline: float = field(default_factory=lambda: time.monotonic() + 30)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Registered:
    name: str
    source: str  # topic or queue name, stream ARN, schedule expression
    handler: Handler
    batch_size: int = 1


@dataclass
class Registry:
    sns: list[Registered] = field(default_factory=list)
    sqs: list[Registered] = field(default_factory=list)
    streams: list[Registered] = field(default_factory=list)
    schedules: list[Registered] = field(default_factory=list)


def discover(module: ModuleType) -> Registry:
    """Every event handler of ``module.app``, looked up by the name Chalice registered it under."""
    app, reg = module.app, Registry()
    for cfg in app.event_sources:
        handler = getattr(module, cfg.name, None) or app.handler_map.get(cfg.name)
        if isinstance(cfg, chalice_app.SNSEventConfig):
            reg.sns.append(Registered(cfg.name, short_name(cfg.topic), handler))
        elif isinstance(cfg, chalice_app.SQSEventConfig):
            queue = short_name(cfg.queue or cfg.queue_arn or "")
            reg.sqs.append(Registered(cfg.name, queue, handler, min(cfg.batch_size, 10)))
        elif isinstance(cfg, chalice_app.DynamoDBEventConfig):
            reg.streams.append(Registered(cfg.name, cfg.stream_arn, handler, min(cfg.batch_size, 100)))
        elif isinstance(cfg, chalice_app.ScheduledEventConfig | chalice_app.CloudWatchEventConfig):
            expr = getattr(cfg, "schedule_expression", "event pattern")  # logged, not obeyed
            reg.schedules.append(
                Registered(cfg.name, expr if isinstance(expr, str) else expr.to_string(), handler)
            )
    return reg


def invoke(target: Registered, kind: str, event: dict[str, Any], quiet: bool = False) -> tuple[bool, Any]:
    """Call one handler, logging one line. Returns (succeeded, the handler's result)."""
    where = target.source if kind == "schedule" else short_name(target.source.split("/stream/")[0])
    label = f"{kind} {where} -> {target.name}"
    started = time.monotonic()
    try:
        result = target.handler(event, FakeContext(f"baton-local-{target.name}"))
    except Exception:
        log.exception("%s FAILED", label)
        return False, None
    ms = (time.monotonic() - started) * 1000
    log.log(logging.DEBUG if quiet else logging.INFO, "%s ok %.0f ms", label, ms)
    return True, result


def sns_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """An SNS envelope, as delivered to SQS with raw delivery off, as SNS hands it to a Lambda."""
    sns = {k: envelope.get(k) for k in ("Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp")}
    sns["SignatureVersion"] = envelope.get("SignatureVersion", "1")
    sns["Signature"] = envelope.get("Signature", "")
    sns["SigningCertUrl"] = envelope.get("SigningCertURL", "")  # Lambda spells these two "Url"
    sns["UnsubscribeUrl"] = envelope.get("UnsubscribeURL", "")
    sns["MessageAttributes"] = envelope.get("MessageAttributes", {})  # already {name: {Type, Value}}
    record = {"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": subscription_arn}
    return {"Records": [{**record, "Sns": sns}]}


def _lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out = {"dataType": value["DataType"], "stringListValues": [], "binaryListValues": []}
    if "BinaryValue" in value:  # Lambda sends binary values base64-encoded
        return {**out, "binaryValue": base64.b64encode(value["BinaryValue"]).decode()}
    return {**out, "stringValue": value.get("StringValue")}


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "md5OfBody": m.get("MD5OfBody", ""),
        "messageAttributes": {k: _lambda_attribute(v) for k, v in m.get("MessageAttributes", {}).items()},
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    } for m in messages]}  # fmt: skip


def scheduled_event(name: str) -> dict[str, Any]:
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/baton-local-{name}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": now, "region": REGION, "resources": [rule], "detail": {}}  # fmt: skip


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    out = []
    for r in records:  # Lambda sends ApproximateCreationDateTime as epoch seconds, boto3 a datetime
        ddb = dict(r["dynamodb"])
        if isinstance(ddb.get("ApproximateCreationDateTime"), datetime):
            ddb["ApproximateCreationDateTime"] = ddb["ApproximateCreationDateTime"].timestamp()
        out.append({**r, "dynamodb": ddb, "eventSourceARN": stream_arn})
    return {"Records": out}


class Worker(threading.Thread):
    """Repeats ``step`` until ``stop`` is set; an error is logged, never fatal."""

    def __init__(self, name: str, stop: threading.Event, step: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.stop, self.step = stop, step

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("%s: poll failed", self.name)
                self.stop.wait(1)


@dataclass
class Queues:
    """Receives from a queue and settles each message as Lambda's SQS integration does."""

    sqs: Any
    dlq_url: str

    def receive(self, url: str, batch: int) -> list[dict[str, Any]]:
        # A short long-poll, so that stopping never waits long.
        got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=batch, WaitTimeSeconds=1,
                                       MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"])  # fmt: skip
        return list(got.get("Messages", []))

    def settle(self, url: str, message: dict[str, Any], ok: bool) -> None:
        receipt = message["ReceiptHandle"]
        count = int(message["Attributes"].get("ApproximateReceiveCount", 1))
        if not ok and count < MAX_RECEIVES:
            # Retry soon: a developer should not wait out the queue's 300 s visibility timeout.
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=count)
            return
        if not ok:
            body, attributes = message["Body"], message.get("MessageAttributes", {})
            self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=body, MessageAttributes=attributes)
            log.warning("message %s parked in the DLQ after %d attempts", message["MessageId"], count)
        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)


def sns_step(queues: Queues, url: str, handlers: list[Registered], subscriptions: dict[str, str]) -> None:
    for message in queues.receive(url, 10):
        envelope = json.loads(message["Body"])
        topic = short_name(envelope["TopicArn"])
        event = sns_event(envelope, subscriptions.get(topic, ""))
        results = [invoke(h, "sns", event)[0] for h in handlers if h.source == topic]
        queues.settle(url, message, all(results))


def sqs_step(queues: Queues, url: str, arn: str, target: Registered) -> None:
    messages = queues.receive(url, target.batch_size)
    if not messages:
        return
    ok, result = invoke(target, "sqs", sqs_event(messages, arn))
    failed = {m["MessageId"] for m in messages} if not ok else set()
    if ok and isinstance(result, dict):  # a partial batch response: retry only the ids it names
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
    for m in messages:
        queues.settle(url, m, m["MessageId"] not in failed)


def schedule_step(stop: threading.Event, targets: list[Registered], every: float) -> None:
    for target in targets:
        invoke(target, "schedule", scheduled_event(target.name), quiet=True)
    stop.wait(every)


def shard_iterators(streams: Any, stream_arn: str, position: str = "TRIM_HORIZON") -> dict[str, str]:
    """An iterator per shard: from its start (TRIM_HORIZON) or after its last record (LATEST)."""
    return {
        shard["ShardId"]: streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType=position
        )["ShardIterator"]
        for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    }


def stream_step(streams: Any, stop: threading.Event, target: Registered, iterators: dict[str, str]) -> None:
    """Reads every shard from where ``iterators`` point (empty: from its start); a failing batch is
    retried, as Lambda does, then skipped."""
    if not iterators:
        iterators.update(shard_iterators(streams, target.source))
    records = 0
    for shard, iterator in list(iterators.items()):
        got = streams.get_records(ShardIterator=iterator, Limit=target.batch_size)
        records += len(got["Records"])
        attempts = MAX_RECEIVES if got["Records"] else 0
        while attempts and not invoke(target, "stream", stream_event(got["Records"], target.source))[0]:
            attempts -= 1
            stop.wait(1)
        if got["Records"] and not attempts:
            log.error("%s: stream batch skipped after %d failures", target.name, MAX_RECEIVES)
        iterators[shard] = got["NextShardIterator"]
    if not records:
        stop.wait(0.5)
