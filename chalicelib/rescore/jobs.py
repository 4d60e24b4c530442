"""The re-score job: every lead replayed under a version, fanned out through a queue.

One *plan* message per scan segment lists its leads and sends *page* messages; each page re-scores
its leads from their stored events and outcomes. Pages are idempotent (a lead already re-scored
under the version is skipped; a page's counters are added once), so SQS redelivery and crashes are
harmless and the job resumes where it stopped.

A lead the re-score makes an SQL gets the normal SQL alert to its route (reasons, Accept / Reject /
Recycle), saying which change of rule set caused it; the outbox delivers those at each channel's
pace, so thousands of them queue a second apart instead of bursting. The other stage changes (MQL,
disqualified) go out as one digest when the last page is counted (``handoff.rescore_alerts:
digest``), as normal alerts (``individual``) or not at all (``none``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalicelib import shadow
from chalicelib.errors import BatonError, ConcurrencyConflict
from chalicelib.events import iso
from chalicelib.handoff.body import outbox_items
from chalicelib.outbox.items import OutboxItem
from chalicelib.queues import Queue
from chalicelib.rescore.replay import replay, rescore_state
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rulesets import RulesetService
from chalicelib.state import LeadState, Transition
from chalicelib.store.base import Commit, JobRepository, LeadRepository, OutboxRepository

log = logging.getLogger(__name__)
SEGMENTS = 4
PAGE_SIZE = 25
ATTEMPTS = 5
MODES = ("active", "shadow")


def _sample(state: LeadState, from_stage: str, to_stage: str, alerted: bool) -> dict[str, Any]:
    attrs = state.attributes
    name = " ".join(str(attrs[k]) for k in ("first_name", "last_name") if attrs.get(k)) or None
    return {"lead_id": state.lead_id, "name": name, "company": attrs.get("company"),
            "from_stage": from_stage, "stage": to_stage, "alerted": alerted}


class RescoreJobs:
    def __init__(
        self, leads: LeadRepository, rulesets: RulesetService, jobs: JobRepository, queue: Queue,
        outbox: OutboxRepository, clock: Callable[[], float],
    ) -> None:
        self.leads = leads
        self.rulesets = rulesets
        self.jobs = jobs
        self.queue = queue
        self.outbox = outbox
        self.clock = clock

    def start(self, version: int, mode: str) -> dict[str, Any]:
        """Re-score every lead under ``version``: as the active rule set, or as the shadow's view."""
        assert mode in MODES
        now = self.clock()
        job = {"job_id": f"{mode}-v{version}-{int(now * 1000)}", "version": version, "mode": mode,
               "segments": SEGMENTS, "created_at": now}
        self.jobs.create(job)
        for segment in range(SEGMENTS):
            self.queue.send({"kind": "plan", "job_id": job["job_id"], "segment": segment})
        return {"job_id": job["job_id"], "mode": mode}

    def status(self, version: int) -> list[dict[str, Any]]:
        return [self._describe(job) for job in self.jobs.for_version(version)]

    @staticmethod
    def _describe(job: dict[str, Any]) -> dict[str, Any]:
        planned = job["planned"] >= job["segments"]
        complete = planned and job["done"] + job["failed"] >= job["total"]
        return {
            "job_id": job["job_id"], "mode": job["mode"], "status": "complete" if complete else "running",
            "leads_total": job["total"] if planned else None, "leads_done": job["done"],
            "failures": job["failed"], "transitions": job["transitions"], "alerted": job["alerted"],
            "started_at": iso(job["created_at"]),
        }

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """One queue message: a plan (list a segment's leads, send their pages) or a page."""
        job = self.jobs.get(str(message.get("job_id")))
        if job is None:
            log.warning("re-score message for an unknown job; dropped")
            return {"ignored": True}
        if message.get("kind") == "plan":
            return self._plan(job, int(message["segment"]))
        return self._page(job, message["page"], list(message["lead_ids"]))

    def _plan(self, job: dict[str, Any], segment: int) -> dict[str, Any]:
        ids = self.leads.lead_ids(segment, job["segments"])
        pages = [ids[i : i + PAGE_SIZE] for i in range(0, len(ids), PAGE_SIZE)]
        # Send first, count once: a crash in between redelivers the plan, whose pages go out again
        # (pages dedupe themselves) instead of being lost behind an already-set flag.
        for n, page in enumerate(pages):
            self.queue.send({"kind": "page", "job_id": job["job_id"], "page": f"{segment}.{n}", "lead_ids": page})
        if not self.jobs.claim_flag(job["job_id"], f"plan_{segment}"):
            return {"planned": 0, "redelivered": True}
        updated = self.jobs.add(job["job_id"], {"planned": 1, "total": len(ids)})
        self._finish(updated)
        return {"planned": len(ids)}

    def _page(self, job: dict[str, Any], page: str, lead_ids: list[str]) -> dict[str, Any]:
        rs = self.rulesets.compiled(int(job["version"]))
        done = failed = 0
        changes: list[dict[str, Any]] = []
        for lead_id in lead_ids:
            try:
                changes += self.rescore_lead(lead_id, rs, job["mode"])
                done += 1
            except BatonError as exc:
                failed += 1
                log.warning("re-score of %s failed: %s", lead_id, exc.code)
        if not self.jobs.claim_flag(job["job_id"], f"page_{page}"):
            return {"done": 0, "redelivered": True}
        digest = [{k: v for k, v in c.items() if k != "alerted"} for c in changes if not c["alerted"]]
        updated = self.jobs.add(
            job["job_id"],
            {"done": done, "failed": failed, "transitions": len(changes), "alerted": len(changes) - len(digest)},
            digest[:50],
        )
        self._finish(updated)
        return {"done": done, "failed": failed}

    def rescore_lead(self, lead_id: str, rs: CompiledRuleset, mode: str) -> list[dict[str, Any]]:
        """Re-score one lead; its stage changes, each saying whether it was alerted on its own."""
        for _ in range(ATTEMPTS):
            stored = self.leads.get(lead_id)
            if stored is None:
                return []
            state = stored.state
            done = shadow.replayed(state, rs.version) if mode == "shadow" else state.rescored_version == rs.version
            if done:
                return []  # by an earlier delivery of this page
            events, outcomes = self.leads.events(lead_id), self.leads.outcomes(lead_id)
            now = self.clock()
            previous, from_version = state.stage, state.ruleset_version
            transitions: list[Transition] = []
            outbox: list[OutboxItem] = []
            if mode == "shadow":
                shadow.start(state, replay(lead_id, state.email, events, outcomes, rs), rs.version)
                commit = Commit(state, stored.version)
            else:
                state, transitions = rescore_state(state, events, outcomes, rs, now)
                individual = rs.source.handoff.rescore_alerts == "individual"
                announced = [t for t in transitions if individual or t.to_stage == "sql"]
                outbox = outbox_items(state, announced, rs, "rescore", now,
                                      rescore={"from_version": from_version, "to_version": rs.version})
                commit = Commit(state, stored.version, outbox=outbox)
            try:
                self.leads.commit(commit)
            except ConcurrencyConflict:
                continue  # a live event landed meanwhile: re-read, it is in the history now
            alerted = {item.id for item in outbox}
            return [_sample(state, previous, t.to_stage, t.id in alerted) for t in transitions]
        raise ConcurrencyConflict(f"lead {lead_id} kept changing during its re-score")

    def _finish(self, job: dict[str, Any]) -> None:
        """When the last page is counted, send one digest of the stage changes not alerted on their
        own (if asked to)."""
        described = self._describe(job)
        unalerted = job["transitions"] - job["alerted"]
        if described["status"] != "complete" or job["mode"] != "active" or not unalerted:
            return
        rs = self.rulesets.compiled(int(job["version"]))
        if rs.source.handoff.rescore_alerts != "digest" or not self.jobs.claim_flag(job["job_id"], "digest_sent"):
            return
        body = {"ruleset_version": job["version"], "total": unalerted, "transitions": job["samples"],
                "channel": rs.source.handoff.mql_channel, "sql_alerts": job["alerted"]}
        self.outbox.put(OutboxItem(f"digest.{job['job_id']}", "digest", body,
                                   {"kind": "digest", "stage": "digest"}, self.clock()))
