"""Who must hear about what: notices derived from domain events (rules 4, 5 and 7)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from domain import events as ev
from domain.durations import format_duration
from domain.rules import KIND_PATTERN
from domain.state import TicketState

Kind = Literal[
    "at_risk", "breach", "escalated", "breach_reminder", "assigned", "unassigned", "unacknowledged"
]
METRIC_LABEL = {
    "first_response": "first response",
    "resolution": "resolution",
    "next_reply": "next reply",
}
# A rule's `notify` names its own kind (docs/rules.md), routed like any other.
RuleKind = Annotated[str, Field(pattern=KIND_PATTERN)]


class Notification(BaseModel):
    notification_id: str  # deterministic, so a retried delivery is recognised
    ticket_id: str
    kind: Kind | RuleKind
    tier: str
    subject: str
    message: str
    at: datetime
    # `assigned` notices: the agent, so the notice reaches their own channels (else the team's).
    assignee: str | None = None


def notifications_for(state: TicketState, event: ev.DomainEvent) -> list[Notification]:
    """The notices one recorded event calls for; `state` is the ticket after the event."""
    data = event.data()

    def notice(kind: str, tier: str, message: str, assignee: str | None = None) -> Notification:
        return Notification(
            assignee=assignee,
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
    if isinstance(data, ev.TicketTransferred):
        msg = (
            f"transferred {data.from_path}/{data.from_tier} -> {data.to_path}/{data.to_tier}"
            f" by {data.agent_id}: {data.reason}"
        )
        return [notice("escalated", data.to_tier, msg)]
    if isinstance(data, ev.TicketAssigned) and data.trigger == "auto":
        within = format_duration(state.team.ack_within)
        msg = f"assigned to {data.assignee} at {state.tier}; acknowledge within {within}"
        return [notice("assigned", state.tier, msg, data.assignee)]
    if isinstance(data, ev.RuleFired) and data.notify is not None:
        return [notice(data.notify, state.tier, f"rule {data.rule} ({data.on})")]
    if isinstance(data, ev.AssignmentUnavailable):
        return [notice("unassigned", data.tier, f"nobody assigned: {data.reason}")]
    if isinstance(data, ev.AssignmentTimedOut) and not state.wants_choice and state.at_top_tier:
        msg = f"{data.assignee} did not acknowledge; the ticket is unassigned at {data.tier}"
        return [notice("unacknowledged", data.tier, msg)]
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
