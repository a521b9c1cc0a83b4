"""Replay safety: every committed history replays against today's TicketWorkflow, and a workflow
whose commands change order is caught by the same Replayer.

tests/histories/*.json are recorded by tests/histories/record.py from today's workflow;
tests/histories/release-0.1/ are the same scenarios as the first release recorded them, before
the RELEASE_0_2 patch, tests/histories/release-0.2/ as release 0.2 recorded them, before
the TEAMS patch, and tests/histories/release-0.2.1/ as 0.2.1 recorded them (one patch marker
each for RELEASE_0_2, TEAMS, INBOX, RULES, STORE_AT_OPEN), before RELEASE_0_3: tickets started
then must go on replaying after an upgrade.
"""

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

import workflows.history_budget as history_budget
from domain.view import TicketView
from workflows.ticket import (
    INBOX,
    NO_PAYLOAD,
    RELEASE_0_2,
    RELEASE_0_3,
    RULES,
    STORE_AT_OPEN,
    TEAMS,
    Carried,
    TicketWorkflow,
)

pytestmark = pytest.mark.asyncio

HERE = Path(__file__).parent / "histories"
CAN_BUDGET = 60  # history events per run in the recorded continue_as_new scenario
CURRENT = sorted(HERE.glob("*.json"))
RELEASE_0_1 = sorted((HERE / "release-0.1").glob("*.json"))
RELEASE_0_2_FILES = sorted((HERE / "release-0.2").glob("*.json"))
RELEASE_0_2_1 = sorted((HERE / "release-0.2.1").glob("*.json"))
CONTINUED = [
    p for p in CURRENT + RELEASE_0_2_1 + RELEASE_0_2_FILES if p.stem.startswith("continue_as_new")
]
HISTORIES = [
    p for p in CURRENT + RELEASE_0_2_1 + RELEASE_0_2_FILES if p not in CONTINUED
] + RELEASE_0_1
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
# Scenarios added after the first release: only today's workflow recorded them.
SINCE_0_2 = {"business_hours_dates", "hostile_payloads", "reset_resume", "principals"}
TEAM_SCENARIOS = {
    "teams_ack_chain",
    "teams_transfer",
    "teams_unavailable",
    "teams_business_hours",
}
# Tags, next reply and rules (docs/rules.md): recorded behind the tags-rules patch.
RULE_SCENARIOS = {"rules_elapsed", "rules_priority"}


def load(path: Path) -> WorkflowHistory:
    """A committed history, under its workflow id (`ticket-<ticket_id>`, from the start input):
    the workflow checks that the id matches the ticket it opens."""
    text = path.read_text()
    started = WorkflowHistory.from_json("unknown", text).events[0]
    payload = started.workflow_execution_started_event_attributes.input.payloads[0]
    ticket = pydantic_data_converter.payload_converter.from_payload(payload)
    if ticket is None:  # a continued run: the ticket is in what it carried
        carried = started.workflow_execution_started_event_attributes.input.payloads[1]
        ticket = pydantic_data_converter.payload_converter.from_payload(carried)["state"]
    return WorkflowHistory.from_json(f"ticket-{ticket['ticket_id']}", text)


@workflow.defn(name="TicketWorkflow")
class TimerFirstTicketWorkflow(TicketWorkflow):
    """A careless change: a timer started before the policy activity of every ticket."""

    @workflow.run
    async def run(self, input: RawValue = NO_PAYLOAD, carried: Carried | None = None) -> TicketView:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input, carried)


def scenario_names(paths: list[Path]) -> set[str]:
    return {p.stem.rsplit("-", 1)[0] if p.stem[-1].isdigit() else p.stem for p in paths}


async def test_every_scenario_has_a_committed_history_from_each_release() -> None:
    assert scenario_names(CURRENT) == (
        SCENARIOS | SINCE_0_2 | TEAM_SCENARIOS | RULE_SCENARIOS | {"continue_as_new"}
    )
    assert scenario_names(RELEASE_0_2_1) == scenario_names(CURRENT)
    assert scenario_names(RELEASE_0_2_FILES) == SCENARIOS | {"continue_as_new"}
    assert scenario_names(RELEASE_0_1) == SCENARIOS


def patch_markers(history: WorkflowHistory) -> set[str]:
    found = set()
    for e in history.events:
        if e.HasField("marker_recorded_event_attributes"):
            attrs = e.marker_recorded_event_attributes
            if attrs.marker_name == "core_patch":
                found.add(
                    pydantic_data_converter.payload_converter.from_payload(
                        attrs.details["patch-data"].payloads[0]
                    )["id"]
                )
    return found


async def test_first_release_histories_take_the_unpatched_path() -> None:
    """Today's recordings carry one patch marker, RELEASE_0_3; 0.2.1's the RELEASE_0_2, TEAMS,
    INBOX and RULES markers (and STORE_AT_OPEN where the run opened a ticket: not a continued
    run, not a refused input), release 0.2's only the first, the first release's none: all
    replay (above), so the old paths are still there for tickets started before."""
    assert all(patch_markers(load(p)) == {RELEASE_0_3} for p in CURRENT)
    markers = [patch_markers(load(p)) for p in RELEASE_0_2_1]
    before = {RELEASE_0_2, TEAMS, INBOX, RULES}
    assert all(before <= m <= before | {STORE_AT_OPEN} for m in markers)
    assert sum(STORE_AT_OPEN in m for m in markers) >= len(SCENARIOS)
    assert all(patch_markers(load(p)) == {RELEASE_0_2} for p in RELEASE_0_2_FILES)
    assert all(patch_markers(load(p)) == set() for p in RELEASE_0_1)


async def replay_all(paths: list[Path]) -> None:
    replayer = Replayer(workflows=[TicketWorkflow], data_converter=pydantic_data_converter)

    replayed: list[str] = []

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for path in paths:
            replayed.append(path.name)
            yield load(path)

    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    failures = {
        run_id: repr(failure)
        for run_id, failure in results.replay_failures.items()
        if failure is not None
    }
    assert failures == {}
    assert len(replayed) == len(paths)


@pytest.mark.slow
async def test_every_committed_history_replays() -> None:
    assert len(HISTORIES) > 2 * len(SCENARIOS)
    await replay_all(HISTORIES)


async def test_continued_runs_replay_with_the_budget_they_were_recorded_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The budget decides where a run continues as new, so it is part of the workflow's
    behaviour: a changed budget needs `workflow.patched` like any other change."""
    assert len(CONTINUED) >= 3  # the scenario continued as new at least twice
    monkeypatch.setattr(history_budget, "CONTINUE_AS_NEW_EVENTS", CAN_BUDGET)
    await replay_all(CONTINUED)
    # And with another budget the same histories no longer replay.
    monkeypatch.setattr(history_budget, "CONTINUE_AS_NEW_EVENTS", 2 * CAN_BUDGET)
    replayer = Replayer(workflows=[TicketWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(CONTINUED[0]), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure


@pytest.mark.parametrize(
    "name",
    [
        "close_by_agent",
        "first_response_breach",
        "authorization-1",
        "teams_ack_chain",
        "release-0.2.1/close_by_agent",
        "release-0.2.1/teams_ack_chain",
        "release-0.2/close_by_agent",
        "release-0.1/close_by_agent",
        "release-0.1/authorization-1",
    ],
)
async def test_a_reordered_command_is_caught_as_nondeterminism(name: str) -> None:
    replayer = Replayer(
        workflows=[TimerFirstTicketWorkflow], data_converter=pydantic_data_converter
    )
    history = load(HERE / f"{name}.json")
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure
