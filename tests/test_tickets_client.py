"""TicketClient on the dev server: idempotent open, every action, reads, and every typed error."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from activities.agents import AgentActivities
from domain.policy import BUILTIN_POLICIES, Policy
from domain.view import view
from runtime.config import Settings
from tests.conftest import TicketRig
from tests.test_domain_decider import Story
from tickets import (
    ActionRejected,
    CannotConnect,
    InvalidInput,
    ServerBusy,
    TicketClient,
    TicketClosed,
    TicketError,
    TicketNotFound,
)
from tickets import client as client_module
from tickets.client import TicketSummary
from worker import build_worker

pytestmark = pytest.mark.asyncio

# Breaches within a second: lets `list --breached` be tested in wall-clock time.
FAST_POLICY = Policy.model_validate(
    {
        "name": "fast",
        "tiers": ["L1", "L2", "L3"],
        "targets": {
            p: {"first_response": "1s", "resolution": "1h", "tier_budget": "1h"}
            for p in ("urgent", "high", "normal", "low")
        },
    }
)


def new_ticket(**fields: Any) -> dict[str, Any]:
    return {
        "ticket_id": f"C-{uuid.uuid4().hex[:10]}",
        "subject": "Refund not received",
        "customer_id": "acme",
        **fields,
    }


def client_for(rig: TicketRig) -> TicketClient:
    return TicketClient(rig.client, rig.task_queue)


async def opened(rig: TicketRig, **fields: Any) -> tuple[TicketClient, str]:
    """Open a ticket through the client; the rig terminates it at teardown."""
    tc = client_for(rig)
    ticket = new_ticket(**fields)
    await tc.open(ticket)
    rig.handles.append(tc.handle(ticket["ticket_id"]))
    return tc, ticket["ticket_id"]


async def listed(tc: TicketClient, query: str, ticket_id: str) -> list[TicketSummary]:
    """Visibility lags writes briefly: poll (bounded) until the ticket shows up."""
    rows: list[TicketSummary] = []
    for _ in range(100):
        rows = await tc.list(query)
        if any(r.ticket_id == ticket_id for r in rows):
            break
        await asyncio.sleep(0.1)
    return rows


@pytest_asyncio.fixture(loop_scope="session")
async def custom_rig(dev_env: Any, db_pool: Any, tmp_path: Path) -> AsyncIterator[TicketRig]:
    """A worker that also knows the `fast` policy and has an agent directory."""
    path = tmp_path / "agents.toml"
    path.write_text(
        '[agents.ann]\nname = "Ann"\ntiers = ["L1"]\n\n'
        '[agents.ben]\nname = "Ben"\ntiers = ["L2"]\n\n'
        '[agents.max]\nname = "Max"\nrole = "manager"\n'
    )
    task_queue = f"tq-{uuid.uuid4()}"
    policies = {**BUILTIN_POLICIES, "fast": FAST_POLICY}
    worker = build_worker(dev_env.client, task_queue, db_pool, policies, AgentActivities(path))
    async with worker:
        rig = TicketRig(dev_env, db_pool, task_queue)
        yield rig
        await rig.finish()


async def test_open_returns_the_view_and_is_idempotent(dev_rig: TicketRig) -> None:
    tc = client_for(dev_rig)
    ticket = new_ticket(priority="high", category="billing")
    views = await asyncio.gather(*(tc.open(ticket) for _ in range(20)))
    dev_rig.handles.append(tc.handle(ticket["ticket_id"]))
    first = views[0]
    assert first.ticket_id == ticket["ticket_id"]
    assert (first.status, first.tier, first.priority, first.category) == (
        "new",
        "L1",
        "high",
        "billing",
    )
    assert first.sla.first_response_due is not None
    assert {v.opened_at for v in views} == {first.opened_at}  # one ticket, one workflow
    history = await tc.history(ticket["ticket_id"])
    assert [e.event_type for e in history] == ["TicketOpened"]
    again = await tc.open(ticket)  # later, too: returns the existing ticket
    assert again.opened_at == first.opened_at


async def test_every_action_returns_the_view_after_it(dev_rig: TicketRig) -> None:
    tc, tid = await opened(dev_rig)
    v = await tc.assign(tid, "amy")
    assert (v.status, v.assignee) == ("open", "amy")
    v = await tc.assign(tid, "amy", assignee="bob")
    assert v.assignee == "bob"
    v = await tc.respond(tid, "bob", message="looking")
    assert v.first_responded_at is not None
    v = await tc.await_customer(tid, "bob", message="which card?")
    assert (v.status, v.sla.paused) == ("pending", True)
    v = await tc.customer_replied(tid, message="visa")
    assert (v.status, v.sla.paused) == ("open", False)
    v = await tc.change_priority(tid, "bob", "urgent", reason="vip")
    assert v.priority == "urgent"
    v = await tc.request_escalation(tid, "bob", "needs payments", request_id="esc-1")
    assert (v.tier, v.assignee) == ("L2", None)
    assert v.escalations[-1].reason == "needs payments"
    again = await tc.escalate(tid, "bob", "needs payments", request_id="esc-1")
    assert (again.tier, again.version) == ("L2", v.version)  # same request id: a no-op
    v = await tc.resolve(tid, "bob", "refunded")
    assert v.status == "resolved"
    v = await tc.reopen(tid, reason="still missing")
    assert v.status == "open"
    v = await tc.resolve(tid, "bob", "refunded again")
    v = await tc.close(tid, "bob")
    assert v.status == "closed" and v.closed_at is not None
    shown = await tc.show(tid)
    assert shown == v
    types = [e.event_type for e in await tc.history(tid)]
    assert types[0] == "TicketOpened" and types[-1] == "TicketClosed"
    assert "TicketEscalated" in types and "TicketReopened" in types


async def test_list_finds_tickets_by_search_attributes(dev_rig: TicketRig) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    tc, tid = await opened(dev_rig, customer_id=customer, priority="high")
    await tc.assign(tid, "lia")
    await tc.escalate(tid, "lia", "needs L2")
    rows = await listed(tc, f"TicketCustomer = '{customer}' AND TicketTier = 'L2'", tid)
    row = next(r for r in rows if r.ticket_id == tid)
    assert row.workflow_id == f"ticket-{tid}"
    assert (row.status, row.tier, row.priority, row.customer_id) == ("open", "L2", "high", customer)
    assert row.execution_status == "running" and row.sla_breached is False
    assert row.sla_due is not None


async def test_missing_ticket_is_not_found(dev_rig: TicketRig) -> None:
    tc = client_for(dev_rig)
    with pytest.raises(TicketNotFound, match=r"^ticket T-nope-1 not found$"):
        await tc.show("T-nope-1")
    with pytest.raises(TicketNotFound, match="ticket T-nope-1 not found"):
        await tc.history("T-nope-1")
    with pytest.raises(TicketNotFound, match="ticket T-nope-1 not found"):
        await tc.respond("T-nope-1", "amy")


async def test_rejected_action_carries_the_workflows_reason(dev_rig: TicketRig) -> None:
    tc, tid = await opened(dev_rig)
    await tc.resolve(tid, "amy", "done")
    with pytest.raises(ActionRejected) as err:
        await tc.escalate(tid, "amy", "why")
    assert str(err.value) == f"ticket {tid} is resolved; cannot escalate"
    assert isinstance(err.value, TicketError) and err.value.exit_code == 1


async def test_a_closed_ticket_takes_no_actions_and_is_not_reopened(dev_rig: TicketRig) -> None:
    tc, tid = await opened(dev_rig)
    await tc.close(tid, "amy")
    with pytest.raises(TicketClosed, match=f"^ticket {tid} is closed$"):
        await tc.respond(tid, "amy")
    with pytest.raises(TicketClosed, match=f"ticket {tid} is closed"):
        await tc.open(new_ticket(ticket_id=tid))
    assert (await tc.show(tid)).status == "closed"  # still readable


async def test_cannot_connect_names_the_address_and_the_fix() -> None:
    with pytest.raises(CannotConnect) as err:
        await TicketClient.connect(Settings(temporal_address="127.0.0.1:1"))
    assert "127.0.0.1:1" in str(err.value)
    assert "python3 dev.py up" in str(err.value)
    assert err.value.exit_code == 4


async def test_invalid_input_is_refused_before_sending(dev_rig: TicketRig) -> None:
    tc = client_for(dev_rig)
    with pytest.raises(InvalidInput, match="priority"):
        await tc.open(new_ticket(priority="p0"))
    with pytest.raises(InvalidInput, match="ticket_id"):
        await tc.open(new_ticket(ticket_id="bad id!"))
    # A ticket that does not exist: had anything been sent, it would be TicketNotFound.
    with pytest.raises(InvalidInput, match="request_escalation: reason"):
        await tc.escalate("T-nope-2", "amy", "")
    with pytest.raises(InvalidInput, match="change_priority: priority"):
        await tc.change_priority("T-nope-2", "amy", "p0")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unknown action"):
        await tc.act("T-nope-2", "explode", agent_id="amy")


async def test_unknown_policy_is_invalid_input_from_the_workflow(dev_rig: TicketRig) -> None:
    tc = client_for(dev_rig)
    ticket = new_ticket(policy="no-such-policy")
    with pytest.raises(InvalidInput, match="unknown policy 'no-such-policy'"):
        await tc.open(ticket)


async def test_unauthorized_agent_is_rejected_with_the_directorys_reason(
    custom_rig: TicketRig,
) -> None:
    tc, tid = await opened(custom_rig)
    await tc.escalate(tid, "ann", "db problem")
    with pytest.raises(ActionRejected, match=f"agent ann may not act on ticket {tid} at tier L2"):
        await tc.respond(tid, "ann")
    assert (await tc.respond(tid, "max")).first_responded_at is not None
    with pytest.raises(ActionRejected, match="unknown agent 'zed'"):
        await tc.resolve(tid, "zed", "x")


async def test_breached_tickets_are_listed(custom_rig: TicketRig) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    tc, tid = await opened(custom_rig, customer_id=customer, policy="fast")
    rows = await listed(tc, f"TicketCustomer = '{customer}' AND SlaBreached = true", tid)
    assert [r.ticket_id for r in rows] == [tid]
    view = await tc.show(tid)
    assert [b.metric for b in view.sla.breaches] == ["first_response"]


VIEW = view(Story().s).model_dump(mode="json")  # ticket T-1 as the workflow would answer


class _FlakyHandle:
    """An Update RPC that the server applied but whose answer was lost, once or more."""

    def __init__(self, losses: list[Exception]) -> None:
        self.losses = losses
        self.bodies: list[dict[str, Any]] = []

    async def execute_update(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if self.losses:
            raise self.losses.pop(0)
        return VIEW


async def test_a_retried_action_sends_the_same_generated_request_id(
    dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a burst, callers got transport errors for Updates that were applied; a client that
    retried without a request_id applied them twice (issue 13, item 7)."""
    monkeypatch.setattr(client_module, "ACT_BACKOFF", 0.0)
    tc = TicketClient(dev_rig.client, dev_rig.task_queue)
    flaky = _FlakyHandle(
        [
            RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b""),
            RPCError("too many updates", RPCStatusCode.RESOURCE_EXHAUSTED, b""),
            WorkflowUpdateRPCTimeoutOrCancelledError(),
        ]
    )
    monkeypatch.setattr(tc, "handle", lambda _tid: flaky)
    view = await tc.respond("T-1", "ann", "hello")
    assert view.ticket_id == "T-1"
    ids = {b["request_id"] for b in flaky.bodies}
    assert len(flaky.bodies) == 4 and len(ids) == 1 and ids.pop().startswith("tc-")

    again = _FlakyHandle([])
    monkeypatch.setattr(tc, "handle", lambda _tid: again)
    await tc.respond("T-1", "ann", "hello", request_id="mine")
    await tc.respond("T-1", "ann", "hello")
    assert again.bodies[0]["request_id"] == "mine"
    assert again.bodies[1]["request_id"] != flaky.bodies[0]["request_id"]  # a new action


