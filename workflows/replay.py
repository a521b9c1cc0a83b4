"""What a ticket's workflow had decided, read back from its Temporal history by replaying it.

A run that ended without closing the ticket (an operator's terminate, a failure) may have
decided events it never stored: the appends still pending, or not yet scheduled, when it
stopped. Decisions are deterministic, so replaying the history reproduces them, with the same
seqs and event ids; `readside.py reconcile` stores the missing ones.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain.events import DomainEvent
from workflows.ticket import TicketWorkflow


class _Instances(Interceptor):
    """Keeps each replayed workflow object, to read its decisions once the replay is done."""

    def __init__(self) -> None:
        self.seen: list[TicketWorkflow] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        seen = self.seen

        class Keep(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                seen.append(workflow.instance())
                return await super().execute_workflow(input)

        return Keep


async def decided_events(history: WorkflowHistory, converter: DataConverter) -> list[DomainEvent]:
    """The events the run had decided by the end of `history`, in seq order (for a continued
    run: the few it carried, then its own). Empty when the run never opened the ticket."""
    instances = _Instances()
    replayer = Replayer(
        workflows=[TicketWorkflow],
        data_converter=converter,
        interceptors=[instances],
        workflow_runner=UnsandboxedWorkflowRunner(),  # the object must outlive the replay
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        raise RuntimeError(
            f"the history of {history.workflow_id} does not replay: {result.replay_failure}"
        )
    return instances.seen[-1].history() if instances.seen else []
