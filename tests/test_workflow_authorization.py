"""Authorization inside TicketWorkflow, on the dev server: the matrix, refusals on both paths,
directory changes without a restart, and replay that never consults the directory again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.agents import AgentActivities
from domain.policy import BUILTIN_POLICIES
from tests.conftest import TicketRig
from worker import build_worker
from workflows.ticket import TicketWorkflow

pytestmark = pytest.mark.asyncio

DIRECTORY = """
[agents.ann]
name = "Ann"
tiers = ["L1"]

[agents.ben]
name = "Ben"
tiers = ["L2"]

[agents.max]
name = "Max"
role = "manager"
"""


@pytest_asyncio.fixture(loop_scope="session")
async def guarded(dev_env: Any, db_pool: Any, tmp_path: Path) -> AsyncIterator[TicketRig]:
    """A worker with an agent directory file."""
    path = tmp_path / "agents.toml"
    path.write_text(DIRECTORY)
    task_queue = f"tq-{uuid.uuid4()}"
    agents = AgentActivities(path)
    worker = build_worker(dev_env.client, task_queue, db_pool, dict(BUILTIN_POLICIES), agents)
    async with worker:
        rig = TicketRig(dev_env, db_pool, task_queue)
        rig.directory = path  # type: ignore[attr-defined]
        yield rig
        await rig.finish()


async def refused(handle: Any, action: str, payload: dict[str, Any]) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(action, payload)
    return str(err.value.cause)


async def test_l1_agent_cannot_act_on_an_l2_ticket_but_a_manager_can(guarded: TicketRig) -> None:
    h = await guarded.open()
    await h.execute_update("assign", {"agent_id": "ann"})
    await h.execute_update("request_escalation", {"agent_id": "ann", "reason": "db"})
    tid = guarded.last_id
    reason = await refused(h, "respond", {"agent_id": "ann"})
    assert f"agent ann may not act on ticket {tid} at tier L2" in reason
    view = await h.execute_update("respond", {"agent_id": "ben"})
    assert view["first_responded_at"] is not None
    view = await h.execute_update("change_priority", {"agent_id": "max", "priority": "urgent"})
    assert view["priority"] == "urgent"


async def test_unknown_agent_is_refused_on_update_and_recorded_on_signal(
    guarded: TicketRig,
) -> None:
    h = await guarded.open()
    assert "unknown agent 'zed'" in await refused(
        h, "resolve", {"agent_id": "zed", "resolution": "x"}
    )
    await h.signal("resolve", {"agent_id": "zed", "resolution": "x"})
    view = await h.execute_update("assign", {"agent_id": "ann"})
    assert view["status"] == "open"  # the refused resolve changed nothing
    history = await h.query("history")
    rejected = [e["payload"] for e in history if e["event_type"] == "ActionRejected"]
    assert len(rejected) == 1
    assert rejected[0]["agent_id"] == "zed" and "unknown agent 'zed'" in rejected[0]["reason"]
    # Assigning to someone who does not work the tier is refused too.
    assert "assignee ben does not work tier L1" in await refused(
        h, "assign", {"agent_id": "ann", "assignee": "ben"}
    )


async def test_directory_changes_apply_without_restart_and_replay_ignores_them(
    guarded: TicketRig,
) -> None:
    h = await guarded.open()
    assert "unknown agent 'new'" in await refused(h, "assign", {"agent_id": "new"})
    path: Path = guarded.directory  # type: ignore[attr-defined]
    await asyncio.to_thread(
        path.write_text, DIRECTORY + '\n[agents.new]\nname = "New"\ntiers = ["L1"]\n'
    )
    view = await h.execute_update("assign", {"agent_id": "new"})
    assert view["assignee"] == "new"
    await h.execute_update("close", {"agent_id": "max"})
    await h.result()
    # Replay with no directory at all: decisions come from history, so nothing diverges.
    history = await h.fetch_history()
    replayer = Replayer(workflows=[TicketWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None


async def test_customer_actions_need_no_agent(guarded: TicketRig) -> None:
    h = await guarded.open()
    await h.execute_update("resolve", {"agent_id": "ann", "resolution": "done"})
    view = await h.execute_update("customer_replied", {"message": "not fixed"})
    assert view["status"] == "open"
