"""The re-score job repository: one contract, run on the in-memory twin and on DynamoDB (moto)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from chalicelib.errors import Conflict
from chalicelib.store.base import JobRepository


@pytest.fixture(params=["memory", "dynamodb"])
def jobs(request: pytest.FixtureRequest) -> JobRepository:
    if request.param == "memory":
        from chalicelib.store.memory import InMemoryJobs

        return InMemoryJobs()
    request.getfixturevalue("moto_aws")
    from chalicelib.store.dynamodb import DynamoDBJobs

    return DynamoDBJobs(os.environ["BATON_RULESETS_TABLE"])


def _job(job_id: str, version: int, created_at: float) -> dict[str, Any]:
    return {"job_id": job_id, "version": version, "mode": "active", "segments": 4, "created_at": created_at}


def test_a_new_job_has_its_spec_and_zero_counters(jobs: JobRepository) -> None:
    assert jobs.get("j1") is None
    jobs.create(_job("j1", 2, 10.0))
    assert jobs.get("j1") == {
        **_job("j1", 2, 10.0), "planned": 0, "total": 0, "done": 0, "failed": 0, "transitions": 0, "alerted": 0,
        "samples": [], "digest_sent": False,
    }
    with pytest.raises(Conflict):
        jobs.create(_job("j1", 3, 11.0))
    assert jobs.get("j1")["version"] == 2  # type: ignore[index]


def test_jobs_of_a_version_oldest_first(jobs: JobRepository) -> None:
    jobs.create(_job("late", 2, 30.0))
    jobs.create(_job("other", 3, 20.0))
    jobs.create(_job("early", 2, 10.0))
    assert [j["job_id"] for j in jobs.for_version(2)] == ["early", "late"]
    assert jobs.for_version(9) == []


def test_counters_add_up_and_samples_stop_at_fifty(jobs: JobRepository) -> None:
    jobs.create(_job("j1", 2, 10.0))
    jobs.add("j1", {"planned": 1, "total": 40})
    samples = [{"lead_id": f"L{i}", "stage": "mql"} for i in range(30)]
    after = jobs.add("j1", {"done": 25, "failed": 1, "transitions": 30}, samples)
    assert (after["planned"], after["total"], after["done"], after["failed"]) == (1, 40, 25, 1)
    assert after["samples"] == samples
    after = jobs.add("j1", {"done": 15, "transitions": 30, "alerted": 4}, samples)
    assert (after["done"], after["transitions"], after["alerted"]) == (40, 60, 4)
    assert after["samples"] == (samples + samples)[:50]  # kept for the digest
    assert jobs.get("j1") == after


def test_a_flag_is_claimed_once(jobs: JobRepository) -> None:
    jobs.create(_job("j1", 2, 10.0))
    assert jobs.claim_flag("j1", "page_0.0") is True
    assert jobs.claim_flag("j1", "page_0.0") is False  # a redelivered page adds nothing
    assert jobs.claim_flag("j1", "page_0.1") is True
    assert jobs.claim_flag("j1", "digest_sent") is True
    assert jobs.claim_flag("j1", "digest_sent") is False
    assert jobs.get("j1")["digest_sent"] is True  # type: ignore[index]


def test_an_erased_lead_leaves_every_jobs_samples(jobs: JobRepository) -> None:
    jobs.create(_job("j1", 2, 10.0))
    jobs.create(_job("j2", 3, 20.0))
    named = {"lead_id": "L1", "name": "Ada Lovelace", "company": "Engines", "stage": "sql"}
    jobs.add("j1", {"transitions": 2}, [named, {"lead_id": "L2", "stage": "mql"}])
    jobs.add("j2", {"transitions": 1}, [{"lead_id": "L2", "stage": "mql"}])
    assert jobs.erase_lead("L1") == 1
    assert [s["lead_id"] for s in jobs.get("j1")["samples"]] == ["L2"]  # type: ignore[index]
    assert jobs.get("j1")["transitions"] == 2  # type: ignore[index]  # counts name nobody: they stay
    assert jobs.erase_lead("L1") == 0
