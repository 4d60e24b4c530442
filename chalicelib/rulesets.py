"""The rule-set lifecycle: immutable versions, exactly one active, atomic publish and rollback."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from chalicelib.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from chalicelib.events import iso
from chalicelib.rules.compile import CompiledRuleset, compile_ruleset
from chalicelib.rules.loader import default_ruleset, parse_ruleset
from chalicelib.store.base import ActivePointer, RulesetRepository, RulesetVersion

# A version is one DynamoDB item (at most 400 KB with its keys and attributes): a larger body was a
# 500 after the version number was taken.
MAX_RULESET_BYTES = 350 * 1024


def checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def describe(version: RulesetVersion, active: ActivePointer | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": version.version, "name": version.name, "created_at": iso(version.created_at),
        "checksum": version.checksum,
    }
    if active is not None:
        out["active"] = active.version == version.version
    return out


class RulesetService:
    def __init__(self, repo: RulesetRepository, clock: Callable[[], float], cache_seconds: float = 30.0) -> None:
        self.repo = repo
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._compiled: dict[int, CompiledRuleset] = {}
        self._active: tuple[float, CompiledRuleset, CompiledRuleset | None] | None = None

    # -- authoring -------------------------------------------------------------------------------
    def create(self, body: Any) -> dict[str, Any]:
        ruleset = parse_ruleset(body)  # raises ValidationFailed naming the path
        normalised = ruleset.model_dump(mode="json", by_alias=True, exclude_defaults=False)
        size = len(json.dumps(normalised, separators=(",", ":")).encode())
        if size > MAX_RULESET_BYTES:  # checked before a version number is taken
            raise PayloadTooLarge(
                f"a rule set may be at most {MAX_RULESET_BYTES // 1024} KB once normalised; this one is "
                f"{size // 1024} KB (long named lists belong in fewer, shorter rules)", details={"field": "body"})
        version = self.repo.create(ruleset.name, normalised, checksum(normalised), self.clock())
        return describe(version, self.repo.active())

    def list(self) -> list[dict[str, Any]]:
        active = self.repo.active()
        return [describe(v, active) for v in self.repo.versions()]

    def get(self, version: int) -> dict[str, Any]:
        found = self.repo.get(version)
        if found is None:
            raise NotFound(f"rule set version {version} does not exist", details={"field": "version"})
        return {**describe(found, self.repo.active()), "ruleset": found.body}

    def active_info(self) -> dict[str, Any]:
        pointer = self.repo.active()
        if pointer.version is None:
            raise NotFound("no rule set is published yet; POST /v1/rulesets then publish it")
        return {**self.get(pointer.version), "history": list(pointer.history), "published_at": iso(pointer.updated_at)}

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, version: int) -> dict[str, Any]:
        if self.repo.get(version) is None:
            raise NotFound(f"rule set version {version} does not exist", details={"field": "version"})
        pointer = self.repo.active()
        if pointer.version == version:
            return {"active": version, "previous": pointer.history[-1] if pointer.history else None, "changed": False}
        history = (*pointer.history, pointer.version) if pointer.version is not None else pointer.history
        self.repo.set_active(pointer, version, history[-50:], self.clock())
        self.invalidate()
        return {"active": version, "previous": pointer.version, "changed": True}

    def rollback(self) -> dict[str, Any]:
        pointer = self.repo.active()
        if pointer.version is None or not pointer.history:
            raise Conflict("nothing to roll back to: no earlier version was active")
        target = pointer.history[-1]
        self.repo.set_active(pointer, target, pointer.history[:-1], self.clock())
        self.invalidate()
        return {"active": target, "previous": pointer.version, "changed": True}

    # -- scoring ---------------------------------------------------------------------------------
    def compiled(self, version: int) -> CompiledRuleset:
        with self._lock:
            found = self._compiled.get(version)
        if found is not None:
            return found
        stored = self.repo.get(version)
        if stored is None:
            raise NotFound(f"rule set version {version} does not exist")
        compiled = compile_ruleset(parse_ruleset(stored.body, stored=True), version)  # (warns what it reads undeclared)
        with self._lock:
            self._compiled[version] = compiled
        return compiled

    def active(self) -> CompiledRuleset:
        """The active rule set, read from the store at most once per cache period.

        Before anything is published the shipped default (version 0) scores, so a new install
        works at once; publishing replaces it.
        """
        return self._pointers()[1]

    def shadow(self) -> CompiledRuleset | None:
        """The rule set piloted alongside the active one (scored, never alerted), if any."""
        return self._pointers()[2]

    def _pointers(self) -> tuple[float, CompiledRuleset, CompiledRuleset | None]:
        now = self.clock()
        cached = self._active
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached
        pointer = self.repo.active()
        compiled = self.compiled(pointer.version) if pointer.version is not None else _default_compiled()
        shadow_version = self.repo.shadow()
        shadow = self.compiled(shadow_version) if shadow_version is not None else None
        self._active = (now, compiled, shadow)
        return self._active

    def invalidate(self) -> None:
        self._active = None


_DEFAULT: CompiledRuleset | None = None


def _default_compiled() -> CompiledRuleset:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = compile_ruleset(default_ruleset(), 0)
    return _DEFAULT


def read_upload(raw: bytes, content_type: str) -> Any:
    """A rule set as posted: JSON, or YAML text (validated later, with line numbers for YAML)."""
    from chalicelib.errors import BadRequest
    from chalicelib.json_body import load_json
    from chalicelib.rules.loader import parse_ruleset_text

    if content_type.split(";")[0].strip().lower() == "application/json":
        return load_json(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the rule set is not UTF-8 text", details={"field": "body"}) from None
    return parse_ruleset_text(text).model_dump(mode="json", by_alias=True)


def parse_version(raw: str) -> int:
    text = raw.removeprefix("v")
    if not text.isdigit() or int(text) < 1:
        raise ValidationFailed(f"rule set version must be a positive integer, got {raw!r}", field="version")
    return int(text)
