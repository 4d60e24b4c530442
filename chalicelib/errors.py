"""The one error family. Adapters translate library errors into these; only app.py maps them to HTTP."""

from __future__ import annotations

import re
from typing import Any


class BatonError(Exception):
    """Base of every error Baton raises on purpose.

    ``code`` is a stable machine-readable name, ``status`` the HTTP status app.py answers with,
    ``details`` extra structured context (for example the offending field).
    """

    code = "error"
    status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(BatonError):
    code = "bad_request"
    status = 400


class ValidationFailed(BatonError):
    """The request was well-formed but a field is wrong. ``details['field']`` names it."""

    code = "validation_failed"
    status = 422

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None) -> None:
        merged = dict(details or {})
        if field is not None:
            merged.setdefault("field", field)
        super().__init__(message, details=merged)
        self.field = field


class Unauthorized(BatonError):
    code = "unauthorized"
    status = 401


class NotFound(BatonError):
    code = "not_found"
    status = 404


class Conflict(BatonError):
    code = "conflict"
    status = 409


class Misconfigured(BatonError):
    """This deployment's own settings are wrong (a source's settings in SSM, a key): the sender did
    nothing wrong. A 5xx, so vendors retry the delivery once the setting is fixed, where a 4xx would
    have them drop it; app.py logs the message, which names the setting and holds no lead data."""

    code = "misconfigured"
    status = 500


class PayloadTooLarge(BatonError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(BatonError):
    code = "unsupported_media_type"
    status = 415


class Unavailable(BatonError):
    """A dependency is busy or down; the client may retry after ``retry_after`` seconds."""

    code = "unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: int = 1, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class RateLimited(BatonError):
    """Too many requests of one kind (public form posts for one address); retry after ``retry_after`` s."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, *, retry_after: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


def aws_unavailable(exc: Exception) -> Unavailable | None:
    """An AWS call that failed after the SDK's own retries (unreachable, timed out, throttled,
    failing) as the retryable 503 a client should see; None for anything that is not AWS's."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError):
        return Unavailable("a backing AWS service did not answer; retry shortly", retry_after=2,
                           details={"cause": type(exc).__name__})
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        return Unavailable("a backing AWS service failed; retry shortly", retry_after=2, details={"cause": code})
    return None


class DeliveryFailed(BatonError):
    """A downstream delivery (SNS, Slack) failed after its retries; the caller must not drop it."""

    code = "delivery_failed"
    status = 502


class ConcurrencyConflict(Conflict):
    """Someone else wrote the same item first; the caller re-reads and retries."""

    code = "concurrent_update"


class DuplicateEvents(Conflict):
    """Some events of a write were stored before (a redelivery); ``event_ids`` names them."""

    code = "duplicate_events"

    def __init__(self, event_ids: list[str]) -> None:
        super().__init__(f"{len(event_ids)} event(s) already recorded", details={"event_ids": event_ids})
        self.event_ids = event_ids


# Chalice answers some requests itself, before a view runs (a method the route does not take, a
# Content-Type it does not accept, an exception no view caught), as {"Code": "MethodNotAllowedError"}.
# The same errors under this family's names; any other Chalice code in snake_case.
_CHALICE_CODES = {
    "BadRequest": "bad_request", "BadRequestError": "bad_request", "UnauthorizedError": "unauthorized",
    "ForbiddenError": "forbidden", "NotFoundError": "not_found", "MethodNotAllowedError": "method_not_allowed",
    "RequestTimeoutError": "request_timeout", "ConflictError": "conflict",
    "UnprocessableEntityError": "validation_failed", "TooManyRequestsError": "too_many_requests",
    "UnsupportedMediaType": "unsupported_media_type", "InternalServerError": "internal_error",
}  # fmt: skip


def chalice_error_code(code: str) -> str:
    """The code Baton answers for one of Chalice's own errors (``MethodNotAllowedError`` ...)."""
    known = _CHALICE_CODES.get(code)
    if known:
        return known
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", code.removesuffix("Error")).lower()
    return re.sub(r"[^a-z0-9_]+", "_", words).strip("_") or "error"