async def test_a_transport_error_that_lasts_is_reported_after_the_retries(
    dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "ACT_BACKOFF", 0.0)
    tc = TicketClient(dev_rig.client, dev_rig.task_queue)
    down = _FlakyHandle(
        [
            RPCError("down", RPCStatusCode.UNAVAILABLE, b"")
            for _ in range(client_module.ACT_ATTEMPTS + 3)
        ]
    )
    monkeypatch.setattr(tc, "handle", lambda _tid: down)
    with pytest.raises(CannotConnect):
        await tc.respond("T-1", "ann")
    assert len(down.bodies) == client_module.ACT_ATTEMPTS


async def test_a_busy_ticket_is_retried_longer_than_an_unreachable_server(
    dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a flood the server refuses Updates while the ticket hands over (its workflow task
    retried, the Update aborted by the change of run, too many in flight): nothing was applied,
    and the client keeps sending the same request for BUSY_ATTEMPTS, not ACT_ATTEMPTS."""
    monkeypatch.setattr(client_module, "ACT_BACKOFF", 0.0)
    tc = TicketClient(dev_rig.client, dev_rig.task_queue)
    busy = [
        RPCError("workflow update was aborted", RPCStatusCode.UNAVAILABLE, b""),
        RPCError(
            "Unable to perform workflow execution update due to Workflow Task in failed state.",
            RPCStatusCode.FAILED_PRECONDITION,
            b"",
        ),
        RPCError(
            "limit on number of concurrent in-flight updates", RPCStatusCode.RESOURCE_EXHAUSTED, b""
        ),
    ]
    patient = _FlakyHandle([busy[n % 3] for n in range(client_module.BUSY_ATTEMPTS - 1)])
    monkeypatch.setattr(tc, "handle", lambda _tid: patient)
    await tc.respond("T-1", "ann", "hello")
    assert len(patient.bodies) == client_module.BUSY_ATTEMPTS
    assert len({b["request_id"] for b in patient.bodies}) == 1

    endless = _FlakyHandle([busy[0] for _ in range(client_module.BUSY_ATTEMPTS + 3)])
    monkeypatch.setattr(tc, "handle", lambda _tid: endless)
    with pytest.raises(ServerBusy, match="update was aborted"):
        await tc.respond("T-1", "ann")
    assert len(endless.bodies) == client_module.BUSY_ATTEMPTS
