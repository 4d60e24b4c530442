"""The composition root: builds repositories and services once per process, lazily."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.config import Settings, settings
from chalicelib.secrets import Secrets, StaticSecrets

if TYPE_CHECKING:  # services import the engine and rule models: built on first use, not at import
    from chalicelib.erasure import Erasure
    from chalicelib.handoff.delivery import Deliverer
    from chalicelib.leads import LeadService
    from chalicelib.queues import Queue
    from chalicelib.rescore.jobs import RescoreJobs
    from chalicelib.rollout import Rollout
    from chalicelib.rulesets import RulesetService
    from chalicelib.store.base import JobRepository, LeadRepository, OutboxRepository, RulesetRepository


@dataclass
class Container:
    settings: Settings
    secrets: Secrets | StaticSecrets
    leads_repo: LeadRepository
    outbox: OutboxRepository
    rulesets_repo: RulesetRepository
    jobs_repo: JobRepository
    clock: Callable[[], float] = time.time
    extras: dict[str, Any] = field(default_factory=dict)  # adapters built on first use (SNS, Slack)
    _rulesets: RulesetService | None = None
    _leads: LeadService | None = None
    _rescore: RescoreJobs | None = None
    _rollout: Rollout | None = None

    @property
    def rulesets(self) -> RulesetService:
        if self._rulesets is None:
            from chalicelib.rulesets import RulesetService

            self._rulesets = RulesetService(self.rulesets_repo, self.clock, self.settings.ruleset_cache_seconds)
        return self._rulesets

    @property
    def leads(self) -> LeadService:
        if self._leads is None:
            from chalicelib.form_limit import FormRateLimit
            from chalicelib.leads import LeadService

            self._leads = LeadService(self.leads_repo, self.rulesets, self.clock, deliveries=self.outbox,
                                      form_limit=FormRateLimit(self.settings.form_posts_per_hour))
        return self._leads

    @property
    def rescore(self) -> RescoreJobs:
        if self._rescore is None:
            from chalicelib.rescore.jobs import RescoreJobs

            self._rescore = RescoreJobs(
                self.leads_repo, self.rulesets, self.jobs_repo, self.queue(), self.outbox, self.clock
            )
        return self._rescore

    @property
    def rollout(self) -> Rollout:
        if self._rollout is None:
            from chalicelib.rollout import Rollout

            self._rollout = Rollout(self.leads_repo, self.rulesets, self.rescore, self.clock)
        return self._rollout

    @property
    def erasure(self) -> Erasure:
        if "erasure" not in self.extras:
            from chalicelib.erasure import Erasure

            self.extras["erasure"] = Erasure(
                self.leads_repo, self.jobs_repo, self.clock, local_outbox_file=self.settings.slack_outbox_file
            )
        erasure: Erasure = self.extras["erasure"]
        return erasure

    def queue(self) -> Queue:
        if "queue" not in self.extras:
            from chalicelib.queues import SqsQueue

            self.extras["queue"] = SqsQueue(self.settings.rescore_queue_url)
        queue: Queue = self.extras["queue"]
        return queue

    def publisher(self) -> Any:
        if "publisher" not in self.extras:
            from chalicelib.outbox.relay import SnsPublisher

            self.extras["publisher"] = SnsPublisher(self.settings.handoff_topic_arn)
        return self.extras["publisher"]

    def notifier(self) -> Any:
        """Slack: a bot token, else incoming webhooks, else the local outbox file (local stack)."""
        if "notifier" not in self.extras:
            import json

            from chalicelib.handoff.notifiers import notifier_from_settings
            from chalicelib.handoff.retry import RetryPolicy
            from chalicelib.outbox.pacing import INLINE_WAIT

            urls = self.secrets.get("slack/webhook-urls")
            self.extras["notifier"] = notifier_from_settings(
                webhook_url=self.secrets.get("slack/webhook-url"),
                webhook_urls=json.loads(urls) if urls else None,
                bot_token=self.secrets.get("slack/bot-token"),
                outbox_file=self.settings.slack_outbox_file,
                # Brief in-process retries only: an alert's delivery record retries for a day, and a
                # click must be answered within Slack's 3 seconds.
                retry=RetryPolicy(max_retries=2, max_wait_seconds=INLINE_WAIT),
            )
        return self.extras["notifier"]

    def dead_letters(self) -> Queue:
        if "dead_letters" not in self.extras:
            from chalicelib.queues import SqsQueue

            self.extras["dead_letters"] = SqsQueue(self.settings.dead_letter_queue_url)
        queue: Queue = self.extras["dead_letters"]
        return queue

    def deliverer(self) -> Deliverer:
        """Posts outbox messages to Slack, paced and retried (``handoff.delivery``)."""
        if "deliverer" not in self.extras:
            from chalicelib.handoff.delivery import Deliverer
            from chalicelib.leadpage.links import KEY_NAME, LeadLinks
            from chalicelib.outbox.schedule import Backoff

            s = self.settings
            links = LeadLinks(s.public_url, lambda: self.secrets.get(KEY_NAME), s.lead_link_seconds, self.clock)
            self.extras["deliverer"] = Deliverer(
                self.outbox, self.notifier, self.dead_letters(),
                Backoff(s.delivery_backoff_seconds, s.delivery_backoff_max_seconds, s.delivery_retry_seconds),
                pace_seconds=s.slack_pace_seconds, clock=self.clock, lead_url=links.url,
            )
        deliverer: Deliverer = self.extras["deliverer"]
        return deliverer


def dynamodb_container(config: Settings) -> Container:
    from chalicelib.store.dynamodb import DynamoDBJobs, DynamoDBLeads, DynamoDBOutbox, DynamoDBRulesets

    return Container(
        settings=config,
        secrets=Secrets(config.ssm_prefix),
        leads_repo=DynamoDBLeads(config.leads_table, config.outbox_table),
        outbox=DynamoDBOutbox(config.outbox_table),
        rulesets_repo=DynamoDBRulesets(config.rulesets_table),
        jobs_repo=DynamoDBJobs(config.rulesets_table),
    )


def memory_container(
    secrets: dict[str, str] | None = None, clock: Callable[[], float] = time.time, config: Settings | None = None
) -> Container:
    from chalicelib.queues import InMemoryQueue
    from chalicelib.store.memory import InMemoryJobs, InMemoryLeads, InMemoryRulesets

    leads = InMemoryLeads()
    return Container(
        settings=config or Settings.from_env({}),
        secrets=StaticSecrets(secrets or {}),
        leads_repo=leads,
        outbox=leads.outbox,
        rulesets_repo=InMemoryRulesets(),
        jobs_repo=InMemoryJobs(),
        clock=clock,
        extras={"queue": InMemoryQueue(), "dead_letters": InMemoryQueue()},
    )


_current: Container | None = None


def container() -> Container:
    global _current
    if _current is None:
        _current = dynamodb_container(settings())
    return _current


def use(replacement: Container | None) -> None:
    """Swap the process-wide container (tests); None rebuilds from the environment on next use."""
    global _current
    _current = replacement
