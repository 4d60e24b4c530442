"""Baton's Chalice app: routes and event handlers only. Each parses, calls chalicelib, returns.

Errors: views raise ``chalicelib.errors.BatonError``; ``_api`` maps them to ``{"error": {...}}``
with their status, and the middleware gives Chalice's own errors (405, 415...) the same shape.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from chalice import Chalice, Rate, Response

from chalicelib.bootstrap import container
from chalicelib.config import Settings
from chalicelib.errors import BatonError, Misconfigured, PayloadTooLarge, aws_unavailable
from chalicelib.observability import configure_logging

app = Chalice(app_name="baton")
log = logging.getLogger("baton.api")
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # in Lambda: JSON logs and EMF metrics on stdout
    configure_logging()

JSON = ["application/json"]
FORM_TYPES = ["application/json", "application/x-www-form-urlencoded"]
WEBHOOK_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain"]
MAX_JSON_BODY = 1024 * 1024


def _error(exc: BatonError, headers: dict[str, str] | None = None) -> Response:
    out = {"Content-Type": "application/json", **(headers or {})}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        out["Retry-After"] = str(retry_after)
    return Response(body=exc.to_dict(), status_code=exc.status, headers=out)


def _headers() -> dict[str, str]:
    return {k.lower(): v for k, v in (app.current_request.headers or {}).items()}


def _body(limit: int = MAX_JSON_BODY) -> bytes:
    raw: bytes = app.current_request.raw_body or b""
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes", details={"field": "body"})
    return raw


def _json_body() -> Any:
    from chalicelib.json_body import load_json

    return load_json(_body())


def _api(path: str, methods: list[str], *, auth: tuple[str, ...] = (), content_types: list[str] | None = None,
         ) -> Callable[[Callable[..., Any]], Any]:
    """``app.route`` plus bearer-token auth (enforced by chalice local too) and error mapping."""

    def register(view: Callable[..., Any]) -> Any:
        @functools.wraps(view)
        def handler(**params: Any) -> Any:
            try:
                if auth:
                    from chalicelib.auth import require_token

                    require_token(_headers(), container().secrets, *auth)
                return view(**params)
            except Misconfigured as exc:  # (ours to fix: the log says what, naming the setting)
                log.error("misconfigured: %s", exc.message)
                return _error(exc, _cors_headers())
            except BatonError as exc:
                return _error(exc, _cors_headers())
            except Exception as exc:  # an AWS dependency down is the client's 503 to retry, not our 500
                unavailable = aws_unavailable(exc)
                if unavailable is None:
                    raise
                log.warning("AWS call failed", extra={"cause": unavailable.details.get("cause")})
                return _error(unavailable, _cors_headers())

        return app.route(path, methods=methods, content_types=content_types or JSON)(handler)

    return register


ADMIN = ("admin-token",)
INGEST = ("ingest-token", "admin-token")


@app.middleware("http")
def _uniform_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    from chalicelib.errors import chalice_error_code

    response = get_response(event)
    body = response.body
    if response.status_code == 405 and isinstance(body, dict) and "Code" in body:
        taken = _parameter_route(event.path, event.method)
        if taken is not None:  # e.g. GET /v1/rulesets/shadow: the version route judges "shadow"
            pattern, params = taken
            answer = app.routes[pattern][event.method].view_function(**params)
            return answer if isinstance(answer, Response) else Response(body=answer, status_code=200)
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:  # Chalice's own errors
        status = response.status_code
        message = str(body.get("Message")) if status < 500 else "internal error"
        details: dict[str, Any] = {}
        if status == 415:
            details["field"] = "Content-Type"
        elif status == 405:  # say what the route takes, as HTTP asks (Allow)
            allowed = sorted((app.routes.get((event.context or {}).get("resourcePath", "")) or {}).keys())
            details["allowed"] = allowed
            response.headers["Allow"] = ", ".join(allowed)
        response.body = {"error": {"code": chalice_error_code(str(body.get("Code"))), "message": message,
                                   "details": details}}
        response.headers["Content-Type"] = "application/json"
    return response


def _parameter_route(path: str, method: str) -> tuple[str, dict[str, str]] | None:
    """The route with path parameters that ``path``, a fixed route not taking ``method``, also
    spells, and its parameters: a client asking ``GET /v1/rulesets/{version}`` with the version
    ``shadow`` means that route (and gets its 422 naming ``version``), not ``DELETE
    /v1/rulesets/shadow``'s 405. (Chalice matches fixed routes first; API Gateway answers it as an
    unknown route.)"""
    parts = path.split("/")
    for pattern, methods in app.routes.items():
        if method not in methods or "{" not in pattern:
            continue
        names = pattern.split("/")
        if len(names) == len(parts) and all(n.startswith("{") or n == p for n, p in zip(names, parts, strict=True)):
            return pattern, {n[1:-1]: p for n, p in zip(names, parts, strict=True) if n.startswith("{")}
    return None


def _cors_headers() -> dict[str, str]:
    origin = _headers().get("origin", "")
    if origin and origin.rstrip("/") in container().settings.cors_origins:
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
    return {}


# -- health ------------------------------------------------------------------------------------

@app.route("/health", methods=["GET"])
def health() -> Response:
    from chalicelib.health import health as check

    report = check(container().settings)
    return Response(body=report, status_code=200 if report["status"] == "ok" else 503)


# -- ingestion ---------------------------------------------------------------------------------

@_api("/v1/forms/{form_id}", ["POST"], content_types=FORM_TYPES)
def submit_form(form_id: str) -> Response:
    from chalicelib.forms import submit

    c = container()
    reply = submit(form_id, _headers().get("content-type", ""), app.current_request.raw_body or b"", c.leads,
                   c.settings.redirect_allowlist)
    if reply.redirect:
        return Response(body="", status_code=303, headers={"Location": reply.redirect, **_cors_headers()})
    return Response(body=reply.body, status_code=200, headers=_cors_headers())


@app.route("/v1/forms/{form_id}", methods=["OPTIONS"])
def form_preflight(form_id: str) -> Response:
    headers = _cors_headers()
    return Response(body="", status_code=204 if headers else 403, headers=headers)


@_api("/v1/events", ["POST"], auth=INGEST)
def post_events() -> Response:
    from chalicelib.schemas import parse_events

    c = container()
    active = c.rulesets.active()  # (cached: the types and attributes it declares are the vocabulary)
    events = parse_events(_json_body(), c.clock(), active.event_types, active.declared)
    return Response(body=c.leads.ingest(events), status_code=202)


@_api("/v1/identify", ["POST"], auth=INGEST)
def identify() -> Response:
    from chalicelib.schemas import parse_identify

    c = container()
    result = c.leads.identify(parse_identify(_json_body(), c.clock(), c.rulesets.active().declared))
    return Response(body=result.summary(), status_code=200)


# -- leads (admin) -----------------------------------------------------------------------------

@_api("/v1/leads", ["GET"], auth=ADMIN)
def find_leads() -> Any:
    from chalicelib.lead_list import check_lookup, parse_query
    from chalicelib.paging import page_params

    params = app.current_request.query_params or {}
    if "email" not in params:
        return container().leads.list_leads(parse_query(params))
    check_lookup(params)
    limit, cursor = page_params(params)
    return container().leads.get_by_email(params.get("email"), limit=limit, cursor=cursor)


@_api("/v1/leads/{lead_id}", ["GET"], auth=ADMIN)
def get_lead(lead_id: str) -> Any:
    from chalicelib.paging import page_params

    limit, cursor = page_params(app.current_request.query_params or {})
    return container().leads.get(lead_id, limit=limit, cursor=cursor)


@app.route("/v1/leads/{lead_id}/page", methods=["GET"])
def lead_page(lead_id: str) -> Response:
    """HTML for a rep, opened from the Slack alert's signed link (no token: the link is the credential)."""
    from chalicelib.leadpage.service import open_page

    c = container()
    status, html, headers = open_page(lead_id, app.current_request.query_params or {}, c.secrets, c.leads_repo,
                                      c.rulesets, c.clock())
    return Response(body=html, status_code=status, headers=headers)


