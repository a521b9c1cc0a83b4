"""Replay safety: every committed history (tests/histories/, recorded by
tests/histories/record.py) replays against today's TicketWorkflow, and a workflow whose commands
change order is caught by the same Replayer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from domain.view import TicketView
from workflows.ticket import NO_PAYLOAD, Carried, TicketWorkflow

pytestmark = pytest.mark.asyncio

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
SCENARIOS = {
    "first_response_breach",
    "tier_timeout_chain",
    "agent_request",
    "pause_resume",
    "priority_change_breach",
    "auto_close",
    "reopen",
    "request_id",
    "malformed_signals",
    "invalid_input",
    "top_tier_reminders",
    "close_by_agent",
    "business_hours",
    "rejected_updates",
    "authorization",
}


def load(path: Path) -> WorkflowHistory:
    """A committed history, under its workflow id (`ticket-<ticket_id>`, from the start input):
    the workflow checks that the id matches the ticket it opens."""
    text = path.read_text()
    started = WorkflowHistory.from_json("unknown", text).events[0]
    payload = started.workflow_execution_started_event_attributes.input.payloads[0]
    ticket = pydantic_data_converter.payload_converter.from_payload(payload)
    return WorkflowHistory.from_json(f"ticket-{ticket['ticket_id']}", text)


@workflow.defn(name="TicketWorkflow")
class TimerFirstTicketWorkflow(TicketWorkflow):
    """A careless change: a timer started before the policy activity of every ticket."""

    @workflow.run
    async def run(self, input: RawValue = NO_PAYLOAD, carried: Carried | None = None) -> TicketView:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input, carried)


async def test_every_scenario_has_a_committed_history() -> None:
    recorded = {p.stem.rsplit("-", 1)[0] if p.stem[-1].isdigit() else p.stem for p in HISTORIES}
    assert recorded == SCENARIOS


async def test_every_committed_history_replays() -> None:
    replayer = Replayer(workflows=[TicketWorkflow], data_converter=pydantic_data_converter)

    replayed: list[str] = []

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for path in HISTORIES:
            replayed.append(path.name)
            yield load(path)

    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    failures = {
        run_id: repr(failure)
        for run_id, failure in results.replay_failures.items()
        if failure is not None
    }
    assert failures == {}
    assert len(replayed) == len(HISTORIES) >= len(SCENARIOS)


@pytest.mark.parametrize("name", ["close_by_agent", "first_response_breach", "authorization-1"])
async def test_a_reordered_command_is_caught_as_nondeterminism(name: str) -> None:
    replayer = Replayer(
        workflows=[TimerFirstTicketWorkflow], data_converter=pydantic_data_converter
    )
    history = load(Path(__file__).parent / "histories" / f"{name}.json")
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure
