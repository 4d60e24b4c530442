"""What the API answers look like (issue 22): ISO 8601 timestamps everywhere, points rounded for
display (scores cut, never up to a threshold), and a duplicate event answered without ambiguity."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from referencing.jsonschema import DRAFT202012 as DRAFT

from chalicelib.display import shown_score
from tests.app.conftest import ADMIN, INGEST, Api

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
EPOCH_2000, EPOCH_2100 = 946_684_800, 4_102_444_800
# Durations and counts, never instants.
NOT_INSTANTS = frozenset({"seconds_to_first_action", "sla_hours"})


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def _epoch_numbers(body: Any) -> list[str]:
    return [path for path, value in _leaves(body)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            and EPOCH_2000 <= value <= EPOCH_2100 and path.rsplit(".", 1)[-1] not in NOT_INSTANTS]


def _long_decimals(body: Any) -> list[str]:
    return [f"{path}={value}" for path, value in _leaves(body)
            if isinstance(value, float) and len(repr(value).partition(".")[2]) > 2]


TRAITS = {"job_title": "VP Sales", "company_size": 250, "industry": "software", "country": "us"}


def _events(email: str, *specs: tuple[str, str, dict[str, Any]], traits: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """Events happening now (the app's clock): each ``(event_id, type, properties)``."""
    return {"events": [{"event_id": event_id, "type": kind, "email": email, "properties": props,
                        "traits": traits or {}} for event_id, kind, props in specs]}


def _answers(api: Api) -> dict[str, Any]:
    """One answer of every admin and ingest route that returns data about leads and rule sets."""
    out: dict[str, Any] = {}
    out["events"] = api.post("/v1/events", _events("ada@acme.io", ("v1", "page_view", {"path": "/blog/x"}),
                                                   traits=TRAITS), headers=INGEST).json_body
    out["events_sql"] = api.post("/v1/events", _events("ada@acme.io", ("d1", "demo_request", {"form_id": "demo"}),
                                                       ("p1", "page_view", {"path": "/product"})),
                                 headers=INGEST).json_body
    out["identify"] = api.post("/v1/identify", {"email": "bo@acme.io", "anonymous_id": "anon-1"},
                               headers=INGEST).json_body
    lead_id = out["events"]["leads"][0]["lead_id"]
    out["outcome"] = api.post(f"/v1/leads/{lead_id}/outcome", {"outcome": "accepted"}, headers=ADMIN).json_body
    out["lead"] = api.get(f"/v1/leads/{lead_id}", headers=ADMIN).json_body
    out["lead_by_email"] = api.get("/v1/leads?email=ada@acme.io", headers=ADMIN).json_body
    from chalicelib.rules.loader import default_ruleset

    body = default_ruleset().model_dump(mode="json", by_alias=True)
    out["created"] = api.post("/v1/rulesets", body, headers=ADMIN).json_body
    version = out["created"]["version"]
    out["publish"] = api.post(f"/v1/rulesets/{version}/publish", headers=ADMIN).json_body
    out["list"] = api.get("/v1/rulesets", headers=ADMIN).json_body
    out["one"] = api.get(f"/v1/rulesets/{version}", headers=ADMIN).json_body
    out["active"] = api.get("/v1/rulesets/active", headers=ADMIN).json_body
    candidate = api.post("/v1/rulesets", {**body, "name": "candidate"}, headers=ADMIN).json_body["version"]
    out["shadow"] = api.post(f"/v1/rulesets/{candidate}/shadow", headers=ADMIN).json_body
    out["compare"] = api.get("/v1/rulesets/shadow/compare", headers=ADMIN).json_body
    out["stop"] = api.client.http.delete("/v1/rulesets/shadow", headers=ADMIN).json_body
    out["publish_candidate"] = api.post(f"/v1/rulesets/{candidate}/publish", headers=ADMIN).json_body
    out["rollback"] = api.post("/v1/rulesets/rollback", headers=ADMIN).json_body
    out["erase"] = api.client.http.delete(f"/v1/leads/{lead_id}", headers=ADMIN).json_body
    return out


def test_every_timestamp_in_an_api_answer_is_iso_8601(api: Api) -> None:
    answers = _answers(api)
    assert [name for name, body in answers.items() if "error" in body] == []
    found = {name: paths for name, body in answers.items() if (paths := _epoch_numbers(body))}
    assert found == {}, json.dumps(found)
    assert ISO.match(answers["created"]["created_at"])
    assert ISO.match(answers["active"]["published_at"])
    assert ISO.match(answers["lead"]["explanation"]["engagement"]["at"])
    assert all(ISO.match(v["created_at"]) for v in answers["list"]["rulesets"])


def test_points_in_api_answers_are_rounded_for_display(api: Api) -> None:
    answers = _answers(api)
    found = {name: paths for name, body in answers.items() if (paths := _long_decimals(body))}
    assert found == {}, json.dumps(found)
    lead = answers["lead"]
    # the 40-point demo request, decayed a little since: shown as 39.9, not 39.99999…
    parts = {r["rule"]: r["points"] for r in lead["explanation"]["engagement"]["rules"]}
    assert 39.9 <= parts["demo-request"] <= 40
    assert lead["engagement"] == shown_score(lead["engagement"])


def test_a_duplicate_event_says_it_is_one_and_where_the_lead_stands(api: Api) -> None:
    batch = _events("cy@acme.io", ("c1", "contact_sales", {}), traits=TRAITS)
    first = api.post("/v1/events", batch, headers=INGEST).json_body["leads"][0]
    assert first["stage"] == "sql" and first["handed_to_sales"] is True and first["duplicate"] is False
    again = api.post("/v1/events", batch, headers=INGEST)
    assert again.status_code == 202
    body = again.json_body
    assert body["duplicates"] == 1 and body["accepted"] == 0
    [lead] = body["leads"]
    assert lead["duplicate"] is True
    assert lead["stage"] == "sql"  # where the lead stands: already with sales
    assert lead["handed_to_sales"] is None and lead["transitions"] == []  # not a "false" that reads "not with sales"
    assert lead["scored"] == 0 and lead["duplicates"] == 1


def test_a_batch_with_new_and_repeated_events_is_not_a_duplicate(api: Api) -> None:
    api.post("/v1/events", _events("di@acme.io", ("e1", "page_view", {"path": "/blog/a"})), headers=INGEST)
    body = api.post("/v1/events", _events("di@acme.io", ("e1", "page_view", {"path": "/blog/a"}),
                                          ("e2", "page_view", {"path": "/blog/b"})), headers=INGEST).json_body
    [lead] = body["leads"]
    assert (lead["duplicate"], lead["handed_to_sales"], lead["scored"], lead["duplicates"]) == (False, False, 1, 1)


def test_the_answers_are_what_docs_openapi_yaml_says(api: Api) -> None:
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource

    from tests.reliability.support import OPENAPI

    doc = yaml.safe_load(OPENAPI.read_text())
    registry = Registry().with_resource("urn:baton", Resource.from_contents(doc, default_specification=DRAFT))
    answers = _answers(api)
    checked = {"events": "IngestResult", "events_sql": "IngestResult", "lead": "Lead", "lead_by_email": "Lead",
               "outcome": "OutcomeResult", "created": "RulesetInfo", "one": "RulesetDetail", "active": "RulesetDetail"}
    for name, schema in checked.items():
        validator = Draft202012Validator({"$ref": f"urn:baton#/components/schemas/{schema}"}, registry=registry,
                                         format_checker=FormatChecker())
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(answers[name])]
        assert errors == [], name
