"""Where the ``baton`` CLI finds the API, and the one line it says when a setting is missing.

The API is ``--api``, else ``BATON_API_URL``, else the URL the running local stack wrote to its
``stack.json`` (``$BATON_LOCAL_DIR/stack.json``, or the nearest ``.baton/stack.json`` from the
current directory up), else ``http://127.0.0.1:8000``. The local stack removes that file when it
stops; a file left by a stack that was killed names a process that is gone and is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_ADMIN_TOKEN = "dev-admin-token"  # the local stack's development default
STACK_FILE = "stack.json"


def local_stack() -> dict[str, Any] | None:
    """What the running local stack says about itself (``api_url``, ``aws_endpoint``...), or None."""
    for path in _stack_files():
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and _alive(info.get("pid")):
            return info
    return None


def _stack_files() -> Iterator[Path]:
    configured = os.environ.get("BATON_LOCAL_DIR")
    if configured:
        yield Path(configured) / STACK_FILE
        return
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        yield folder / ".baton" / STACK_FILE


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def api_url() -> str:
    stack = None if os.environ.get("BATON_API_URL") else local_stack()
    return os.environ.get("BATON_API_URL") or str((stack or {}).get("api_url") or DEFAULT_API_URL)


def admin_token() -> str:
    return os.environ.get("BATON_ADMIN_TOKEN") or DEFAULT_ADMIN_TOKEN


def _local_aws_hint() -> str:
    stack = local_stack()
    if stack and stack.get("aws_endpoint"):
        return (f"; for the local stack: export AWS_ENDPOINT_URL={stack['aws_endpoint']} "
                f"AWS_DEFAULT_REGION={stack.get('region', 'us-east-1')} AWS_ACCESS_KEY_ID=testing "
                "AWS_SECRET_ACCESS_KEY=testing")  # fmt: skip
    return " (for the local stack, `make run` prints the AWS_ENDPOINT_URL to use)"


def explain(exc: BaseException) -> str | None:
    """One line saying which setting is missing or wrong, for the errors that mean one; else None."""
    from botocore import exceptions as aws

    from chalicelib.errors import BatonError

    if isinstance(exc, aws.NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION (e.g. us-east-1)" + _local_aws_hint()
    if isinstance(exc, aws.NoCredentialsError | aws.PartialCredentialsError):
        return "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" + _local_aws_hint()
    if isinstance(exc, aws.ProfileNotFound):
        return f"{exc}: set AWS_PROFILE to a profile in ~/.aws/config"
    if isinstance(exc, aws.EndpointConnectionError | aws.ConnectTimeoutError):
        where = exc.kwargs.get("endpoint_url", "its endpoint")
        local = "127.0.0.1" in str(where) or "localhost" in str(where)
        return f"cannot reach AWS at {where}" + (": is the local stack running (`make run`)?" if local else "")
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error", {})
        return _aws_refused(str(error.get("Code", "")), str(error.get("Message", "")))
    if isinstance(exc, BatonError):
        cause = exc.details.get("cause")
        if cause:
            return _aws_refused(str(cause), exc.message)
        return exc.message
    return None


def _aws_refused(code: str, message: str) -> str:
    if code == "ResourceNotFoundException":
        return (f"{message} ({code}): check BATON_STAGE and the BATON_*_TABLE settings, "
                "and that the tables exist in this account and region")  # fmt: skip
    if code in ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
                "AccessDeniedException", "AccessDenied"):  # fmt: skip
        return f"AWS refused the credentials ({code}): {message}"
    return f"AWS answered {code}: {message}" if code else message
