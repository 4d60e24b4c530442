"""Handoff: how a lead that became an SQL (or an MQL) reaches sales, and how sales answers.

Modules (import the one you need; this package imports nothing, so each Lambda pays only for
what it uses):

- ``message``: the ``baton.handoff.v1`` contract (``docs/handoff-message.md``) and
  ``parse_handoff`` for consumers.
- ``body``: builds that message's body, and its outbox items, from a committed transition
  (pure; called inside the lead write).
- ``reminders``: the SLA sweep: one reminder for an SQL nobody acted on, then an escalation.
- ``blocks``: Slack Block Kit rendering of handoffs, reminders, outcomes and re-score digests
  (pure, escaped, within Block Kit limits).
- ``delivery``: posts each outbox message to Slack once, paced per channel, retried on the
  outbox's schedule until Slack acknowledges it (the SNS consumer's first attempt, the delivery
  sweeper's later ones).
- ``notifiers``: who posts to Slack (bot token, incoming webhooks, the local outbox file);
  ``slack_sdk`` is imported there lazily, only when a notifier talks to Slack.
- ``retry``: the bounded retry policy of every Slack call (429 ``Retry-After``, 5xx, network).
- ``signature``: Slack's request signature (v0), on the shared HMAC and replay-window checks.
- ``interactions``: Accept / Reject / Recycle clicks: parsed, verified, recorded as outcomes.
"""
