"""The outbox: messages committed with a lead's state, announced after the commit, and kept
until Slack has them.

Modules (import the one you need; this package imports nothing):

- ``items``: :class:`~chalicelib.outbox.items.OutboxItem`, what a lead write stores for SNS, and
  :class:`~chalicelib.outbox.items.Delivery`, where its delivery to Slack stands.
- ``relay``: publish pending items to the handoff topic and mark them published (the sweeper
  and the outbox table's stream call it); report the backlog the "handoffs stuck" alarm watches.
- ``claims``: delivery claims, so a consumer posts each message once however often it arrives.
- ``schedule``: when a failed Slack post is tried again, and when the outbox gives up (parks it).
- ``pacing``: one post per Slack channel per interval, through a send slot in the store.
- ``redrive``: parked alerts sent again (``baton handoff redrive``).

Slack delivery itself (render, pace, claim, post, record) is ``chalicelib.handoff.delivery``.

Where items and claims are stored is a repository like any other: ``OutboxRepository`` in
``chalicelib/store/base.py``, with ``InMemoryOutbox`` and ``DynamoDBOutbox`` beside the lead
store (a lead write puts its items in the same transaction as the state).
"""
