"""Serving a lead page: the link is checked before anything is read, so a forged one costs no read."""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.errors import BatonError, aws_unavailable
from chalicelib.leadpage.history import lead_view
from chalicelib.leadpage.links import KEY_NAME, LinkRefused, verify
from chalicelib.leadpage.page import HEADERS, lead_page, refused_page
from chalicelib.rulesets import RulesetService
from chalicelib.secrets import Secrets, StaticSecrets
from chalicelib.store.base import LeadRepository


def open_page(lead_id: str, params: Mapping[str, str], secrets: Secrets | StaticSecrets, leads: LeadRepository,
              rulesets: RulesetService, now: float) -> tuple[int, str, dict[str, str]]:
    """(status, HTML, headers) for ``GET /v1/leads/{lead_id}/page?expires=&sig=``."""
    try:
        verify(secrets.get(KEY_NAME), lead_id, params.get("expires"), params.get("sig"), now)
        view = lead_view(leads, rulesets, lead_id, now)
    except LinkRefused as exc:
        return 403, refused_page(exc.reason), HEADERS
    except Exception as exc:  # the store or the secrets are unavailable: say so, in HTML
        failure = exc if isinstance(exc, BatonError) else aws_unavailable(exc)
        if failure is None:
            raise
        retry = getattr(failure, "retry_after", None)
        return failure.status, refused_page(str(failure)), {**HEADERS, **({"Retry-After": str(retry)} if retry else {})}
    if view is None:
        return 404, refused_page("this lead no longer exists (it may have been erased)"), HEADERS
    return 200, lead_page(view, int(params["expires"])), HEADERS
