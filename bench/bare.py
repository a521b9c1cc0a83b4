"""The benchmarks' floor: a workflow that takes the same four agent actions as Updates, records
them in memory, returns, and completes on `close`. No activities, timers, search attributes,
event store or authorization: what Temporal itself costs for one ticket's lifecycle.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

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
