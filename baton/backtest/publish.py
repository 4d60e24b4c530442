"""Publish a backtested rule set: through the library (a ``RulesetService``) or a running API.

``publish_ruleset`` validates first, does nothing unless ``confirm=True`` (it returns the plan),
then creates the version and makes it active. Against an API (``api_url``) it uses
``POST /v1/rulesets`` and ``POST /v1/rulesets/{version}/publish`` with the admin bearer token;
``fetch_active`` reads ``GET /v1/rulesets/active`` and ``fetch_version`` one version. Only the
standard library is used.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from chalicelib.errors import ValidationFailed
from chalicelib.rules.loader import parse_ruleset
from chalicelib.rules.model import RuleSet
from chalicelib.rulesets import RulesetService

TIMEOUT = 30.0


class PublishError(RuntimeError):
    """The API refused or could not be reached; ``status`` and ``body`` say what it answered."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _call(method: str, url: str, token: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json",
    })
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = raw.decode(errors="replace")
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        message = error.get("message") or str(answer)[:200]
        raise PublishError(f"{method} {url}: HTTP {exc.code}: {message}", exc.code, answer) from None
    except urllib.error.URLError as exc:
        base = url.split("/v1/", 1)[0]
        raise PublishError(f"cannot reach the Baton API at {base} ({exc.reason}): is it running (`make run`)? "
                           "Or set BATON_API_URL / --api") from None
    except OSError as exc:  # a timeout or a connection reset mid-answer
        raise PublishError(f"{method} {url}: {exc}") from None


def api_get(api_url: str, admin_token: str, path: str, params: dict[str, str] | None = None) -> Any:
    """GET an admin route of the API (``PublishError`` says what went wrong, in one line)."""
    from urllib.parse import urlencode

    query = f"?{urlencode(params)}" if params else ""
    return _call("GET", f"{api_url.rstrip('/')}{path}{query}", admin_token)


def fetch_active(api_url: str, admin_token: str) -> tuple[int, RuleSet]:
    """The API's active rule set: (version, rule set)."""
    found = _call("GET", f"{api_url.rstrip('/')}/v1/rulesets/active", admin_token)
    return int(found["version"]), parse_ruleset(found["ruleset"])


def fetch_version(api_url: str, admin_token: str, version: int) -> RuleSet:
    """One stored version of the API's rule sets (``GET /v1/rulesets/{version}``)."""
    found = _call("GET", f"{api_url.rstrip('/')}/v1/rulesets/{version}", admin_token)
    return parse_ruleset(found["ruleset"])


def fetch_shadow_comparison(api_url: str, admin_token: str) -> dict[str, Any] | None:
    """The live pilot's comparison (``GET /v1/rulesets/shadow/compare``); None when no shadow runs."""
    try:
        found: dict[str, Any] = _call("GET", f"{api_url.rstrip('/')}/v1/rulesets/shadow/compare", admin_token)
    except PublishError as exc:
        if exc.status == 409:
            return None
        raise
    return found


def validate(ruleset: RuleSet | dict[str, Any]) -> RuleSet:
    """Validate again from plain data, exactly as the API will (errors name the field path)."""
    body = ruleset.model_dump(mode="json", by_alias=True) if isinstance(ruleset, RuleSet) else ruleset
    return parse_ruleset(body)


def publish_ruleset(
    ruleset: RuleSet | dict[str, Any],
    *,
    confirm: bool = False,
    service: RulesetService | None = None,
    api_url: str | None = None,
    admin_token: str | None = None,
) -> dict[str, Any]:
    """Validate, then (with ``confirm``) create and activate the rule set; returns what happened.

    The target is ``api_url`` when given (``admin_token`` required), else ``service``. Without
    ``confirm`` nothing is written: the result says what would be done (``"dry_run": True``).
    """
    try:
        checked = validate(ruleset)
    except ValidationFailed as exc:
        return {"valid": False, "error": str(exc), "details": exc.details, "published": False}
    body = checked.model_dump(mode="json", by_alias=True)
    target = f"API {api_url}" if api_url else "the library's RulesetService"
    if api_url is None and service is None:
        raise ValueError("give a RulesetService (service=...) or an API (api_url=..., admin_token=...)")
    if api_url and not admin_token:
        raise ValueError("publishing through the API needs admin_token (the admin bearer token)")
    plan = {"valid": True, "name": checked.name, "target": target}
    if not confirm:
        return {**plan, "dry_run": True, "published": False,
                "would": f"create a new version of {checked.name!r} on {target} and make it active"}
    if api_url:
        assert admin_token is not None
        base = api_url.rstrip("/")
        created = _call("POST", f"{base}/v1/rulesets", admin_token, body)
        version = int(created["version"])
        published = _call("POST", f"{base}/v1/rulesets/{version}/publish", admin_token, {})
    else:
        assert service is not None
        created = service.create(body)
        version = int(created["version"])
        published = service.publish(version)
    return {**plan, "dry_run": False, "published": True, "version": version, "previous": published.get("previous"),
            "checksum": created.get("checksum")}
