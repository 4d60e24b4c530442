"""``GET /v1/leads`` lists leads (admin): on moto, through the stage index the template defines."""

from __future__ import annotations

from tests.app.conftest import ADMIN, FORM_HEADERS, Api

FORM = "email=ada%40acme.io&first_name=Ada&job_title=CTO&company_size=300&industry=software&country=US"


def test_a_form_sql_is_listed_then_owned_by_who_accepted_it(api: Api) -> None:
    assert api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS).status_code == 200
    listed = api.get("/v1/leads?stage=sql", headers=ADMIN)
    assert listed.status_code == 200, listed.json_body
    (lead,) = listed.json_body["leads"]
    assert (lead["email"], lead["owner"], listed.json_body["next_cursor"]) == ("ada@acme.io", None, None)
    assert [x["lead_id"] for x in api.get("/v1/leads?awaiting=sales", headers=ADMIN).json_body["leads"]] == [
        lead["lead_id"]]
    accepted = api.post(f"/v1/leads/{lead['lead_id']}/outcome", {"outcome": "accepted", "actor": "rep-1"},
                        headers=ADMIN)
    assert accepted.status_code == 200, accepted.json_body
    assert api.get("/v1/leads?awaiting=sales", headers=ADMIN).json_body["leads"] == []
    (owned,) = api.get("/v1/leads?stage=sql&owner=rep-1", headers=ADMIN).json_body["leads"]
    assert (owned["lead_id"], owned["owner"]) == (lead["lead_id"], "rep-1")
    assert api.get("/v1/leads?stage=sql&owner=rep-2", headers=ADMIN).json_body["leads"] == []
    assert api.client.http.delete(f"/v1/leads/{lead['lead_id']}", headers=ADMIN).status_code == 200
    assert api.get("/v1/leads?stage=sql", headers=ADMIN).json_body["leads"] == [], "an erased lead is not listed"


def test_lists_need_the_admin_token_and_good_values(api: Api) -> None:
    assert api.get("/v1/leads?stage=sql").status_code == 401
    for query, field in [("", "stage"), ("?stage=sql&since=yesterday", "since"), ("?awaiting=lunch", "awaiting"),
                         ("?stage=sql&cursor=abc", "cursor"), ("?stage=sql&limit=1000", "limit")]:
        answer = api.get(f"/v1/leads{query}", headers=ADMIN)
        assert answer.status_code == 422, (query, answer.json_body)
        assert answer.json_body["error"]["details"]["field"] == field


def test_an_unknown_email_says_so_without_an_id(api: Api) -> None:
    answer = api.get("/v1/leads?email=nobody%40acme.io", headers=ADMIN)
    assert answer.status_code == 404
    assert answer.json_body["error"]["message"] == "no lead with that email"


def test_email_with_a_lists_parameters_is_a_422_naming_them_not_a_lookup(api: Api) -> None:
    # They were silently dropped: ?email=...&stage=mql answered the lead whatever its stage.
    assert api.post("/v1/forms/demo", raw=FORM, headers=FORM_HEADERS).status_code == 200
    assert api.get("/v1/leads?email=ada%40acme.io&limit=5&cursor=0", headers=ADMIN).status_code == 200
    for query, named in [("stage=mql", ["stage"]), ("route=emea", ["route"]), ("owner=rep-1", ["owner"]),
                         ("since=2026-12-01", ["since"]), ("awaiting=sales", ["awaiting"]),
                         ("stage=sql&route=emea&limit=5", ["stage", "route"])]:
        answer = api.get(f"/v1/leads?email=ada%40acme.io&{query}", headers=ADMIN)
        assert answer.status_code == 422, (query, answer.json_body)
        error = answer.json_body["error"]
        assert error["details"]["field"] == named[0]
        assert [e["field"] for e in error["details"]["errors"]] == named
        assert all(name in error["message"] for name in named) and "ada" not in error["message"]
        assert f"{', '.join(named)} {'filters' if len(named) == 1 else 'filter'} a list of leads" in error["message"]
    unknown = api.get("/v1/leads?email=ada%40acme.io&colour=red", headers=ADMIN)
    assert unknown.status_code == 422 and unknown.json_body["error"]["details"]["field"] == "colour"
