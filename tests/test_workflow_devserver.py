"""TicketWorkflow on the real Temporal dev server: what outsiders see.

Visibility (`temporal workflow list --query`), the event store after a forced retry, rejected
Updates, and a ticket driven with plain JSON by name, as a service in another language would.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError

from activities.agents import AgentActivities
from activities.event_store import AppendBatch, EventStoreActivities
from activities.policy import PolicyActivities
from domain.policy import BUILTIN_POLICIES
from store.event_store import AppendResult, read_ticket
from tests.conftest import TicketRig, ticket_worker, venv_binary

pytestmark = pytest.mark.asyncio


async def temporal_cli(rig: TicketRig, *args: str) -> str:
    """Run the real `temporal` CLI against the test's dev server (without blocking the loop:
    the worker under test runs on it)."""
    target = rig.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        venv_binary("temporal"),
        *args,
        "--address",
        target,
        "--namespace",
        rig.client.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, f"temporal {' '.join(args)} failed: {err.decode()}"
    return out.decode()


async def listed(rig: TicketRig, query: str, expect: str) -> list[str]:
    """Workflow ids the CLI lists for a visibility query (visibility lags writes briefly)."""
    ids: list[str] = []
    for _ in range(100):
        rows = await temporal_cli(rig, "workflow", "list", "--query", query, "--output", "json")
        ids = [row["execution"]["workflowId"] for row in json.loads(rows or "[]")]
        if expect in ids:
            break
        await asyncio.sleep(0.1)
    return ids


async def test_search_attributes_make_queues_visible_to_the_cli(dev_rig: TicketRig) -> None:
    h = await dev_rig.open(priority="high", customer_id="globex")
    await h.execute_update("request_escalation", {"agent_id": "amy", "reason": "needs L2"})
    await h.execute_update("assign", {"agent_id": "bob"})
    queue = f"TicketTier='L2' AND TicketStatus='open' AND TaskQueue='{dev_rig.task_queue}'"
    assert h.id in await listed(dev_rig, queue, h.id)
    mine = "TicketAssignee='bob' AND TicketCustomer='globex' AND TicketPriority='high'"
    assert h.id in await listed(dev_rig, mine, h.id)
    due = "TicketSlaDue < '2999-01-01T00:00:00Z' AND SlaBreached = false"
    assert h.id in await listed(dev_rig, f"{due} AND WorkflowId='{h.id}'", h.id)
    await h.execute_update("resolve", {"agent_id": "bob", "resolution": "done"})
    resolved = f"TicketStatus='resolved' AND WorkflowId='{h.id}'"
    assert h.id in await listed(dev_rig, resolved, h.id)
    # No clock runs while resolved: TicketSlaDue is unset.
    unset = f"TicketSlaDue IS NULL AND WorkflowId='{h.id}'"
    assert h.id in await listed(dev_rig, unset, h.id)


async def test_rejected_update_names_the_reason_and_leaves_no_trace(dev_rig: TicketRig) -> None:
    h = await dev_rig.open()
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    before = await h.query("history")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update("request_escalation", {"agent_id": "amy", "reason": "why"})
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ActionRejected"
    assert cause.message == f"ticket {dev_rig.last_id} is resolved; cannot escalate"
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update("respond", {"agent": "typo"})
    assert "agent_id: required field is missing" in str(err.value.cause)
    assert "agent: unknown field" in str(err.value.cause)
    assert await h.query("history") == before
    history_events = [e async for e in h.fetch_history_events()]
    kinds = {e.WhichOneof("attributes") for e in history_events}
    assert "workflow_execution_update_rejected_event_attributes" not in kinds  # never recorded


async def test_escalating_past_the_top_tier_is_refused(dev_rig: TicketRig) -> None:
    h = await dev_rig.open()
    await h.execute_update("request_escalation", {"agent_id": "a", "reason": "x", "to_tier": "L3"})
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update("request_escalation", {"agent_id": "a", "reason": "more"})
    assert "already at the top tier L3; cannot escalate" in str(err.value.cause)


async def test_append_retried_after_commit_stores_each_event_once(
    dev_env: Any, db_pool: Any
) -> None:
    """The first attempt of every append commits, then 'crashes' before reporting success."""
    store = EventStoreActivities(db_pool)
    crashed: list[int] = []

    @activity.defn(name="append_events")
    async def append_then_crash(batch: AppendBatch) -> AppendResult:
        result = await store.append_events(batch)
        if activity.info().attempt == 1:
            crashed.append(batch.events[0].seq)
            raise RuntimeError("simulated worker crash after the commit")
        return result

    task_queue = f"tq-{uuid.uuid4()}"
    policies = PolicyActivities(dict(BUILTIN_POLICIES))
    agents = AgentActivities(None)
    activities = [
        append_then_crash,
        store.notify,
        store.stored_ticket,
        policies.resolve_policy,
        agents.authorize,
        agents.authorize_batch,
    ]
    async with ticket_worker(dev_env.client, task_queue, db_pool, activities):
        rig = TicketRig(dev_env, db_pool, task_queue)
        h = await rig.open()
        await h.execute_update("assign", {"agent_id": "amy"})
        await h.execute_update("respond", {"agent_id": "amy"})
        await h.execute_update("close", {"agent_id": "amy"})
        result = await h.result()
    stored = await read_ticket(db_pool, rig.last_id)
    assert crashed, "the crash hook never ran"
    assert [e.event_type for e in stored] == [
        "TicketOpened",
        "TicketAssigned",
        "AgentResponded",
        "TicketClosed",
    ]
    assert [e.seq for e in stored] == [1, 2, 3, 4]
    assert len({e.event_id for e in stored}) == 4
    assert result["version"] == 4


async def test_a_ticket_driven_with_plain_json_by_name(dev_rig: TicketRig) -> None:
    """No Python types: the default JSON converter, names and dicts only."""
    raw = Client(dev_rig.client.service_client, namespace="default", data_converter=DataConverter())
    ticket_id = f"J-{uuid.uuid4().hex[:10]}"
    dev_rig.last_id = ticket_id
    h = await raw.start_workflow(
        "TicketWorkflow",
        {
            "ticket_id": ticket_id,
            "subject": "Refund not received",
            "customer_id": "acme",
            "priority": "urgent",
        },
        id=f"ticket-{ticket_id}",
        task_queue=dev_rig.task_queue,
    )
    dev_rig.handles.append(h)
    view: dict[str, Any] = await h.execute_update("assign", {"agent_id": "amy"})
    assert view["status"] == "open" and view["assignee"] == "amy"
    view = await h.execute_update(
        "request_escalation", {"agent_id": "amy", "reason": "db", "request_id": "req-1"}
    )
    assert view["tier"] == "L2"
    await h.signal("request_escalation", {"agent_id": "amy", "reason": "db", "request_id": "req-1"})
    state: dict[str, Any] = await h.query("state")
    assert state["tier"] == "L2" and state["escalations"][0]["trigger"] == "agent_request"
    assert state["opened_at"].endswith(("Z", "+00:00"))
    view = await h.execute_update("resolve", {"agent_id": "amy", "resolution": "refunded"})
    view = await h.execute_update("close", {"agent_id": "amy"})
    final: dict[str, Any] = await h.result()
    assert final["status"] == "closed" and final["tier"] == "L2"
    history: list[dict[str, Any]] = await h.query("history")
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    assert history[0]["payload"]["policy"]["name"] == "default"


async def test_cli_alone_drives_a_ticket_from_open_to_close(dev_rig: TicketRig) -> None:
    """The `temporal` CLI alone, as any operator or non-Python service would: start, every
    kind of action as Update and Signal, both queries, and the final result."""
    ticket_id = f"C-{uuid.uuid4().hex[:10]}"
    wid = f"ticket-{ticket_id}"
    ticket = {"ticket_id": ticket_id, "subject": "Printer on fire", "customer_id": "initech"}
    cli = functools.partial(temporal_cli, dev_rig)
    await cli(
        "workflow", "start", "--type", "TicketWorkflow", "--task-queue", dev_rig.task_queue,
        "--workflow-id", wid, "--input", json.dumps(ticket),
    )  # fmt: skip
    dev_rig.handles.append(dev_rig.client.get_workflow_handle(wid))

    async def update(name: str, payload: dict[str, Any]) -> str:
        return await cli(
            "workflow", "update", "execute", "--workflow-id", wid, "--name", name,
            "--input", json.dumps(payload),
        )  # fmt: skip

    assert "amy" in await update("assign", {"agent_id": "amy"})
    await update("respond", {"agent_id": "amy", "message": "on it"})
    await update("await_customer", {"agent_id": "amy"})
    await cli("workflow", "signal", "--workflow-id", wid, "--name", "customer_replied")
    await update("request_escalation", {"agent_id": "amy", "reason": "needs hardware team"})
    await update("change_priority", {"agent_id": "amy", "priority": "high"})
    await update("resolve", {"agent_id": "bob", "resolution": "extinguished"})
    await update("reopen", {"reason": "smoking again"})
    await update("resolve", {"agent_id": "bob", "resolution": "replaced"})
    state = json.loads(
        await cli("workflow", "query", "--workflow-id", wid, "--type", "state", "-o", "json")
    )
    view = state["queryResult"][0] if "queryResult" in state else state
    assert (view["status"], view["tier"], view["priority"]) == ("resolved", "L2", "high")
    await update("close", {"agent_id": "bob"})
    result = json.loads(await cli("workflow", "result", "--workflow-id", wid, "-o", "json"))
    final = result.get("result", result)
    assert final["status"] == "closed"
    history = json.loads(
        await cli("workflow", "query", "--workflow-id", wid, "--type", "history", "-o", "json")
    )
    events = history["queryResult"][0] if "queryResult" in history else history
    assert [e["event_type"] for e in events] == [
        "TicketOpened",
        "TicketAssigned",
        "AgentResponded",
        "CustomerAwaited",
        "CustomerReplied",
        "TicketEscalated",
        "PriorityChanged",
        "TicketResolved",
        "TicketReopened",
        "TicketResolved",
        "TicketClosed",
    ]
