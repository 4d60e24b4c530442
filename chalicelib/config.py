"""Settings read from the environment once per process (what .chalice/config.json sets per stage)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Settings:
    stage: str
    leads_table: str
    rulesets_table: str
    outbox_table: str
    handoff_topic: str  # the topic's name: the Slack consumer subscribes to it (read when chalice packages)
    handoff_topic_arn: str  # where the outbox relay publishes
    dead_letter_queue_url: str
    rescore_queue: str  # the queue's name: the re-score worker consumes it (read when chalice packages)
    rescore_queue_url: str  # where publishing a rule set sends the re-score jobs
    outbox_stream_arn: str  # when set, the outbox relay also runs on the outbox table's stream
    ruleset_cache_seconds: float
    ssm_prefix: str
    slack_outbox_file: str
    redirect_allowlist: tuple[str, ...] = ()  # URL prefixes a form's _redirect may point to
    cors_origins: tuple[str, ...] = ()  # origins whose browsers may post forms with fetch
    # Slack delivery (chalicelib/outbox/schedule.py): the first retry's wait, doubled per failure up
    # to the cap; retried for this long before the alert is parked in the dead-letter queue.
    delivery_backoff_seconds: float = 5.0
    delivery_backoff_max_seconds: float = 900.0
    delivery_retry_seconds: float = 86400.0
    slack_pace_seconds: float = 1.0  # at most one post per channel per this many seconds
    delivery_sweep_seconds: float = 55.0  # how long one delivery_sweeper run (every minute) keeps posting
    public_url: str = ""  # the API's base URL as people reach it: lead-page links in Slack alerts
    lead_link_seconds: float = 14 * 86400.0  # how long a lead-page link in an alert opens the page
    form_posts_per_hour: int = 20  # public form posts per address (lead) and hour; more answer 429

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        e = dict(os.environ if env is None else env)
        stage = e.get("BATON_STAGE", "local")
        return cls(
            stage=stage,
            leads_table=e.get("BATON_LEADS_TABLE", f"baton-{stage}-leads"),
            rulesets_table=e.get("BATON_RULESETS_TABLE", f"baton-{stage}-rulesets"),
            outbox_table=e.get("BATON_OUTBOX_TABLE", f"baton-{stage}-outbox"),
            handoff_topic=e.get("BATON_HANDOFF_TOPIC", f"baton-{stage}-handoff"),
            handoff_topic_arn=e.get("BATON_HANDOFF_TOPIC_ARN", ""),
            dead_letter_queue_url=e.get("BATON_DLQ_URL", ""),
            rescore_queue=e.get("BATON_RESCORE_QUEUE", f"baton-{stage}-rescore"),
            rescore_queue_url=e.get("BATON_RESCORE_QUEUE_URL", ""),
            outbox_stream_arn=e.get("BATON_OUTBOX_STREAM_ARN", ""),
            ruleset_cache_seconds=float(e.get("BATON_RULESET_CACHE_SECONDS", "30")),
            ssm_prefix=e.get("BATON_SSM_PREFIX", f"/baton/{stage}/"),
            slack_outbox_file=e.get("BATON_SLACK_OUTBOX_FILE", ""),
            redirect_allowlist=_csv(e.get("BATON_REDIRECT_ALLOWLIST", "")),
            cors_origins=tuple(o.rstrip("/") for o in _csv(e.get("BATON_CORS_ORIGINS", ""))),
            delivery_backoff_seconds=_seconds(e, "BATON_DELIVERY_BACKOFF_SECONDS", 5.0),
            delivery_backoff_max_seconds=_seconds(e, "BATON_DELIVERY_BACKOFF_MAX_SECONDS", 900.0),
            delivery_retry_seconds=_seconds(e, "BATON_DELIVERY_RETRY_SECONDS", 86400.0),
            slack_pace_seconds=_seconds(e, "BATON_SLACK_PACE_SECONDS", 1.0),
            delivery_sweep_seconds=_seconds(e, "BATON_DELIVERY_SWEEP_SECONDS", 55.0, minimum=0.0),
            public_url=e.get("BATON_PUBLIC_URL", "").rstrip("/"),
            lead_link_seconds=_seconds(e, "BATON_LEAD_LINK_SECONDS", 14 * 86400.0, minimum=60.0),
            form_posts_per_hour=_count(e, "BATON_FORM_POSTS_PER_HOUR", 20),
        )


def _seconds(env: dict[str, str], name: str, default: float, minimum: float = 0.001) -> float:
    raw = env.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not minimum <= value < float("inf"):
        raise ValueError(f"{name} must be at least {minimum:g} seconds, not {raw!r}")
    return value


def _count(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {raw!r}")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
