"""DynamoDB repositories (low-level client: lighter than ``boto3.resource`` and explicit about types).

Leads table layout (pk / sk):
  LEAD#<id> / STATE             the scoring state (JSON), ``version`` for optimistic concurrency,
                                ``gsi1pk=SLA`` + ``gsi1sk=<deadline>#<id>`` while an SQL awaits sales,
                                ``stage`` + ``stage_at`` and the listing attributes (index ``stage``,
                                ``lead_list``)
  LEAD#<id> / EVT#<event id>    one item per event: its existence is the exactly-once check
  LEAD#<id> / OUTCOME#<t>#<n>   sales feedback
  ANON#<id> / LINK              anonymous id -> lead id
  ANON#<id> / EVT#<event id>    events of a visitor not yet identified (expire after 90 days)
Outbox table (pk only; index ``queue`` on queue / queue_at, sparse):
  <message id>                  the outbox item, then its delivery record: queue ``relay`` until
                                published, ``slack`` while pending (queue_at = next attempt),
                                ``parked`` when its retries ran out; a delivered one leaves the
                                index, drops its body and expires after 30 days
  CLAIM#<key>                   consumer dedupe (claimed_at, posted_at), with TTL
  SLOT#<channel>                the channel's next free send slot (pacing), with TTL
Rulesets table: RULESET / V#<n>, RULESET / COUNTER, RULESET / ACTIVE, RULESET / SHADOW;
  JOB / <job id> for the re-score jobs (``DynamoDBJobs``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.errors import (
    BatonError,
    ConcurrencyConflict,
    Conflict,
    DuplicateEvents,
    NotFound,
    Unavailable,
)
from chalicelib.events import Event
from chalicelib.lead_list import PROJECTED, LeadQuery, Position, listing_attributes
from chalicelib.outbox.claims import CLAIM_TTL
from chalicelib.outbox.items import Delivery, OutboxItem, without_lead
from chalicelib.outbox.pacing import SLOT_TTL
from chalicelib.state import LeadState
from chalicelib.store.base import (
    PARKED,
    RELAY,
    SLACK,
    ActivePointer,
    Backlog,
    Commit,
    Erased,
    RulesetVersion,
    StoredLead,
    VisitorLink,
)

ANONYMOUS_TTL = 90 * 86400
RECORD_TTL = CLAIM_TTL  # delivered and parked records; their claims live as long
_THROTTLED = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable",
}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _translate(exc: ClientError) -> BatonError:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _THROTTLED:
        return Unavailable("the lead store is busy; retry shortly", retry_after=1, details={"cause": code})
    if code == "ConditionalCheckFailedException":
        return ConcurrencyConflict("the item changed meanwhile")
    return Unavailable("the lead store failed", retry_after=2, details={"cause": code})


def _pages(operation: str, table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query or Scan finds, page after page."""
    call = getattr(client("dynamodb"), operation)
    start: dict[str, Any] | None = None
    while True:
        page = call(TableName=table, **kwargs, **({"ExclusiveStartKey": start} if start else {}))
        yield from page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def _query(table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    return _pages("query", table, **kwargs)


def _event_item(pk: str, event: Event) -> dict[str, Any]:
    return {
        "pk": _s(pk), "sk": _s(f"EVT#{event.event_id}"), "ts": _n(event.ts), "type": _s(event.type),
        "data": _s(json.dumps(event.to_dict(), separators=(",", ":"), default=str)),
    }


def _scan(table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    return _pages("scan", table, **kwargs)


def _outbox_item(item: OutboxItem) -> dict[str, Any]:
    out = {
        "pk": _s(item.id), "kind": _s(item.kind), "created_at": _n(item.created_at),
        "body": _s(json.dumps(item.body, separators=(",", ":"), default=str)),
        "attributes": _s(json.dumps(item.attributes)),
        # The relay finds it on the queue index, oldest first (no Scan of the table).
        "queue": _s(RELAY), "queue_at": _n(item.created_at),
    }
    if item.lead_id:
        out["lead_id"] = _s(item.lead_id)  # erasure finds the lead's messages by it
    return out


class DynamoDBLeads:
    def __init__(self, table: str, outbox_table: str) -> None:
        self.table = table
        self.outbox_table = outbox_table

    def get(self, lead_id: str) -> StoredLead | None:
        found = self.load(lead_id)
        return found if isinstance(found, StoredLead) else None

    def load(self, lead_id: str) -> StoredLead | Erased | None:
        try:
            found = client("dynamodb").get_item(
                TableName=self.table, Key={"pk": _s(f"LEAD#{lead_id}"), "sk": _s("STATE")}, ConsistentRead=True
            )
        except ClientError as exc:
            raise _translate(exc) from None
        item = found.get("Item")
        if item is None:
            return None
        if "data" not in item:  # the tombstone an erasure leaves in the state's place
            return Erased(float(item["erased_at"]["N"]))
        return StoredLead(LeadState.from_dict(json.loads(item["data"]["S"])), int(item["version"]["N"]))

    def _state_item(self, commit: Commit) -> dict[str, Any]:
        state = commit.state
        item: dict[str, Any] = {
            "pk": _s(f"LEAD#{state.lead_id}"), "sk": _s("STATE"),
            "data": _s(json.dumps(state.to_dict(), separators=(",", ":"), default=str)),
            "version": _n(commit.expected_version + 1),
            **{name: _s(v) if isinstance(v, str) else _n(v) for name, v in listing_attributes(state).items()},
        }
        if state.stage == "sql" and state.accepted_at is None and state.sla_deadline is not None:
            item["gsi1pk"] = _s("SLA")
            item["gsi1sk"] = _s(f"{state.sla_deadline:017.3f}#{state.lead_id}")
        return item

    def commit(self, commit: Commit) -> int:
        pk = f"LEAD#{commit.state.lead_id}"
        if commit.expected_version == 0:  # a new lead: nothing there, or an erasure's tombstone
            state_put: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(version)"}
        else:
            state_put = {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": _n(commit.expected_version)},
            }
        items: list[dict[str, Any]] = [{"Put": {"TableName": self.table, "Item": self._state_item(commit), **state_put}}]
        first_event = len(items)
        not_exists = {"ConditionExpression": "attribute_not_exists(pk)"}
        items += [{"Put": {"TableName": self.table, "Item": _event_item(pk, e), **not_exists}} for e in commit.events]
        items += [
            {"Put": {"TableName": self.outbox_table, "Item": _outbox_item(o), **not_exists}} for o in commit.outbox
        ]
        for n, outcome in enumerate(commit.outcomes):
            item = {
                "pk": _s(pk), "sk": _s(f"OUTCOME#{outcome['at']:017.3f}#{n}"),
                "data": _s(json.dumps(outcome, separators=(",", ":"), default=str)),
            }
            items.append({"Put": {"TableName": self.table, "Item": item}})
        if commit.link_anonymous:
            link = {"pk": _s(f"ANON#{commit.link_anonymous}"), "sk": _s("LINK"), "lead_id": _s(commit.state.lead_id),
                    "verified": {"BOOL": commit.link_verified}}
            items.append({"Put": {"TableName": self.table, "Item": link}})
            # The reverse entry lets an erasure find every link without scanning the table.
            reverse = {"pk": _s(pk), "sk": _s(f"LINK#{commit.link_anonymous}")}
            items.append({"Put": {"TableName": self.table, "Item": reverse}})
        items += [
            {"Delete": {"TableName": self.table, "Key": {"pk": _s(f"ANON#{a}"), "sk": _s(f"EVT#{e}")}}}
            for a, e in commit.consumed_anonymous
        ]
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as exc:
            raise self._cancelled(exc, commit, first_event) from None
        return commit.expected_version + 1

    @staticmethod
    def _cancelled(exc: ClientError, commit: Commit, first_event: int) -> BatonError:
        if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            return _translate(exc)
        reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
        if any(code in _THROTTLED or code == "ThrottlingError" for code in reasons):
            return Unavailable("the lead store is busy; retry shortly", retry_after=1)
        dupes = [
            commit.events[i - first_event].event_id
            for i, code in enumerate(reasons)
            if code == "ConditionalCheckFailed" and first_event <= i < first_event + len(commit.events)
        ]
        if (reasons and reasons[0] == "ConditionalCheckFailed") or "TransactionConflict" in reasons:
            return ConcurrencyConflict("the lead changed meanwhile")
        if dupes:
            return DuplicateEvents(dupes)
        return ConcurrencyConflict(f"write cancelled: {reasons}")

    def events(self, lead_id: str) -> list[Event]:
        items = _query(
            self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :evt)",
            ExpressionAttributeValues={":pk": _s(f"LEAD#{lead_id}"), ":evt": _s("EVT#")},
            ProjectionExpression="#d",
            ExpressionAttributeNames={"#d": "data"},
        )
        events = [Event.from_dict(json.loads(i["data"]["S"])) for i in items]
        return sorted(events, key=lambda e: (e.ts, e.event_id))

    def outcomes(self, lead_id: str) -> list[dict[str, Any]]:
        items = _query(
            self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :o)",
            ExpressionAttributeValues={":pk": _s(f"LEAD#{lead_id}"), ":o": _s("OUTCOME#")},
        )
        return [json.loads(i["data"]["S"]) for i in items]

    def history(self, lead_id: str) -> tuple[list[Event], list[dict[str, Any]]]:
        # EVT# < LINK# < OUTCOME# in the sort key's order: one range holds both (and the few links).
        try:
            items = list(_query(
                self.table, ConsistentRead=True,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
                ExpressionAttributeValues={":pk": _s(f"LEAD#{lead_id}"), ":first": _s("EVT#"),
                                           ":last": _s("OUTCOME$")},
                ProjectionExpression="sk, #d", ExpressionAttributeNames={"#d": "data"},
            ))
        except ClientError as exc:
            raise _translate(exc) from None
        events = [Event.from_dict(json.loads(i["data"]["S"])) for i in items if i["sk"]["S"].startswith("EVT#")]
        outcomes = [json.loads(i["data"]["S"]) for i in items if i["sk"]["S"].startswith("OUTCOME#")]
        return sorted(events, key=lambda e: (e.ts, e.event_id)), outcomes

    def visitor_link(self, anonymous_id: str) -> VisitorLink | None:
        try:
            found = client("dynamodb").get_item(
                TableName=self.table, Key={"pk": _s(f"ANON#{anonymous_id}"), "sk": _s("LINK")}
            )
        except ClientError as exc:
            raise _translate(exc) from None
        item = found.get("Item")
        if item is None:
            return None
        return VisitorLink(item["lead_id"]["S"], item.get("verified", {}).get("BOOL", True))

    def save_anonymous(self, anonymous_id: str, events: Sequence[Event]) -> int:
        new = 0
        ddb = client("dynamodb")
        for event in events:
            item = _event_item(f"ANON#{anonymous_id}", event)
            item["expires_at"] = _n(int(event.ts) + ANONYMOUS_TTL)
            try:
                ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
                new += 1
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise _translate(exc) from None
        return new

    def anonymous_events(self, anonymous_id: str) -> list[Event]:
        items = _query(
            self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :evt)",
            ExpressionAttributeValues={":pk": _s(f"ANON#{anonymous_id}"), ":evt": _s("EVT#")},
        )
        return sorted((Event.from_dict(json.loads(i["data"]["S"])) for i in items), key=lambda e: (e.ts, e.event_id))

    def sla_due(self, now: float, limit: int = 100) -> list[str]:
        items = client("dynamodb").query(
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p AND gsi1sk <= :t",
            ExpressionAttributeValues={":p": _s("SLA"), ":t": _s(f"{now:017.3f}~")},
            Limit=limit,
        ).get("Items", [])
        return [i["pk"]["S"].removeprefix("LEAD#") for i in items]

    def lead_ids(self, segment: int = 0, segments: int = 1) -> list[str]:
        ddb = client("dynamodb")
        ids: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            page = ddb.scan(
                TableName=self.table, Segment=segment, TotalSegments=segments,
                FilterExpression="sk = :s AND attribute_exists(version)",  # tombstones are no leads
                ExpressionAttributeValues={":s": _s("STATE")},
                ProjectionExpression="pk", **({"ExclusiveStartKey": start} if start else {}),
            )
            ids += [i["pk"]["S"].removeprefix("LEAD#") for i in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                return sorted(ids)


    # Every expression names its attributes: ``owner`` and others are reserved words in DynamoDB.
    _LISTING = {"#s": "stage", "#t": "stage_at", "#r": "route", "#o": "owner", "#acc": "accepted_at",
                "#rem": "sla_reminders", "#dl": "sla_deadline"}

    def list_leads(self, query: LeadQuery, now: float) -> tuple[list[dict[str, Any]], Position | None]:
        key, filters = ["#s = :s"], []
        values: dict[str, Any] = {":s": _s(query.stage)}
        if query.since is not None:
            key.append("#t >= :since")
            values[":since"] = _n(query.since)
        if query.route is not None:
            filters.append("#r = :route")
            values[":route"] = _s(query.route)
        if query.owner is not None:
            filters.append("#o = :owner")
            values[":owner"] = _s(query.owner)
        if query.awaiting:
            filters.append("attribute_not_exists(#acc)")
        if query.awaiting == "overdue":
            filters.append("(attribute_exists(#rem) OR #dl <= :now)")
            values[":now"] = _n(now)
        expressions = " AND ".join(key + filters)
        kwargs: dict[str, Any] = {
            "IndexName": "stage", "KeyConditionExpression": " AND ".join(key), "ScanIndexForward": False,
            "ExpressionAttributeNames": {k: self._LISTING[k] for k in set(re.findall(r"#\w+", expressions))},
            "ExpressionAttributeValues": values,
            "Limit": max(query.limit + 1, 100),  # items read before the filter: a page of a narrow list reads more
            **({"FilterExpression": " AND ".join(filters)} if filters else {}),
        }
        start = None if query.after is None else {
            "pk": _s(f"LEAD#{query.after.lead_id}"), "sk": _s("STATE"), "stage": _s(query.stage),
            "stage_at": _n(query.after.stage_at),
        }
        found: list[dict[str, Any]] = []
        ddb = client("dynamodb")
        try:
            while True:
                page = ddb.query(TableName=self.table, **kwargs, **({"ExclusiveStartKey": start} if start else {}))
                items, start = page.get("Items", []), page.get("LastEvaluatedKey")
                for n, item in enumerate(items):
                    found.append(_listing(item))
                    if len(found) == query.limit:
                        more = n < len(items) - 1 or start is not None
                        last = found[-1]
                        return found, Position(last["stage_at"], last["lead_id"]) if more else None
                if not start:
                    return found, None
        except ClientError as exc:
            raise _translate(exc) from None

    def backfill_listing(self, dry_run: bool = False) -> dict[str, int]:
        """Give state items written before the ``stage`` index their listing attributes
        (docs/migrations.md): each only if its version is still the one read, so a concurrent write
        (which indexes the lead itself) is never overwritten. Idempotent."""
        ddb = client("dynamodb")
        found = updated = 0
        # (a tombstone is a STATE item without data: nothing to list)
        unindexed = "sk = :s AND attribute_exists(#d) AND attribute_not_exists(stage_at)"
        for item in _scan(self.table, FilterExpression=unindexed, ExpressionAttributeValues={":s": _s("STATE")},
                          ProjectionExpression="pk, sk, #d, version", ExpressionAttributeNames={"#d": "data"}):
            found += 1
            if dry_run:
                continue
            attrs = listing_attributes(LeadState.from_dict(json.loads(item["data"]["S"])))
            names = {f"#a{n}": name for n, name in enumerate(attrs)}
            values = {f":a{n}": _s(v) if isinstance(v, str) else _n(v) for n, v in enumerate(attrs.values())}
            try:
                ddb.update_item(
                    TableName=self.table, Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET " + ", ".join(f"#a{n} = :a{n}" for n in range(len(attrs))),
                    ConditionExpression="version = :v", ExpressionAttributeNames=names,
                    ExpressionAttributeValues={**values, ":v": item["version"]},
                )
                updated += 1
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise _translate(exc) from None
        return {"found": found, "updated": updated}

    def erase(self, lead_id: str, at: float) -> int:
        ddb = client("dynamodb")
        pk = _s(f"LEAD#{lead_id}")
        # The tombstone takes the state's place first: a writer from then on sees an erased lead.
        ddb.put_item(TableName=self.table, Item={"pk": pk, "sk": _s("STATE"), "erased_at": _n(at)})
        keys = [
            {"pk": i["pk"], "sk": i["sk"]}
            for i in _query(self.table, KeyConditionExpression="pk = :pk",
                            ExpressionAttributeValues={":pk": pk}, ProjectionExpression="pk, sk")
            if i["sk"]["S"] != "STATE"
        ]
        visitors = [k["sk"]["S"].removeprefix("LINK#") for k in keys if k["sk"]["S"].startswith("LINK#")]
        for start in range(0, len(keys), 25):
            batch = [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]
            pending: dict[str, Any] = {self.table: batch}
            while pending:
                pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        return 1 + len(keys) + self._unlink(lead_id, visitors) + DynamoDBOutbox(self.outbox_table).erase_lead(lead_id)

    def _unlink(self, lead_id: str, visitors: Sequence[str]) -> int:
        """Delete the visitors' links that still name this lead: a verified identify may have
        re-pointed a public form's link to another lead since."""
        removed = 0
        for visitor in visitors:
            try:
                client("dynamodb").delete_item(
                    TableName=self.table, Key={"pk": _s(f"ANON#{visitor}"), "sk": _s("LINK")},
                    ConditionExpression="lead_id = :me", ExpressionAttributeValues={":me": _s(lead_id)},
                )
                removed += 1
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise _translate(exc) from None
        return removed


def _listing(item: dict[str, Any]) -> dict[str, Any]:
    """An entry of the ``stage`` index as ``lead_list.listing_attributes`` names it, plus ``lead_id``."""
    out: dict[str, Any] = {"lead_id": item["pk"]["S"].removeprefix("LEAD#")}
    for name in ("stage", "stage_at", *PROJECTED):
        if name in item:
            value = item[name]
            out[name] = value["S"] if "S" in value else float(value["N"])
    return out


class DynamoDBOutbox:
    # Every expression names its attributes: several (queue, status words) are reserved in DynamoDB.
    NAMES = {"#q": "queue", "#qa": "queue_at", "#d": "delivery", "#a": "attempts", "#n": "next_attempt_at",
             "#e": "last_error", "#x": "expires_at"}
    PENDING = "attribute_exists(pk) AND (attribute_not_exists(#d) OR #d = :pending)"

    def __init__(self, table: str) -> None:
        self.table = table

    @classmethod
    def _names(cls, *expressions: str) -> dict[str, str]:
        return {name: cls.NAMES[name] for name in set(re.findall(r"#\w+", " ".join(expressions)))}

    def _update(self, item_id: str, expression: str, condition: str, values: dict[str, Any]) -> bool:
        """One conditional update of an item; False when the condition did not hold."""
        used = self._names(expression, condition)
        try:
            client("dynamodb").update_item(
                TableName=self.table, Key={"pk": _s(item_id)}, UpdateExpression=expression,
                ConditionExpression=condition, ExpressionAttributeNames=used, ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _translate(exc) from None
        return True

    def _queue(self, queue: str, until: float | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """A queue's items on the ``queue`` index, by ``queue_at`` (up to ``until``)."""
        condition = "#q = :q" + (" AND #qa <= :until" if until is not None else "")
        values = {":q": _s(queue), **({":until": _n(until)} if until is not None else {})}
        names = self._names(condition, kwargs.get("ProjectionExpression", ""))
        try:
            yield from _query(self.table, IndexName="queue", KeyConditionExpression=condition,
                              ExpressionAttributeNames=names, ExpressionAttributeValues=values, **kwargs)
        except ClientError as exc:
            raise _translate(exc) from None

    @staticmethod
    def _item(i: dict[str, Any]) -> OutboxItem:
        return OutboxItem(
            id=i["pk"]["S"], kind=i["kind"]["S"], body=json.loads(i["body"]["S"]),
            attributes=json.loads(i["attributes"]["S"]), created_at=float(i["created_at"]["N"]),
        )

    # -- the relay ---------------------------------------------------------------------------------
    def put(self, item: OutboxItem) -> None:
        try:
            client("dynamodb").put_item(
                TableName=self.table, Item=_outbox_item(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _translate(exc) from None

    def pending(self, limit: int = 50) -> list[OutboxItem]:
        items: list[OutboxItem] = []
        for i in self._queue(RELAY, Limit=limit):
            items.append(self._item(i))
            if len(items) >= limit:
                break
        return items

    def mark_published(self, item_id: str, first_attempt_at: float) -> None:
        # Only while no delivery attempt has recorded anything: the consumer may have been first.
        self._update(item_id, "SET #q = :slack, #qa = :t, #n = :t, #d = :pending",
                     "attribute_exists(pk) AND attribute_not_exists(#d)",
                     {":slack": _s(SLACK), ":t": _n(first_attempt_at), ":pending": _s("pending")})

    # -- delivery records --------------------------------------------------------------------------
    def delivery(self, item_id: str) -> Delivery | None:
        try:
            found = client("dynamodb").get_item(TableName=self.table, Key={"pk": _s(item_id)}, ConsistentRead=True)
        except ClientError as exc:
            raise _translate(exc) from None
        i = found.get("Item")
        if i is None or "kind" not in i:
            return None

        def number(name: str) -> float | None:
            return float(i[name]["N"]) if name in i else None

        created_at = float(i["created_at"]["N"])
        return Delivery(
            id=item_id, status=i.get("delivery", {}).get("S", "pending"),
            attempts=int(i.get("attempts", {}).get("N", "0")), next_attempt_at=number("next_attempt_at"),
            created_at=created_at, retry_from=number("retry_from") or created_at,
            published=i.get("queue", {}).get("S") != RELAY, item=self._item(i) if "body" in i else None,
            last_error=i.get("last_error", {}).get("S"), delivered_at=number("delivered_at"),
            slot_at=number("slot_at"),
        )

    def due(self, until: float, limit: int = 50) -> list[tuple[float, str]]:
        found: list[tuple[float, str]] = []
        for i in self._queue(SLACK, until, Limit=limit, ProjectionExpression="pk, #qa"):
            found.append((float(i["queue_at"]["N"]), i["pk"]["S"]))
            if len(found) >= limit:
                break
        return found

    def reschedule(self, item_id: str, at: float, attempts: int, error: str | None = None, *,
                   slot: bool = False) -> bool:
        values = {":slack": _s(SLACK), ":t": _n(at), ":pending": _s("pending"), ":a": _n(attempts)}
        expression = "SET #q = :slack, #qa = :t, #n = :t, #d = :pending, #a = :a"
        if slot:
            expression += ", slot_at = :t"
        if error:
            expression += ", #e = :e"
            values[":e"] = _s(error)
        return self._update(item_id, expression + ("" if slot else " REMOVE slot_at"), self.PENDING, values)

    def mark_posted(self, claim_key: str, now: float) -> None:
        try:
            client("dynamodb").update_item(
                TableName=self.table, Key={"pk": _s(f"CLAIM#{claim_key}")},
                UpdateExpression="SET posted_at = :now, #x = if_not_exists(#x, :x)",
                ExpressionAttributeNames={"#x": "expires_at"},
                ExpressionAttributeValues={":now": _n(now), ":x": _n(int(now) + CLAIM_TTL)},
            )
        except ClientError as exc:
            raise _translate(exc) from None

    def posted(self, claim_key: str) -> bool:
        try:
            found = client("dynamodb").get_item(TableName=self.table, Key={"pk": _s(f"CLAIM#{claim_key}")},
                                                ConsistentRead=True, ProjectionExpression="posted_at")
        except ClientError as exc:
            raise _translate(exc) from None
        return "posted_at" in found.get("Item", {})

    def mark_delivered(self, item_id: str, now: float, attempts: int) -> None:
        # Two single-item writes, not a transaction (twice the write cost, and moto copies every
        # table for one): the claim is marked posted first, so a crash in between leaves a record
        # the next attempt finds posted and completes (``Deliverer.attempt``).
        self._update(item_id, "SET #d = :delivered, delivered_at = :now, #a = :a, #x = :x "
                              "REMOVE body, attributes, #q, #qa, #n, slot_at", "attribute_exists(pk)",
                     {":delivered": _s("delivered"), ":now": _n(now), ":a": _n(attempts),
                      ":x": _n(int(now) + RECORD_TTL)})

    def park(self, item_id: str, now: float, attempts: int, error: str) -> bool:
        return self._update(
            item_id, "SET #d = :parked, #q = :parked, #qa = :now, parked_at = :now, #a = :a, #e = :e, #x = :x "
                     "REMOVE #n, slot_at", self.PENDING,
            {":parked": _s(PARKED), ":now": _n(now), ":a": _n(attempts), ":e": _s(error),
             ":x": _n(int(now) + RECORD_TTL), ":pending": _s("pending")},
        )

    def parked(self, limit: int = 100) -> list[str]:
        found: list[str] = []
        for i in self._queue(PARKED, Limit=limit, ProjectionExpression="pk, #qa"):
            found.append(i["pk"]["S"])
            if len(found) >= limit:
                break
        return found

    def redrive(self, item_id: str, now: float) -> bool:
        return self._update(
            item_id, "SET #d = :pending, #q = :slack, #qa = :now, #n = :now, #a = :zero, retry_from = :now "
                     "REMOVE #x, parked_at", "#d = :parked",
            {":pending": _s("pending"), ":slack": _s(SLACK), ":now": _n(now), ":zero": _n(0),
             ":parked": _s(PARKED)},
        )

    def backlog(self) -> Backlog:
        unpublished = [float(i["created_at"]["N"]) for i in self._queue(RELAY, ProjectionExpression="created_at")]
        undelivered = [float(i["created_at"]["N"]) for i in self._queue(SLACK, ProjectionExpression="created_at")]
        parked = sum(1 for _ in self._queue(PARKED, ProjectionExpression="pk"))
        return Backlog(len(unpublished), len(undelivered), parked, min(unpublished + undelivered, default=None))

    def erase_lead(self, lead_id: str) -> int:
        ddb = client("dynamodb")
        # Messages carry the lead id in an attribute; a digest names its leads in its body.
        found = _scan(self.table, FilterExpression="lead_id = :l OR contains(body, :l)",
                      ExpressionAttributeValues={":l": _s(lead_id)}, ProjectionExpression="pk, kind, body")
        count = 0
        for i in found:
            if i["kind"]["S"] == "digest" and "body" in i:
                body = without_lead(json.loads(i["body"]["S"]), lead_id)
                ddb.update_item(TableName=self.table, Key={"pk": i["pk"]}, UpdateExpression="SET body = :b",
                                ConditionExpression="attribute_exists(body)",
                                ExpressionAttributeValues={":b": _s(json.dumps(body, separators=(",", ":")))})
            else:
                ddb.delete_item(TableName=self.table, Key={"pk": i["pk"]})
            count += 1
        return count

    # -- claims ------------------------------------------------------------------------------------
    def claim(self, key: str, ttl_seconds: int, *, now: float | None = None, lease_seconds: float | None = None
              ) -> bool:
        now = time.time() if now is None else now
        item = {"pk": _s(f"CLAIM#{key}"), "expires_at": _n(int(now) + ttl_seconds), "claimed_at": _n(now)}
        condition, values = "attribute_not_exists(pk)", {}
        if lease_seconds is not None:
            condition += " OR (claimed_at < :stale AND attribute_not_exists(posted_at))"
            values[":stale"] = _n(now - lease_seconds)
        try:
            client("dynamodb").put_item(TableName=self.table, Item=item, ConditionExpression=condition,
                                        **({"ExpressionAttributeValues": values} if values else {}))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _translate(exc) from None
        return True

    def release(self, key: str) -> None:
        client("dynamodb").delete_item(TableName=self.table, Key={"pk": _s(f"CLAIM#{key}")})

    # -- pacing ------------------------------------------------------------------------------------
    def reserve_slot(self, channel: str, now: float, interval: float) -> float:
        ddb = client("dynamodb")
        key = {"pk": _s(f"SLOT#{channel}")}
        expires = _n(int(now) + SLOT_TTL)
        for _ in range(5):  # each write fails only when another sender moved the slot meanwhile
            if self._update(key["pk"]["S"], "SET next_free = :next, #x = :x",
                            "attribute_not_exists(next_free) OR next_free < :now",
                            {":next": _n(now + interval), ":now": _n(now), ":x": expires}):
                return now  # the channel was free
            try:  # busy: take the slot after the last one reserved
                updated = ddb.update_item(
                    TableName=self.table, Key=key, UpdateExpression="SET next_free = next_free + :i, #x = :x",
                    ConditionExpression="next_free >= :now", ExpressionAttributeNames={"#x": "expires_at"},
                    ExpressionAttributeValues={":i": _n(interval), ":now": _n(now), ":x": expires},
                    ReturnValues="UPDATED_NEW",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise _translate(exc) from None
                continue  # it fell free meanwhile
            return float(updated["Attributes"]["next_free"]["N"]) - interval
        raise Unavailable("the channel's send slot kept changing; retry shortly", retry_after=1)

    def hold_channel(self, channel: str, until: float) -> None:
        self._update(f"SLOT#{channel}", "SET next_free = :until, #x = :x",
                     "attribute_not_exists(next_free) OR next_free < :until",
                     {":until": _n(until), ":x": _n(int(until) + SLOT_TTL)})


class DynamoDBRulesets:
    PK = "RULESET"

    def __init__(self, table: str) -> None:
        self.table = table

    def _key(self, sk: str) -> dict[str, Any]:
        return {"pk": _s(self.PK), "sk": _s(sk)}

    @staticmethod
    def _version(item: dict[str, Any]) -> RulesetVersion:
        return RulesetVersion(
            version=int(item["version"]["N"]), name=item["name"]["S"], body=json.loads(item["body"]["S"]),
            created_at=float(item["created_at"]["N"]), checksum=item["checksum"]["S"],
        )

    def create(self, name: str, body: dict[str, Any], checksum: str, now: float) -> RulesetVersion:
        ddb = client("dynamodb")
        counter = ddb.update_item(
            TableName=self.table, Key=self._key("COUNTER"), UpdateExpression="ADD #n :one",
            ExpressionAttributeNames={"#n": "n"}, ExpressionAttributeValues={":one": _n(1)},
            ReturnValues="UPDATED_NEW",
        )
        version = int(counter["Attributes"]["n"]["N"])
        item = {
            **self._key(f"V#{version:08d}"), "version": _n(version), "name": _s(name),
            "body": _s(json.dumps(body, separators=(",", ":"))), "created_at": _n(now), "checksum": _s(checksum),
        }
        ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        return self._version(item)

    def get(self, version: int) -> RulesetVersion | None:
        item = client("dynamodb").get_item(TableName=self.table, Key=self._key(f"V#{version:08d}")).get("Item")
        return self._version(item) if item else None

    def versions(self) -> list[RulesetVersion]:
        items = _query(
            self.table, KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
            ExpressionAttributeValues={":pk": _s(self.PK), ":v": _s("V#")},
        )
        return [self._version(i) for i in items]

    def active(self) -> ActivePointer:
        item = client("dynamodb").get_item(
            TableName=self.table, Key=self._key("ACTIVE"), ConsistentRead=True
        ).get("Item")
        if not item:
            return ActivePointer(None, (), None)
        return ActivePointer(
            int(item["version"]["N"]),
            tuple(int(v["N"]) for v in item.get("history", {}).get("L", [])),
            float(item["updated_at"]["N"]),
        )

    def set_active(self, expected: ActivePointer, version: int, history: tuple[int, ...], now: float) -> None:
        pointer = {
            **self._key("ACTIVE"), "version": _n(version), "history": {"L": [_n(v) for v in history]},
            "updated_at": _n(now),
        }
        if expected.version is None:
            guard: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            guard = {
                "ConditionExpression": "version = :v AND updated_at = :u",
                "ExpressionAttributeValues": {":v": _n(expected.version), ":u": _n(expected.updated_at or 0.0)},
            }
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.table, "Key": self._key(f"V#{version:08d}"),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": pointer, **guard}},
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise _translate(exc) from None
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise NotFound(f"rule set version {version} does not exist") from None
            raise Conflict("the active rule set changed meanwhile; read it again and retry") from None

    # -- shadow pointer --------------------------------------------------------
    def shadow(self) -> int | None:
        item = client("dynamodb").get_item(TableName=self.table, Key=self._key("SHADOW")).get("Item")
        return int(item["version"]["N"]) if item and "version" in item else None

    def set_shadow(self, version: int | None) -> None:
        ddb = client("dynamodb")
        if version is None:
            ddb.delete_item(TableName=self.table, Key=self._key("SHADOW"))
            return
        if self.get(version) is None:
            raise NotFound(f"rule set version {version} does not exist")
        ddb.put_item(TableName=self.table, Item={**self._key("SHADOW"), "version": _n(version)})


class DynamoDBJobs:
    """Re-score jobs, kept in the rule-sets table (JOB / <job id>)."""

    def __init__(self, table: str) -> None:
        self.table = table

    @staticmethod
    def _key(job_id: str) -> dict[str, Any]:
        return {"pk": _s("JOB"), "sk": _s(job_id)}

    @staticmethod
    def _job(item: dict[str, Any]) -> dict[str, Any]:
        job: dict[str, Any] = json.loads(item["spec"]["S"])
        for key in ("planned", "total", "done", "failed", "transitions", "alerted"):
            job[key] = int(item.get(key, {}).get("N", "0"))
        # Appends stop once 50 are kept, but one append may pass 50: a job shows the first 50.
        job["samples"] = [json.loads(v["S"]) for v in item.get("samples", {}).get("L", [])[:50]]
        job["digest_sent"] = bool(item.get("digest_sent", {}).get("BOOL", False))
        return job

    def create(self, job: dict[str, Any]) -> None:
        counters = ("planned", "total", "done", "failed", "transitions", "alerted", "samples")
        spec = {k: v for k, v in job.items() if k not in counters}
        try:
            client("dynamodb").put_item(
                TableName=self.table,
                Item={**self._key(job["job_id"]), "spec": _s(json.dumps(spec)), "version": _n(job["version"]),
                      "samples": {"L": []}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise Conflict(f"re-score job {job['job_id']} exists") from None
            raise _translate(exc) from None

    def get(self, job_id: str) -> dict[str, Any] | None:
        item = client("dynamodb").get_item(TableName=self.table, Key=self._key(job_id), ConsistentRead=True)
        return self._job(item["Item"]) if "Item" in item else None

    def for_version(self, version: int) -> list[dict[str, Any]]:
        items = _query(
            self.table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": _s("JOB")},
            ConsistentRead=True,
        )
        jobs = [self._job(i) for i in items if int(i["version"]["N"]) == version]
        return sorted(jobs, key=lambda j: j["created_at"])

    def add(self, job_id: str, counts: dict[str, int], samples: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        names = {f"#c{i}": key for i, key in enumerate(counts)}
        values: dict[str, Any] = {f":c{i}": _n(value) for i, value in enumerate(counts.values())}
        adds = [f"#c{i} :c{i}" for i in range(len(counts))]
        update = "ADD " + ", ".join(adds)
        ddb = client("dynamodb")
        if samples:
            try:  # keep at most 50 samples for the digest; counters always count
                result = ddb.update_item(
                    TableName=self.table, Key=self._key(job_id),
                    UpdateExpression=update + " SET samples = list_append(samples, :s)",
                    ConditionExpression="size(samples) < :max",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={**values, ":s": {"L": [_s(json.dumps(x)) for x in samples]},
                                               ":max": _n(50)},
                    ReturnValues="ALL_NEW",
                )
                return self._job(result["Attributes"])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise _translate(exc) from None
        result = ddb.update_item(
            TableName=self.table, Key=self._key(job_id), UpdateExpression=update,
            ExpressionAttributeNames=names, ExpressionAttributeValues=values, ReturnValues="ALL_NEW",
        )
        return self._job(result["Attributes"])

    def claim_flag(self, job_id: str, flag: str) -> bool:
        try:
            client("dynamodb").update_item(
                TableName=self.table, Key=self._key(job_id), UpdateExpression="SET #f = :t",
                ConditionExpression="attribute_not_exists(#f)", ExpressionAttributeNames={"#f": flag},
                ExpressionAttributeValues={":t": {"BOOL": True}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise _translate(exc) from None
        return True


    def erase_lead(self, lead_id: str) -> int:
        changed = 0
        for item in _query(self.table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": _s("JOB")},
                           ConsistentRead=True, ProjectionExpression="sk"):
            changed += self._drop_samples(item["sk"]["S"], lead_id)
        return changed

    def _drop_samples(self, job_id: str, lead_id: str) -> bool:
        ddb = client("dynamodb")
        for _ in range(5):  # a worker appending meanwhile makes us read again
            item = ddb.get_item(TableName=self.table, Key=self._key(job_id), ConsistentRead=True).get("Item", {})
            samples = item.get("samples", {}).get("L", [])
            kept = [v for v in samples if json.loads(v["S"]).get("lead_id") != lead_id]
            if len(kept) == len(samples):
                return False
            try:
                ddb.update_item(
                    TableName=self.table, Key=self._key(job_id), UpdateExpression="SET samples = :k",
                    ConditionExpression="size(samples) = :n",
                    ExpressionAttributeValues={":k": {"L": kept}, ":n": _n(len(samples))},
                )
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise _translate(exc) from None
        raise Unavailable("a re-score job keeps changing; retry the erasure shortly", retry_after=1)
