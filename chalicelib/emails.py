"""The one email normalisation: leads are keyed by it, so every entry point must agree."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import ValidationFailed


def normalize_email(raw: Any, field: str = "email") -> str:
    """Syntax check and normalisation with email-validator, lower-cased whole.

    No DNS look-ups: webhooks must answer fast, and offline tests must pass.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed(f"{field} is required", field=field)
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(f"{field} is not a valid email address: {exc}", field=field) from None
    return checked.normalized.lower()
