"""Rolling out rule sets safely: publish re-scores every lead; a shadow pilots a candidate.

A re-score is a job fanned out through a queue: one *plan* message per scan segment lists its
leads and sends *page* messages; each page re-scores its leads from their stored events. Pages
are idempotent (a lead already re-scored under the version is skipped; a page's counters are
added once), so SQS redelivery and crashes are harmless and the job resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalicelib.engine import explain
from chalicelib.errors import BatonError, ConcurrencyConflict, Conflict, NotFound
from chalicelib.events import iso
from chalicelib.handoff.body import outbox_items
from chalicelib.outbox.items import OutboxItem
from chalicelib.queues import Queue
from chalicelib.rescore import replay, rescore_state, shadow_view
from chalicelib.rules.compile import CompiledRuleset
from chalicelib.rulesets import RulesetService
from chalicelib.state import STAGE_ORDER, LeadState, Transition
from chalicelib.store.base import Commit, LeadRepository, OutboxRepository

log = logging.getLogger(__name__)
SEGMENTS = 4
PAGE_SIZE = 25
ATTEMPTS = 5


def _sample(state: LeadState, from_stage: str, to_stage: str) -> dict[str, Any]:
    attrs = state.attributes
    name = " ".join(str(attrs[k]) for k in ("first_name", "last_name") if attrs.get(k)) or None
    return {"lead_id": state.lead_id, "name": name, "company": attrs.get("company"),
            "from_stage": from_stage, "stage": to_stage}


class Rollout:
    def __init__(
        self, leads: LeadRepository, rulesets: RulesetService, queue: Queue, outbox: OutboxRepository,
        clock: Callable[[], float],
    ) -> None:
        self.leads = leads
        self.rulesets = rulesets
        self.repo = rulesets.repo
        self.queue = queue
        self.outbox = outbox
        self.clock = clock

    # -- lifecycle -------------------------------------------------------------------------------
    def publish(self, version: int) -> dict[str, Any]:
        result = self.rulesets.publish(version)
        if result["changed"]:
            result["rescore"] = self.start(version, "active")
        return result

    def rollback(self) -> dict[str, Any]:
        result = self.rulesets.rollback()
        result["rescore"] = self.start(result["active"], "active")
        return result

    def start_shadow(self, version: int) -> dict[str, Any]:
        if self.repo.get(version) is None:
            raise NotFound(f"rule set version {version} does not exist", details={"field": "version"})
        if self.repo.active().version == version:
            raise Conflict(f"version {version} is the active one; shadow a candidate instead")
        self.repo.set_shadow(version)
        self.rulesets.invalidate()
        return {"shadow": version, "rescore": self.start(version, "shadow")}

    def stop_shadow(self) -> dict[str, Any]:
        version = self.repo.shadow()
        self.repo.set_shadow(None)
        self.rulesets.invalidate()
        return {"stopped": version}

    def promote_shadow(self) -> dict[str, Any]:
        version = self.repo.shadow()
        if version is None:
            raise Conflict("no shadow rule set to promote; POST /v1/rulesets/{version}/shadow first")
        self.stop_shadow()
        return self.publish(version)

    # -- jobs ------------------------------------------------------------------------------------
    def start(self, version: int, mode: str) -> dict[str, Any]:
        now = self.clock()
        job = {"job_id": f"{mode}-v{version}-{int(now * 1000)}", "version": version, "mode": mode,
               "segments": SEGMENTS, "created_at": now}
        self.repo.create_job(job)
        for segment in range(SEGMENTS):
            self.queue.send({"kind": "plan", "job_id": job["job_id"], "segment": segment})
        return {"job_id": job["job_id"], "mode": mode}

    def status(self, version: int) -> list[dict[str, Any]]:
        return [self._describe(job) for job in self.repo.jobs_for(version)]

    @staticmethod
    def _describe(job: dict[str, Any]) -> dict[str, Any]:
        planned = job["planned"] >= job["segments"]
        complete = planned and job["done"] + job["failed"] >= job["total"]
        return {
            "job_id": job["job_id"], "mode": job["mode"], "status": "complete" if complete else "running",
            "leads_total": job["total"] if planned else None, "leads_done": job["done"],
            "failures": job["failed"], "transitions": job["transitions"], "started_at": iso(job["created_at"]),
        }

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        job = self.repo.get_job(str(message.get("job_id")))
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
        if not self.repo.claim_job_flag(job["job_id"], f"plan_{segment}"):
            return {"planned": 0, "redelivered": True}
        updated = self.repo.add_to_job(job["job_id"], {"planned": 1, "total": len(ids)})
        self._finish(updated)
        return {"planned": len(ids)}

    def _page(self, job: dict[str, Any], page: str, lead_ids: list[str]) -> dict[str, Any]:
        rs = self.rulesets.compiled(int(job["version"]))
        done = failed = 0
        samples: list[dict[str, Any]] = []
        for lead_id in lead_ids:
            try:
                samples += self.rescore_lead(lead_id, rs, job["mode"])
                done += 1
            except BatonError as exc:
                failed += 1
                log.warning("re-score of %s failed: %s", lead_id, exc.code)
        if not self.repo.claim_job_flag(job["job_id"], f"page_{page}"):
            return {"done": 0, "redelivered": True}
        updated = self.repo.add_to_job(
            job["job_id"], {"done": done, "failed": failed, "transitions": len(samples)}, samples[:50]
        )
        self._finish(updated)
        return {"done": done, "failed": failed}

    def rescore_lead(self, lead_id: str, rs: CompiledRuleset, mode: str) -> list[dict[str, Any]]:
        for _ in range(ATTEMPTS):
            stored = self.leads.get(lead_id)
            if stored is None:
                return []
            state = stored.state
            events, outcomes = self.leads.events(lead_id), self.leads.outcomes(lead_id)
            now = self.clock()
            previous = state.stage
            transitions: list[Transition] = []
            if mode == "shadow":
                if state.shadow and state.shadow.get("version") == rs.version and state.shadow.get("replayed"):
                    return []
                fresh = replay(lead_id, state.email, events, outcomes, rs)
                state.shadow = {"version": rs.version, "state": fresh.to_dict(), "replayed": True}
                commit = Commit(state, stored.version)
            else:
                if state.rescored_version == rs.version:
                    return []
                state, transitions = rescore_state(state, events, outcomes, rs, now)
                individual = rs.source.handoff.rescore_alerts == "individual"
                outbox = outbox_items(state, transitions, rs, "rescore", now) if individual else []
                commit = Commit(state, stored.version, outbox=outbox)
            try:
                self.leads.commit(commit)
            except ConcurrencyConflict:
                continue  # a live event landed meanwhile: re-read, it is in the history now
            return [_sample(state, previous, t.to_stage) for t in transitions] if transitions else []
        raise ConcurrencyConflict(f"lead {lead_id} kept changing during its re-score")

    def _finish(self, job: dict[str, Any]) -> None:
        """When the last page is counted, send one digest of the stage changes (if asked to)."""
        described = self._describe(job)
        if described["status"] != "complete" or job["mode"] != "active" or not job["transitions"]:
            return
        rs = self.rulesets.compiled(int(job["version"]))
        if rs.source.handoff.rescore_alerts != "digest" or not self.repo.claim_job_flag(job["job_id"], "digest_sent"):
            return
        body = {"ruleset_version": job["version"], "total": job["transitions"], "transitions": job["samples"],
                "channel": rs.source.handoff.mql_channel}
        self.outbox.put(OutboxItem(f"digest.{job['job_id']}", "digest", body,
                                   {"kind": "digest", "stage": "digest"}, self.clock()))

    # -- shadow comparison -----------------------------------------------------------------------
    def compare(self, limit: int = 2000) -> dict[str, Any]:
        version = self.repo.shadow()
        if version is None:
            raise Conflict("no shadow rule set is running")
        active = self.rulesets.active()
        shadow = self.rulesets.compiled(version)
        counts = {"active": {"mql": 0, "sql": 0}, "shadow": {"mql": 0, "sql": 0}}
        verdict = {"active_right": 0, "shadow_right": 0, "undecided": 0}
        disagreements: list[dict[str, Any]] = []
        compared = 0
        for lead_id in self.leads.lead_ids()[:limit]:
            stored = self.leads.get(lead_id)
            view = shadow_view(stored.state, version) if stored else None
            if stored is None or view is None:
                continue
            compared += 1
            a, s = stored.state, view
            for name, st in (("active", a), ("shadow", s)):
                reached = max((STAGE_ORDER.get(h["stage"], 0) for h in st.stage_history), default=0)
                counts[name]["mql"] += reached >= STAGE_ORDER["mql"]
                counts[name]["sql"] += reached >= STAGE_ORDER["sql"]
            a_sql, s_sql = _reached_sql(a), _reached_sql(s)
            if a_sql == s_sql and _top(a) == _top(s):
                continue
            outcome = _final_outcome(self.leads.outcomes(lead_id))
            right = _who_was_right(a_sql, s_sql, outcome)
            verdict[right] += 1
            disagreements.append({
                "lead_id": lead_id, "active_stage": _top(a), "shadow_stage": _top(s), "outcome": outcome,
                "right": right, "why": _why(a, active, s, shadow, self.clock()),
            })
        return {"active_version": active.version, "shadow_version": version, "compared": compared,
                "counts": counts, "disagreements": disagreements[:200], "verdict": verdict}


def _top(state: LeadState) -> str:
    return max(({h["stage"] for h in state.stage_history} | {state.stage}), key=lambda s: STAGE_ORDER.get(s, 0))


def _reached_sql(state: LeadState) -> bool:
    return any(h["stage"] == "sql" for h in state.stage_history) or STAGE_ORDER.get(state.stage, 0) >= 2


def _final_outcome(outcomes: list[dict[str, Any]]) -> str | None:
    decisive = [o["outcome"] for o in outcomes if o.get("outcome") in ("won", "opportunity", "lost", "rejected",
                                                                       "disqualified")]
    return decisive[-1] if decisive else None


def _who_was_right(active_sql: bool, shadow_sql: bool, outcome: str | None) -> str:
    if outcome is None or active_sql == shadow_sql:
        return "undecided"
    good = outcome in ("won", "opportunity")
    return "active_right" if active_sql == good else "shadow_right"


def _why(a: LeadState, ars: CompiledRuleset, s: LeadState, srs: CompiledRuleset, now: float) -> list[str]:
    """The rule contributions that differ between the two versions."""
    ea, es = explain(a, ars, now), explain(s, srs, now)
    lines = []
    for kind in ("fit", "engagement"):
        left = {r["rule"]: r["points"] for r in ea[kind]["rules"]}
        right = {r["rule"]: r["points"] for r in es[kind]["rules"]}
        for rule in sorted(set(left) | set(right)):
            if round(left.get(rule, 0), 1) != round(right.get(rule, 0), 1):
                lines.append(f"{kind} {rule}: active {left.get(rule, 0):.1f}, shadow {right.get(rule, 0):.1f}")
    for name, state in (("active", a), ("shadow", s)):
        last = state.stage_history[-1] if state.stage_history else None
        lines.append(f"{name}: {last['stage']} ({last['reason']})" if last else f"{name}: still a lead")
    return lines[:12]


