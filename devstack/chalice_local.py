"""``chalice local`` as the local stack runs it: it dies with the stack, and logs no query strings.

    python -m devstack.chalice_local local --port 8000 ...   (the arguments of the chalice CLI)

- The stack starts ``chalice local`` in a session of its own, so that Ctrl-C reaches the stack alone
  and ``stop()`` can end the whole process group. The price: nothing ended it when the stack itself
  was killed (SIGKILL, an OOM kill, a killed ``make`` group), and an orphan kept answering 503s on
  the port. Here the kernel sends it SIGTERM when the stack dies (Linux ``PR_SET_PDEATHSIG``).
- Its access log printed every request line, query string included: ``GET /v1/leads?email=...``
  (personal data) and Mailchimp's ``?key=<secret>``. The path is logged, never the query.
- It serves plain http, and says so: a request that no proxy marked with ``X-Forwarded-Proto``
  gets ``http``, so the URL a sender signed (HubSpot v3) is rebuilt as ``http://<Host>/...``, while
  a tunnel in front (which sets ``https``) still gets its own. API Gateway always sets the header.
- An unknown route gets what API Gateway answers in AWS: the templates' gateway response for
  ``MISSING_AUTHENTICATION_TOKEN`` (a 404 in the app's error shape), not chalice's copy of API
  Gateway's default (``403 {"message": "Missing Authentication Token"}``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any

PARENT_ENV = "BATON_STACK_PID"  # the stack's pid, set by the stack when it starts us
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask for SIGTERM when ``parent`` dies; exit now if it already has (before we could ask)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(0)


def redacted_request_line(command: str | None, path: str | None, version: str | None) -> str:
    """The request line with the query string and fragment cut off."""
    if not command or path is None:
        return "-"
    return f"{command} {path.split('?', 1)[0].split('#', 1)[0]} {version or ''}".rstrip()


def quiet_query_strings() -> None:
    from chalice.local import ChaliceRequestHandler

    def log_request(self: Any, code: Any = "-", size: Any = "-") -> None:
        line = redacted_request_line(getattr(self, "command", None), getattr(self, "path", None),
                                     getattr(self, "request_version", None))
        self.log_message('"%s" %s %s', line, code, size)

    ChaliceRequestHandler.log_request = log_request


def mark_plain_http() -> None:
    from chalice.local import ChaliceRequestHandler

    parse = ChaliceRequestHandler._parse_payload

    def parse_payload(self: Any) -> Any:
        headers, body = parse(self)
        if not any(name.lower() == "x-forwarded-proto" for name in headers):
            headers["X-Forwarded-Proto"] = "http"
        return headers, body

    ChaliceRequestHandler._parse_payload = parse_payload  # type: ignore[method-assign]


def answer_unknown_routes_as_deployed() -> None:
    from chalice.local import LocalGateway, LocalGatewayException

    from devstack.cfn import gateway_response

    status, answer = gateway_response("MISSING_AUTHENTICATION_TOKEN")

    class UnknownRoute(LocalGatewayException):
        CODE = status

    route = LocalGateway._generate_lambda_event

    def generate_lambda_event(self: Any, method: str, path: str, headers: Any, body: Any) -> Any:
        try:
            return route(self, method, path, headers, body)
        except ValueError:  # chalice's "no matching route"
            raise UnknownRoute({"Content-Type": "application/json"}, answer) from None

    LocalGateway._generate_lambda_event = generate_lambda_event  # type: ignore[method-assign]


def main() -> None:
    parent = os.environ.get(PARENT_ENV)
    if parent:
        die_with_parent(int(parent))
    quiet_query_strings()
    mark_plain_http()
    answer_unknown_routes_as_deployed()
    from chalice.cli import main as chalice_main

    sys.argv = ["chalice", *sys.argv[1:]]
    chalice_main()


if __name__ == "__main__":
    main()
