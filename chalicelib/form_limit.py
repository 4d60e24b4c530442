"""The per-address limit on public form posts, counted in the lead's own item."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.attributes import PUBLIC_SOURCES
from chalicelib.errors import RateLimited
from chalicelib.events import Event
from chalicelib.state import LeadState


@dataclass(frozen=True)
class FormRateLimit:
    """At most ``posts`` public form posts per ``window`` seconds for one lead (one address).

    Counted in the lead's own item (``LeadState.form_window``: [window start, posts]), which the
    write reads anyway: no extra DynamoDB call. A post over the limit is refused (429 with
    ``Retry-After``) before anything is stored; redeliveries of a counted post are not counted again.
    Per client the platform limits (the WAF rate-based rule in infra/app-overrides.yaml)."""

    posts: int
    window: float = 3600.0

    def admit(self, state: LeadState, fresh: Sequence[Event], now: float) -> None:
        count = sum(1 for e in fresh if e.source in PUBLIC_SOURCES)
        if not count:
            return
        start, used = state.form_window or (now, 0)
        if now >= start + self.window or now < start:
            start, used = now, 0
        if used + count > self.posts:
            wait = max(1, math.ceil(start + self.window - now))
            raise RateLimited(
                f"too many form submissions for this address: at most {self.posts} per {self.window:g} s; "
                f"retry after {wait} s", retry_after=wait, details={"field": "email"})
        state.form_window = [start, used + count]