@_api("/v1/leads/{lead_id}", ["DELETE"], auth=ADMIN)
def erase_lead(lead_id: str) -> Any:
    return container().erasure.erase(lead_id)


@_api("/v1/leads/{lead_id}/outcome", ["POST"], auth=ADMIN)
def record_outcome(lead_id: str) -> Any:
    from chalicelib.schemas import OutcomeIn, validate

    body: OutcomeIn = validate(OutcomeIn, _json_body())
    return container().leads.record_outcome(
        lead_id, body.outcome, reason=body.reason, answers=body.answers(), actor=body.actor
    )


# -- rule sets (admin) -------------------------------------------------------------------------

@_api("/v1/rulesets", ["GET"], auth=ADMIN)
def list_rulesets() -> Any:
    return {"rulesets": container().rulesets.list()}


@_api("/v1/rulesets", ["POST"], auth=ADMIN, content_types=["application/json", "application/yaml", "text/yaml"])
def create_ruleset() -> Response:
    from chalicelib.rulesets import read_upload

    body = read_upload(_body(), _headers().get("content-type", "application/json"))
    return Response(body=container().rulesets.create(body), status_code=201)


@_api("/v1/rulesets/active", ["GET"], auth=ADMIN)
def active_ruleset() -> Any:
    c = container()
    active = c.rulesets.active_info()
    return {**active, "rescore": c.rescore.status(active["version"])}


