"""What a ticket takes across continue-as-new.

Its own module, imported through the workflow sandbox: a pydantic model defined in the workflow
module would have its schema rebuilt every time the sandbox re-imports that module for a new
workflow (about 13 ms per ticket in the bench profile).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, model_validator

from domain import events as ev
from domain.policy import shared_policy
from domain.state import TicketState


class Pending(BaseModel):
    """An action that arrived and waits in the inbox for the main loop to decide it (since
    patch `inbox`): its handler only took it in, so a flood never holds up continue-as-new.

    `value`: the payload as JSON values, or, when it was refused on arrival (`refused`, the
    reason), `kept`: what its ActionRejected records of it. `update`: the Update's id, whose
    handler waits for the answer (never carried: updates are answered before a handover).
    """

    name: str
    value: Any = None
    refused: str | None = None
    kept: Any = None
    update: str | None = None
    principal: str | None = None
    size: int = 0  # bytes of the payload as it came: what carrying it costs


class Carried(BaseModel):
    """What a ticket takes across continue-as-new; every event is already in the event store.

    `state` (since release 0.2): the folded state, request ids (idempotency keys) included,
    so the input stays small however long the ticket lives. `events`: what runs of the first
    release carried instead (every event); still accepted.
    """

    state: TicketState | None = None
    recent: list[ev.DomainEvent] = []  # the last few, for the `history` query
    events: list[ev.DomainEvent] = []
    inbox: list[Pending] = []  # actions taken in but not decided yet (patch `inbox`)
    # Runs of 0.2.0 and before carried the reminder bookkeeping here; the state holds it now.
    last_reminder_at: datetime | None = None
    reminders_sent: int = 0

    @model_validator(mode="after")
    def _share_policy(self) -> Carried:
        """A continued run holds the policy object its peers share, not its own parsed copy."""
        if self.state is not None:
            self.state = replace(self.state, policy=shared_policy(self.state.policy))
        return self
