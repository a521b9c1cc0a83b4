"""`readside.py reconcile`: a ticket whose workflow was terminated while its appends were still
pending gets the events it had decided stored exactly once, and its row says how it ended
(issue 13, item 10)."""

from __future__ import annotations

import asyncio
import io
import uuid

import asyncpg
import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

import readside
from activities.agents import AgentActivities
from activities.assignment import AssignmentActivities
from activities.event_store import AppendBatch, EventStoreActivities
from activities.policy import PolicyActivities
from domain.policy import BUILTIN_POLICIES
from domain.state import fold
from runtime.config import Settings
from store.event_store import AppendResult, append_events, read_ticket
from tests.conftest import TicketRig, ticket_worker

pytestmark = [pytest.mark.asyncio, pytest.mark.devserver]


async def reconcile(pool: asyncpg.Pool, env: WorkflowEnvironment, *argv: str) -> str:
    out = io.StringIO()
    args = readside.build_parser().parse_args(["reconcile", *argv])
    code = await readside.run(args, pool, settings=Settings(), client=env.client, out=out)
    assert code == 0
    return out.getvalue()


async def test_decided_but_unstored_events_of_a_terminated_ticket_are_stored_once(
    dev_env: WorkflowEnvironment, db_pool: asyncpg.Pool
) -> None:
    store = EventStoreActivities(db_pool)
    stuck = asyncio.Event()

    @activity.defn(name="append_events")
    async def append_until_the_database_hangs(batch: AppendBatch) -> AppendResult:
        if batch.events[0].seq == 1:
            return await store.append_events(batch)
        stuck.set()
        await asyncio.sleep(3600)  # the database hangs: decided events wait in the outbox
        raise AssertionError("unreachable")

    agents = AgentActivities(None)
    activities = [
        append_until_the_database_hangs,
        store.notify,
        store.stored_ticket,
        PolicyActivities(dict(BUILTIN_POLICIES)).resolve_policy,
        agents.authorize,
        agents.authorize_batch,
        AssignmentActivities(db_pool, agents).choose_assignee,
    ]
    task_queue = f"tq-{uuid.uuid4()}"
    async with ticket_worker(dev_env.client, task_queue, db_pool, activities):
        rig = TicketRig(dev_env, db_pool, task_queue)
        h = await rig.open()
        for n in range(3):
            await h.signal("respond", {"agent_id": "amy", "message": f"reply {n}"})
        await asyncio.wait_for(stuck.wait(), 30)
        decided = await h.query("history")
        assert len(decided) == 4 and len(await read_ticket(db_pool, rig.last_id)) == 1
        await h.terminate("operator: stop this ticket")

        dry = await reconcile(db_pool, dev_env, rig.last_id, "--dry-run")
        assert f"{rig.last_id}: workflow terminated at seq 1; would store 3 decided" in dry
        assert len(await read_ticket(db_pool, rig.last_id)) == 1

        done = await reconcile(db_pool, dev_env, rig.last_id)
        assert f"{rig.last_id}: workflow terminated at seq 1; stored 3 decided event(s)" in done
        stored = await read_ticket(db_pool, rig.last_id)
        assert [str(e.event_id) for e in stored] == [e["event_id"] for e in decided]
        assert [e.payload for e in stored] == [e["payload"] for e in decided]
        state = fold([e.to_domain() for e in stored])
        assert state is not None and state.version == 4
        ended = await db_pool.fetchval(
            "SELECT workflow_ended FROM tickets WHERE ticket_id = $1", rig.last_id
        )
        assert ended == "terminated"

        again = await reconcile(db_pool, dev_env, rig.last_id)  # nothing more: exactly once
        assert f"{rig.last_id}: workflow terminated at seq 4; stored 0 decided" in again
        assert len(await read_ticket(db_pool, rig.last_id)) == 4


async def test_check_workflows_compares_running_state_with_a_fold_of_the_store(
    dev_rig: TicketRig,
) -> None:
    h = await dev_rig.open()
    await h.execute_update("assign", {"agent_id": "amy"})
    out = io.StringIO()
    args = readside.build_parser().parse_args(["check", "--workflows"])
    await readside.run(args, dev_rig.pool, settings=Settings(), client=dev_rig.client, out=out)
    assert dev_rig.last_id not in out.getvalue()  # agrees
    assert "running workflows and the store" in out.getvalue()

    # an event the workflow never decided, written into the store behind its back
    stored = await read_ticket(dev_rig.pool, dev_rig.last_id)
    forged = (
        stored[-1].to_domain().model_copy(update={"seq": len(stored) + 1, "event_id": uuid.uuid4()})
    )
    await append_events(dev_rig.pool, [forged])
    out = io.StringIO()
    code = await readside.run(
        args, dev_rig.pool, settings=Settings(), client=dev_rig.client, out=out
    )
    assert code == 1
    assert f"{dev_rig.last_id}: the store holds 3 events, the workflow 2" in out.getvalue()
    await h.terminate("test finished")
