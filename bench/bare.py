"""The benchmarks' floor: a workflow that takes the same four agent actions as Updates, records
them in memory, returns, and completes on `close`. No activities, timers, search attributes,
event store or authorization: what Temporal itself costs for one ticket's lifecycle.
`BareTimerWorkflow` is the floor of an open ticket waiting on one deadline, then storing one
row (bench/steady.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import asyncpg

BARE_WORKFLOW = "BareTicketWorkflow"


@workflow.defn(name=BARE_WORKFLOW)
class BareTicketWorkflow:
    def __init__(self) -> None:
        self.actions: list[tuple[str, Any]] = []
        self.closed = False

    @workflow.run
    async def run(self, ticket: dict[str, Any]) -> int:
        await workflow.wait_condition(lambda: self.closed and workflow.all_handlers_finished())
        return len(self.actions)

    def _record(self, name: str, payload: Any) -> dict[str, Any]:
        self.actions.append((name, payload))
        return {"action": name, "count": len(self.actions)}

    @workflow.update(name="assign")
    async def assign(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._record("assign", payload)

    @workflow.update(name="respond")
    async def respond(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._record("respond", payload)

    @workflow.update(name="resolve")
    async def resolve(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._record("resolve", payload)

    @workflow.update(name="close")
    async def close(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.closed = True
        return self._record("close", payload)


# --- the floor of one ticket waiting on its deadline (bench/steady.py) ---------------------------

BARE_TIMER_WORKFLOW = "BareTimerWorkflow"
BARE_ESCALATIONS = """
CREATE TABLE IF NOT EXISTS bench_bare_escalations (
    ticket_id text PRIMARY KEY, due_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class BareDue:
    ticket_id: str
    due_at: datetime


class BareActivities:
    """The one activity of the timer workflow: store a row, as our escalation stores events."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="bare_escalate")
    async def escalate(self, due: BareDue) -> None:
        await self._pool.execute(
            "INSERT INTO bench_bare_escalations (ticket_id, due_at) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            due.ticket_id,
            due.due_at,
        )


@workflow.defn(name=BARE_TIMER_WORKFLOW)
class BareTimerWorkflow:
    """Waits on one timer (`delay_s` after its start), then runs one activity: what a ticket
    waiting on its first-response deadline, then storing its escalation, costs Temporal."""

    def __init__(self) -> None:
        self.due: datetime | None = None

    @workflow.run
    async def run(self, ticket: dict[str, Any]) -> None:
        self.due = workflow.now() + timedelta(seconds=float(ticket["delay_s"]))
        await workflow.sleep(self.due - workflow.now())
        await workflow.execute_activity_method(
            BareActivities.escalate,
            BareDue(ticket_id=str(ticket["ticket_id"]), due_at=self.due),
            start_to_close_timeout=timedelta(seconds=30),
        )

    @workflow.query(name="due")
    def due_at(self) -> str | None:
        return self.due.isoformat() if self.due else None
