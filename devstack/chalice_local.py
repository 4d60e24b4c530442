"""``chalice local`` as the local stack runs it: it dies with the stack, and logs no query strings.

    python -m devstack.chalice_local local --port 8000 ...   (the arguments of the chalice CLI)

- The stack starts ``chalice local`` in a session of its own, so that Ctrl-C reaches the stack alone
  and ``stop()`` can end the whole process group. The price: nothing ended it when the stack itself
  was killed (SIGKILL, an OOM kill, a killed ``make`` group), and an orphan kept answering 503s on
  the port. Here the kernel sends it SIGTERM when the stack dies (Linux ``PR_SET_PDEATHSIG``).
- Its access log printed every request line, query string included: ``GET /v1/leads?email=...``
  (personal data) and Mailchimp's ``?key=<secret>``. The path is logged, never the query.
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


def main() -> None:
    parent = os.environ.get(PARENT_ENV)
    if parent:
        die_with_parent(int(parent))
    quiet_query_strings()
    from chalice.cli import main as chalice_main

    sys.argv = ["chalice", *sys.argv[1:]]
    chalice_main()


if __name__ == "__main__":
    main()
