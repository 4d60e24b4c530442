"""Lead lists (``GET /v1/leads?stage=...``): the query, its cursor, and the service over the store."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.bootstrap import Container, memory_container
from chalicelib.errors import ValidationFailed
from chalicelib.events import Event
from chalicelib.lead_list import LeadQuery, Position, decode_cursor, encode_cursor, parse_query
from chalicelib.state import lead_id_for

T0 = 1_700_000_000.0
HOUR = 3600.0
CTO = {"first_name": "Grace", "last_name": "Hopper", "job_title": "CTO", "company_size": 500}
BIG = {**CTO, "company_size": 5000}  # the enterprise route (SLA 4 h)


@pytest.mark.parametrize(("params", "field"), [
    ({}, "stage"),
    ({"stage": "hot"}, "stage"),
    ({"stage": "sql", "awaiting": "marketing"}, "awaiting"),
    ({"stage": "mql", "awaiting": "sales"}, "awaiting"),
    ({"stage": "sql", "since": "last tuesday"}, "since"),
    ({"stage": "sql", "limit": "0"}, "limit"),
    ({"stage": "sql", "limit": "201"}, "limit"),
    ({"stage": "sql", "limit": "ten"}, "limit"),
    ({"stage": "sql", "cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ({"stage": "sql", "cursor": "%%%"}, "cursor"),
    ({"stage": "sql", "route": ""}, "route"),
    ({"stage": "sql", "owner": "x" * 201}, "owner"),
    ({"stage": "sql", "stages": "mql"}, "stages"),
])
def test_a_bad_query_names_its_parameter(params: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_query(params)
    assert caught.value.details["field"] == field
    assert field in str(caught.value)


def test_a_query_reads_iso_dates_and_awaiting_implies_sql() -> None:
    query = parse_query({"awaiting": "overdue", "since": "2023-11-14", "route": "emea", "owner": "slack:U1",
                         "limit": "5"})
    assert query == LeadQuery(stage="sql", route="emea", owner="slack:U1", since=1_699_920_000.0,
                              awaiting="overdue", limit=5)
    assert parse_query({"stage": "mql", "since": "2023-11-14T22:13:20Z"}).since == T0


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False), st.text("0123456789abcdef", min_size=24, max_size=24))
def test_a_cursor_gives_back_its_position(stage_at: float, digest: str) -> None:
    position = Position(stage_at, "L" + digest)
    cursor = encode_cursor(position)
    assert cursor.isascii() and "=" not in cursor
    assert decode_cursor(cursor) == position


# -- the service over the in-memory store (the DynamoDB store's list: tests/store/test_repositories.py) ------

class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def c(clock: Clock) -> Container:
    return memory_container(clock=clock)


def _sql(c: Container, clock: Clock, name: str, at: float, traits: dict[str, Any] = CTO) -> str:
    clock.now = at
    event = Event(f"demo-{name}", "demo_request", at, f"{name}@acme.example", None, {"form_id": "demo"}, traits,
                  "form")
    answer = c.leads.ingest([event])["leads"][0]
    assert answer["stage"] == "sql"
    return str(answer["lead_id"])


def _told(c: Container, at: float) -> None:
    for item in [i for i in c.outbox.pending() if i.kind == "handoff"]:
        c.outbox.mark_published(item.id, at)
        c.outbox.mark_delivered(item.id, at, 1)


def _ids(answer: dict[str, Any]) -> list[str]:
    return [lead["lead_id"] for lead in answer["leads"]]


def test_sqls_newest_first_with_their_route_and_owner(c: Container, clock: Clock) -> None:
    ada, bo, cy = (_sql(c, clock, name, T0 + n * HOUR, BIG if name == "bo" else CTO)
                   for n, name in enumerate(["ada", "bo", "cy"]))
    clock.now = T0 + 5 * HOUR
    c.leads.record_outcome(ada, "accepted", actor="slack:U1", source="slack")
    answer = c.leads.list_leads(parse_query({"stage": "sql"}))
    assert _ids(answer) == [cy, bo, ada] and answer["next_cursor"] is None
    first = answer["leads"][2]
    assert first == {
        "lead_id": ada, "email": "ada@acme.example", "stage": "sql", "stage_at": "2023-11-14T22:13:20Z",
        "route": "fast-track", "owner": "slack:U1", "handed_off_at": "2023-11-14T22:13:20Z",
        "accepted_at": "2023-11-15T03:13:20Z", "sla_deadline": "2023-11-15T00:13:20Z",
    }
    assert answer["leads"][1]["route"] == "enterprise"
    assert _ids(c.leads.list_leads(parse_query({"stage": "sql", "owner": "slack:U1"}))) == [ada]
    assert _ids(c.leads.list_leads(parse_query({"stage": "sql", "route": "enterprise"}))) == [bo]
    assert _ids(c.leads.list_leads(parse_query({"awaiting": "sales"}))) == [cy, bo]
    assert _ids(c.leads.list_leads(parse_query({"stage": "sql", "since": "2023-11-14T23:13:20Z"}))) == [cy, bo]
    assert _ids(c.leads.list_leads(parse_query({"stage": "mql"}))) == []


def test_a_recycled_lead_has_no_owner_any_more(c: Container, clock: Clock) -> None:
    ada = _sql(c, clock, "ada", T0)
    c.leads.record_outcome(ada, "accepted", actor="rep-7")
    c.leads.record_outcome(ada, "recycled", actor="rep-7", reason="no budget")
    assert _ids(c.leads.list_leads(parse_query({"stage": "sql"}))) == []
    (recycled,) = c.leads.list_leads(parse_query({"stage": "recycled"}))["leads"]
    assert (recycled["lead_id"], recycled["owner"]) == (ada, None)


def test_pages_walk_the_whole_list_once(c: Container, clock: Clock) -> None:
    made = [_sql(c, clock, f"rep{n}", T0 + n * 60) for n in range(7)]
    seen: list[str] = []
    params = {"stage": "sql", "limit": "3"}
    for _ in range(5):
        answer = c.leads.list_leads(parse_query(params))
        assert len(answer["leads"]) <= 3
        seen += _ids(answer)
        if answer["next_cursor"] is None:
            break
        params["cursor"] = answer["next_cursor"]
    assert seen == made[::-1]


def test_overdue_counts_from_when_sales_was_told(c: Container, clock: Clock) -> None:
    ada = _sql(c, clock, "ada", T0)  # fast track: SLA 2 h
    overdue = {"awaiting": "overdue"}
    clock.now = T0 + 3 * HOUR  # past the transition's deadline, but Slack never took the alert
    assert _ids(c.leads.list_leads(parse_query(overdue))) == []
    _told(c, T0 + 2 * HOUR)
    assert _ids(c.leads.list_leads(parse_query(overdue))) == [], "told 1 h ago: 1 h left"
    clock.now = T0 + 4 * HOUR
    assert _ids(c.leads.list_leads(parse_query(overdue))) == [ada]
    c.leads.record_outcome(ada, "accepted", actor="rep-1")
    assert _ids(c.leads.list_leads(parse_query(overdue))) == []


def test_a_reminded_lead_stays_overdue(c: Container, clock: Clock) -> None:
    from chalicelib.handoff.reminders import check_sla

    ada = _sql(c, clock, "ada", T0, BIG)  # enterprise: 4 h, then an escalation
    _told(c, T0)
    assert check_sla(c.leads_repo, c.rulesets, T0 + 5 * HOUR, c.outbox)["reminded"] == 1
    assert check_sla(c.leads_repo, c.rulesets, T0 + 10 * HOUR, c.outbox)["escalated"] == 1
    clock.now = T0 + 10 * HOUR  # no deadline left in the state: escalated, still nobody acted
    assert _ids(c.leads.list_leads(parse_query({"awaiting": "overdue"}))) == [ada]


def test_an_unknown_email_is_named_as_such(c: Container) -> None:
    from chalicelib.errors import NotFound

    with pytest.raises(NotFound) as caught:
        c.leads.get_by_email("nobody@acme.example")
    assert str(caught.value) == "no lead with that email"
    assert lead_id_for("nobody@acme.example") not in str(caught.value.to_dict())


def test_leads_stored_before_the_index_are_listed_after_the_backfill(
    moto_aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import boto3

    from baton import cli
    from chalicelib.state import LeadState
    from chalicelib.store.dynamodb import DynamoDBLeads

    table = moto_aws["LeadsTableName"]
    old = LeadState(lead_id_for("ada@acme.example"), email="ada@acme.example", stage="sql", route="emea",
                    stage_history=[{"stage": "sql", "at": T0, "reason": "r", "transition_id": "t1"}])
    # As the previous version wrote a state item: no stage_at, no listing attributes.
    boto3.client("dynamodb").put_item(TableName=table, Item={
        "pk": {"S": f"LEAD#{old.lead_id}"}, "sk": {"S": "STATE"}, "version": {"N": "3"}, "stage": {"S": "sql"},
        "data": {"S": json.dumps(old.to_dict())}})
    leads = DynamoDBLeads(table, moto_aws["OutboxTableName"])
    assert leads.list_leads(LeadQuery("sql"), T0)[0] == []
    assert cli.main(["leads", "backfill", "--dry-run"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"found": 1, "updated": 0}
    assert cli.main(["leads", "backfill"]) == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"found": 1, "updated": 1}
    (entry,), _ = leads.list_leads(LeadQuery("sql", route="emea"), T0)
    assert (entry["lead_id"], entry["stage_at"], entry["email"]) == (old.lead_id, T0, "ada@acme.example")
    assert cli.main(["leads", "backfill"]) == cli.EXIT_OK  # idempotent: nothing left to do
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"found": 0, "updated": 0}
