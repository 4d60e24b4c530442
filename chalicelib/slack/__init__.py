"""Slack adapter: Block Kit messages, request signatures, interaction payloads, delivery.

Modules (import the one you need; this package imports nothing so a Lambda pays only for it):

- ``blocks``: pure builders for handoff, outcome, reminder and digest messages (escaped, within
  Block Kit limits).
- ``signature``: verification of Slack's ``X-Slack-Signature`` (v0, HMAC-SHA256, replay window).
- ``interactions``: pure parsing of ``block_actions`` payloads (Accept / Recycle / Reject).
- ``delivery``: notifiers (bot token, incoming webhooks, local outbox file) with bounded retries;
  ``slack_sdk`` is imported there lazily, only when a notifier talks to Slack.
"""
