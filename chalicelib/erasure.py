"""Right to erasure: every copy Baton keeps of a lead goes, and a tombstone keeps it gone.

Gone: the lead's state, events, outcomes and identity links; its alerts not yet delivered and
their delivery records; its lines in pending re-score digests and in re-score jobs' samples; and,
on the local stack, the messages about it in the Slack outbox file (the local Slack).

Stays: a tombstone in the state's place, holding the lead id (a digest of the address) and the
time of erasure, nothing personal. Events dated before it are dropped, so a replayed webhook or a
vendor's late delivery does not bring the lead back; a new signup afterwards makes a new lead.
Out of reach (README, "Security"): messages already posted to Slack, alerts waiting in the
dead-letter queue (they expire), point-in-time backups and log retention.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalicelib.errors import NotFound
from chalicelib.handoff.notifiers import forget_in_outbox_file
from chalicelib.store.base import JobRepository, LeadRepository

log = logging.getLogger(__name__)


class Erasure:
    def __init__(
        self, leads: LeadRepository, jobs: JobRepository, clock: Callable[[], float], local_outbox_file: str = ""
    ) -> None:
        self.leads = leads
        self.jobs = jobs
        self.clock = clock
        self.local_outbox_file = local_outbox_file

    def erase(self, lead_id: str) -> dict[str, Any]:
        if self.leads.get(lead_id) is None:
            raise NotFound(f"no lead {lead_id}", details={"field": "lead_id"})
        items = self.leads.erase(lead_id, self.clock())
        jobs = self.jobs.erase_lead(lead_id)
        messages = forget_in_outbox_file(self.local_outbox_file, lead_id) if self.local_outbox_file else 0
        log.info("lead erased", extra={"lead_id": lead_id, "items": items, "jobs": jobs, "local_messages": messages})
        return {"lead_id": lead_id, "erased_items": items + jobs + messages}
