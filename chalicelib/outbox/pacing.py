"""Pacing: at most one Slack post per channel per interval, whoever posts.

Slack accepts about one message per second per channel. Posts come from many places at once
(the SNS consumer's Lambdas, the delivery sweeper), so the pace is kept in the store: each
channel has a send slot, ``next_free_at``, and a sender reserves the next one with one
conditional write (``OutboxRepository.reserve_slot``). A slot within ``INLINE_WAIT`` seconds is
waited for; a later one becomes the message's next attempt, and the delivery sweeper posts it
then. A re-score that makes 3,000 SQLs for one channel therefore queues them one second apart
(about 50 minutes) instead of bursting or dropping them. A 429 holds the channel until its
``Retry-After`` (``hold_channel``).
"""

from __future__ import annotations

INLINE_WAIT = 2.0  # a slot this close is waited for in-process; a later one is left to the sweeper
SLOT_TTL = 86400  # an idle channel's slot item expires


def slot_after(next_free_at: float | None, now: float, interval: float) -> tuple[float, float]:
    """(this sender's slot, the channel's next free time) given its current next free time."""
    slot = now if next_free_at is None or next_free_at < now else next_free_at
    return slot, slot + interval
