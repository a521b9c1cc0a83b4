"""Who must hear about what: notices derived from domain events (rules 4, 5 and 7)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from domain import events as ev
from domain.state import TicketState

Kind = Literal["at_risk", "breach", "escalated", "breach_reminder"]
METRIC_LABEL = {"first_response": "first response", "resolution": "resolution"}


class Notification(BaseModel):
    notification_id: str  # deterministic, so a retried delivery is recognised
    ticket_id: str
    kind: Kind
    tier: str
    subject: str
    message: str
    at: datetime


def notifications_for(state: TicketState, event: ev.DomainEvent) -> list[Notification]:
    """The notices one recorded event calls for; `state` is the ticket after the event."""
    data = event.data()

    def notice(kind: Kind, tier: str, message: str) -> Notification:
        return Notification(
            notification_id=f"{event.event_id}:{kind}",
            ticket_id=state.ticket_id,
            kind=kind,
            tier=tier,
            subject=state.subject,
            message=message,
            at=event.occurred_at,
        )

    if isinstance(data, ev.SlaWarning):
        label = METRIC_LABEL[data.metric]
        due = data.due_at.isoformat()
        return [notice("at_risk", data.tier, f"{label} SLA at risk: due {due}")]
    if isinstance(data, ev.SlaBreached):
        label = METRIC_LABEL[data.metric]
        return [notice("breach", data.tier, f"{label} SLA breached (was due {data.due_at})")]
    if isinstance(data, ev.TicketEscalated):
        why = f": {data.reason}" if data.reason else ""
        msg = f"escalated {data.from_tier} -> {data.to_tier} ({data.trigger}){why}"
        return [notice("escalated", data.to_tier, msg)]
    return []


def reminder(state: TicketState, due_at: datetime) -> Notification:
    """A repeated resolution-breach notice at the top tier."""
    return Notification(
        notification_id=f"{state.ticket_id}:reminder:{due_at.isoformat()}",
        ticket_id=state.ticket_id,
        kind="breach_reminder",
        tier=state.tier,
        subject=state.subject,
        message="resolution SLA still breached; ticket is unresolved at the top tier",
        at=due_at,
    )
