"""What a ticket takes across continue-as-new.

Its own module, imported through the workflow sandbox: a pydantic model defined in the workflow
module would have its schema rebuilt every time the sandbox re-imports that module for a new
workflow (about 13 ms per ticket in the bench profile).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from domain import events as ev
from domain.state import TicketState


class Carried(BaseModel):
    """What a ticket takes across continue-as-new; every event is already in the event store.

    `state` (since release 0.2): the folded state, request ids (idempotency keys) included,
    so the input stays small however long the ticket lives. `events`: what runs of the first
    release carried instead (every event); still accepted.
    """

    state: TicketState | None = None
    recent: list[ev.DomainEvent] = []  # the last few, for the `history` query
    events: list[ev.DomainEvent] = []
    # Runs of 0.2.0 and before carried the reminder bookkeeping here; the state holds it now.
    last_reminder_at: datetime | None = None
    reminders_sent: int = 0