@_api("/v1/rulesets/{version}", ["GET"], auth=ADMIN)
def get_ruleset(version: str) -> Any:
    from chalicelib.rulesets import parse_version

    c = container()
    number = parse_version(version)
    return {**c.rulesets.get(number), "rescore": c.rescore.status(number)}


@_api("/v1/rulesets/{version}/publish", ["POST"], auth=ADMIN)
def publish_ruleset(version: str) -> Any:
    from chalicelib.rulesets import parse_version

    return container().rollout.publish(parse_version(version))


@_api("/v1/rulesets/rollback", ["POST"], auth=ADMIN)
def rollback_ruleset() -> Any:
    return container().rollout.rollback()


@_api("/v1/rulesets/{version}/shadow", ["POST"], auth=ADMIN)
def start_shadow(version: str) -> Any:
    from chalicelib.rulesets import parse_version

    return container().rollout.start_shadow(parse_version(version))


@_api("/v1/rulesets/shadow", ["DELETE"], auth=ADMIN)
def stop_shadow() -> Any:
    return container().rollout.stop_shadow()


@_api("/v1/rulesets/shadow/promote", ["POST"], auth=ADMIN)
def promote_shadow() -> Any:
    return container().rollout.promote_shadow()


@_api("/v1/rulesets/shadow/compare", ["GET"], auth=ADMIN)
def compare_shadow() -> Any:
    return container().rollout.compare()


# -- Slack -------------------------------------------------------------------------------------

@_api("/v1/slack/interactions", ["POST"], content_types=["application/x-www-form-urlencoded"])
def slack_interactions() -> Response:
    from chalicelib.handoff.interactions import handle_interaction

    c = container()
    answer = handle_interaction(_body(256 * 1024), _headers(), c.secrets, c.leads, c.outbox, c.notifier, c.clock)
    return Response(body=answer, status_code=200)


# -- event handlers (not HTTP: SNS, schedules, streams) ----------------------------------------

# Event sources are named when chalice reads the app (at package time): from the environment, as
# Settings reads it, not from the per-process cache.
SOURCE_NAMES = Settings.from_env()


@app.on_sns_message(topic=SOURCE_NAMES.handoff_topic, name="slack_notifier")
def slack_notifier(event: Any) -> None:
    from chalicelib.handoff.delivery import deliver_sns_event

    deliver_sns_event(event.to_dict(), container().deliverer())


def _relay() -> dict[str, int]:
    from chalicelib.outbox.relay import relay

    c = container()
    return relay(c.outbox, c.publisher())


@app.on_sqs_message(queue=SOURCE_NAMES.rescore_queue, batch_size=1, name="rescore_worker")
def rescore_worker(event: Any) -> None:
    import json

    rescore = container().rescore
    for record in event:
        rescore.handle(json.loads(record.body))


@app.schedule(Rate(1, unit=Rate.MINUTES), name="outbox_sweeper")
def outbox_sweeper(event: Any) -> dict[str, int]:
    from chalicelib.outbox.relay import report_backlog

    result = _relay()
    report_backlog(container().outbox)
    return result


@app.schedule(Rate(1, unit=Rate.MINUTES), name="delivery_sweeper")
def delivery_sweeper(event: Any) -> dict[str, int]:
    c = container()
    return c.deliverer().sweep(c.settings.delivery_sweep_seconds)


@app.schedule(Rate(15, unit=Rate.MINUTES), name="sla_checker")
def sla_checker(event: Any) -> dict[str, Any]:
    from chalicelib.handoff.reminders import check_sla

    c = container()
    return check_sla(c.leads_repo, c.rulesets, c.clock(), c.outbox)


if SOURCE_NAMES.outbox_stream_arn:
    # In AWS the outbox table's stream relays at once; the sweeper only catches what it missed.
    @app.on_dynamodb_record(stream_arn=SOURCE_NAMES.outbox_stream_arn, name="outbox_relay",
                            batch_size=10)
    def outbox_relay(event: Any) -> dict[str, int]:
        from chalicelib.outbox.relay import new_message

        if not any(new_message(record.to_dict()) for record in event):  # delivery updates, claims, slots
            return {"sent": 0, "failed": 0}
        return _relay()


# -- vendor webhooks ---------------------------------------------------------------------------

@_api("/v1/webhooks/{source}", ["POST", "GET"], content_types=WEBHOOK_TYPES)
def vendor_webhook(source: str) -> Response:
    from chalicelib.webhooks import receive, webhook_request

    c = container()
    request = app.current_request
    hook = webhook_request(
        request.method, _headers(), dict(request.query_params or {}), (request.context or {}).get("path"),
        _body(5 * 1024 * 1024) if request.method == "POST" else b"", source,
    )
    result = receive(source, hook, c.secrets, c.leads, c.clock())
    return Response(body=result.body if result.body is not None else {"ok": True}, status_code=result.status)
