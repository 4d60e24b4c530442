"""Rolling out rule sets safely: publish and rollback re-score every lead; a shadow pilots a candidate.

The re-score itself is ``rescore.jobs``; shadow scoring and its comparison are ``shadow``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib import shadow
from chalicelib.errors import Conflict, NotFound
from chalicelib.rescore.jobs import RescoreJobs
from chalicelib.rulesets import RulesetService
from chalicelib.store.base import LeadRepository


class Rollout:
    def __init__(
        self, leads: LeadRepository, rulesets: RulesetService, rescore: RescoreJobs, clock: Callable[[], float],
    ) -> None:
        self.leads = leads
        self.rulesets = rulesets
        self.repo = rulesets.repo
        self.rescore = rescore
        self.clock = clock

    def publish(self, version: int) -> dict[str, Any]:
        result = self.rulesets.publish(version)
        if result["changed"]:
            result["rescore"] = self.rescore.start(version, "active")
        return result

    def rollback(self) -> dict[str, Any]:
        result = self.rulesets.rollback()
        result["rescore"] = self.rescore.start(result["active"], "active")
        return result

    def start_shadow(self, version: int) -> dict[str, Any]:
        if self.repo.get(version) is None:
            raise NotFound(f"rule set version {version} does not exist", details={"field": "version"})
        if self.repo.active().version == version:
            raise Conflict(f"version {version} is the active one; shadow a candidate instead")
        self.repo.set_shadow(version)
        self.rulesets.invalidate()
        return {"shadow": version, "rescore": self.rescore.start(version, "shadow")}

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

    def compare(self, limit: int = 2000) -> dict[str, Any]:
        version = self.repo.shadow()
        if version is None:
            raise Conflict("no shadow rule set is running")
        return shadow.compare(self.leads, self.rulesets.active(), self.rulesets.compiled(version), self.clock(), limit)
