"""The outbox: messages committed with a lead's state, announced after the commit.

Modules (import the one you need; this package imports nothing):

- ``items``: :class:`~chalicelib.outbox.items.OutboxItem`, what a lead write stores for SNS.
- ``relay``: publish pending items to the handoff topic, then delete them (the sweeper and the
  outbox table's stream call it).
- ``claims``: delivery claims, so a consumer (the Slack notifier) posts each message once
  however often SNS redelivers it.

Where items and claims are stored is a repository like any other: ``OutboxRepository`` in
``chalicelib/store/base.py``, with ``InMemoryOutbox`` and ``DynamoDBOutbox`` beside the lead
store (a lead write puts its items in the same transaction as the state).
"""
