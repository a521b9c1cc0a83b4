"""`TicketView`: what the `state` query, every Update and the finished workflow return."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel

from domain.events import Metric, Trigger
from domain.policy import Assignment, Priority
from domain.state import (
    Status,
    TicketState,
    ack_due,
    elapsed_rules_due,
    first_response_due,
    next_reply_due,
    resolution_due,
    tier_due,
)


class BreachView(BaseModel):
    metric: Metric
    tier: str
    due_at: datetime
    at: datetime


class EscalationView(BaseModel):
    from_tier: str
    to_tier: str
    trigger: Trigger
    reason: str | None
    agent_id: str | None
    at: datetime


class SlaView(BaseModel):
    first_response_due: datetime | None
    resolution_due: datetime | None
    tier_due: datetime | None
    paused: bool
    breaches: list[BreachView]
    next_reply_due: datetime | None = None  # v2

    def nearest_due(self) -> datetime | None:
        dues = [
            d
            for d in (
                self.first_response_due,
                self.resolution_due,
                self.tier_due,
                self.next_reply_due,
            )
            if d
        ]
        return min(dues) if dues else None


class FiredRuleView(BaseModel):
    rule: str
    on: str
    at: datetime
    since: datetime | None = None


class ElapsedRuleView(BaseModel):
    rule: str
    due: datetime


class RulesView(BaseModel):
    """v2: the rules that fired, in order, and the next elapsed rule due (while its clock
    runs and its conditions hold)."""

    fired: list[FiredRuleView] = []
    next_elapsed: ElapsedRuleView | None = None


class AssignmentView(BaseModel):
    """The current team's assignment: `ack_due` runs while an auto-assignee has not
    acknowledged; `timeouts` counts the agents who did not at this team visit."""

    mode: Assignment
    assignee: str | None
    assigned_at: datetime | None
    ack_due: datetime | None
    acknowledged_at: datetime | None
    timeouts: int


class TicketView(BaseModel):
    ticket_id: str
    subject: str
    customer_id: str
    priority: Priority
    category: str | None
    policy: str
    status: Status
    tier: str
    assignee: str | None
    opened_at: datetime
    first_responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    version: int
    sla: SlaView
    escalations: list[EscalationView]
    path: str = "default"
    tiers: list[str] = []
    assignment: AssignmentView | None = None
    tags: list[str] = []  # v2
    rules: RulesView = RulesView()  # v2
    # The zone the ticket's calendar keeps its hours in ("UTC" for 24x7): how its people read
    # the times above.
    timezone: str = "UTC"


def view(state: TicketState) -> TicketView:
    """Due times are null while the clock is stopped (pending, resolved, closed) or met."""
    paused = state.paused

    def running(due: datetime | None) -> datetime | None:
        return None if paused else due

    return TicketView(
        ticket_id=state.ticket_id,
        subject=state.subject,
        customer_id=state.customer_id,
        priority=state.priority,
        category=state.category,
        policy=state.policy.name,
        status=state.status,
        tier=state.tier,
        assignee=state.assignee,
        opened_at=state.opened_at,
        first_responded_at=state.first_responded_at,
        resolved_at=state.resolved_at,
        closed_at=state.closed_at,
        version=state.version,
        sla=SlaView(
            first_response_due=running(first_response_due(state)),
            resolution_due=running(resolution_due(state)),
            tier_due=running(tier_due(state)),
            paused=state.status == "pending",
            breaches=[BreachView(**b.__dict__) for b in state.breaches],
            next_reply_due=running(next_reply_due(state)),
        ),
        escalations=[EscalationView(**e.__dict__) for e in state.escalations],
        path=state.path_name,
        tiers=list(state.tiers),
        assignment=AssignmentView(
            mode=state.team.assignment,
            assignee=state.assignee,
            assigned_at=state.assigned_at,
            ack_due=running(ack_due(state)),
            acknowledged_at=state.acknowledged_at,
            timeouts=len(state.timed_out),
        ),
        tags=list(state.tags),
        rules=_rules(state, running),
        timezone=spec.timezone if (spec := state.policy.calendar_spec) is not None else "UTC",
    )


def _rules(state: TicketState, running: Callable[[datetime | None], datetime | None]) -> RulesView:
    upcoming = [] if state.is_terminal else elapsed_rules_due(state)
    due = running(upcoming[0][1]) if upcoming else None
    return RulesView(
        fired=[FiredRuleView(**f.__dict__) for f in state.fired],
        next_elapsed=ElapsedRuleView(rule=upcoming[0][0].name, due=due) if due else None,
    )
