"""Opening a ticket: start its workflow, or find the running one (idempotent open).

The one place that knows how a ticket's workflow is started (id, conflict and reuse policies,
the Temporal UI's summary and details); `starter.py`, `tickets` and the client share it.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.commands import OpenTicket, parse_open_ticket
from domain.view import TicketView
from runtime.config import Settings
from workflows.ticket import WORKFLOW_TYPE, workflow_id_for

PRIORITY_LABEL = {"urgent": "P1", "high": "P2", "normal": "P3", "low": "P4"}
# The input fields a ticket's view keeps as they were at open. Priority can change later and the
# description is not in the view, so an open is told apart from another ticket by these.
COMPARED_FIELDS = ("subject", "customer_id", "category", "policy")


class TicketClosedError(Exception):
    """The ticket id belongs to a ticket that was closed; ticket ids are not reused."""


async def open_ticket(
    client: Client, ticket: OpenTicket | dict[str, Any], task_queue: str | None = None
) -> WorkflowHandle[Any, Any]:
    """Start the ticket's workflow, or return the running one (idempotent open)."""
    ticket = parse_open_ticket(ticket)  # a bad input fails here, before anything is sent
    queue = task_queue or Settings.from_env().task_queue
    try:
        return await client.start_workflow(
            WORKFLOW_TYPE,
            ticket.model_dump(mode="json", exclude_none=True),
            id=workflow_id_for(ticket.ticket_id),
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A closed ticket's id stays its own: its events are in the store under that id.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=static_summary(ticket),
            static_details=static_details(ticket),
        )
    except WorkflowAlreadyStartedError as exc:
        raise TicketClosedError(
            f"ticket {ticket.ticket_id} already exists and is no longer running; "
            "open a new ticket id"
        ) from exc


def static_summary(ticket: OpenTicket) -> str:
    """The one line the Temporal UI lists the workflow by."""
    return f"{PRIORITY_LABEL[ticket.priority]} · {ticket.customer_id} · {ticket.subject}"


def static_details(ticket: OpenTicket) -> str:
    """The Markdown the Temporal UI shows under the ticket's summary. A list, not a table: the
    UI drops a table's empty header row and runs each label into its value."""
    lines = [
        f"### {ticket.subject}",
        "",
        f"- **ticket:** `{ticket.ticket_id}`",
        f"- **customer:** {ticket.customer_id}",
        f"- **priority:** {ticket.priority} ({PRIORITY_LABEL[ticket.priority]})",
        f"- **category:** {ticket.category or '—'}",
        f"- **SLA policy:** {ticket.policy}",
    ]
    if ticket.description:
        text = ticket.description
        lines += ["", text if len(text) <= 2000 else text[:2000] + " …"]
    return "\n".join(lines)


def input_differences(existing: TicketView, ticket: OpenTicket) -> list[str]:
    """How `ticket` differs from the input the existing ticket was opened with, one line per
    field (`subject: 'Login' given, 'Refund' in ticket T-1`); empty when it is the same open."""
    out = []
    for field in COMPARED_FIELDS:
        given, held = getattr(ticket, field), getattr(existing, field)
        if given != held:
            out.append(f"{field}: {given!r} given, {held!r} in ticket {existing.ticket_id}")
    return out
