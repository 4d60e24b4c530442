"""Secrets from SSM Parameter Store (``/baton/{stage}/...``), cached per process for a few minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.errors import Unavailable

TTL_SECONDS = 300.0


class Secrets:
    def __init__(self, prefix: str, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        """The parameter's value, or None when it is not set."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        try:
            value: str | None = client("ssm").get_parameter(Name=self.prefix + name, WithDecryption=True)[
                "Parameter"
            ]["Value"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise Unavailable("the secret store is unavailable", retry_after=2) from None
            value = None
        with self._lock:
            self._cache[name] = (now, value)
        return value


class StaticSecrets:
    """Fixed values, for tests and notebooks."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def get(self, name: str) -> str | None:
        return self.values.get(name)
