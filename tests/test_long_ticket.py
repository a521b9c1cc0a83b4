"""Long tickets continue as new on our own budget, carrying their folded state: state, clocks and
request ids survive each run, and the event store keeps the whole history.

The budget is lowered here so a few hundred actions take several runs; bench/long_ticket.py
runs 5,000 actions at the real budget.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from bench.long_ticket import drive_long_ticket, run_histories
from domain.events import DomainEvent
from domain.state import fold
from domain.view import TicketView, view
from store.event_store import read_ticket
from tests.conftest import TicketRig
from tickets.cli import render_history
from workflows import history_budget
from workflows.ticket import Carried

pytestmark = pytest.mark.asyncio


async def stored_view(rig: TicketRig, ticket_id: str) -> TicketView:
    state = fold([e.to_domain() for e in await read_ticket(rig.pool, ticket_id)])
    assert state is not None
    return view(state)


async def test_carried_state_round_trips_through_json(rig: TicketRig) -> None:
    h = await rig.open(priority="high")
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "a-1"})
    await h.execute_update("await_customer", {"agent_id": "amy"})
    state = fold([e.to_domain() for e in await read_ticket(rig.pool, rig.last_id)])
    assert state is not None and state.pauses and state.request_ids == {"a-1"}
    carried = Carried(state=state, reminders_sent=2)
    again = Carried.model_validate_json(carried.model_dump_json())
    assert again.state == state
    assert again.reminders_sent == 2


@pytest.mark.devserver
@pytest.mark.slow
async def test_a_long_ticket_continues_as_new_and_loses_nothing(
    dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_budget, "CONTINUE_AS_NEW_EVENTS", 150)
    r = await drive_long_ticket(dev_rig.client, dev_rig.task_queue, dev_rig.pool, 160)
    assert r.runs >= 4, r
    assert max(r.run_history_events) < 150 + 20, r  # the budget plus the last task's events
    assert r.seq_problems == []
    assert (r.events_stored, r.expected_events) == (162, 162)
    assert r.duplicates_sent == 3 and r.duplicates_applied == 0
    assert r.state_matches_store and r.history_query_matches_store
    assert r.ok


async def test_clocks_and_request_ids_survive_continue_as_new(
    rig: TicketRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused and resumed across three runs, the first response still breaches exactly when a
    fold of the stored events says, and a request id from the first run is still known."""
    monkeypatch.setattr(history_budget, "CONTINUE_AS_NEW_EVENTS", 40)
    monkeypatch.setattr(history_budget, "CARRIED_EVENTS", 5)
    h = await rig.open(priority="urgent")  # first response due in 15 minutes
    tid = rig.last_id
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "first"})
    for i in range(6):
        await rig.sleep(timedelta(minutes=1))
        await h.execute_update("await_customer", {"agent_id": "amy", "request_id": f"w-{i}"})
        await rig.sleep(timedelta(minutes=3))  # paused: the clocks stand still
        await h.execute_update("customer_replied", {"message": f"reply {i}"})
    runs = await run_histories(rig.client, h.id, h.first_execution_run_id or h.run_id)
    assert len(runs) >= 3
    again = await h.execute_update(
        "assign", {"agent_id": "amy", "request_id": "first"}, result_type=TicketView
    )
    assert again.assignee == "amy"  # the first run's request id: a retry, not applied twice
    with pytest.raises(WorkflowUpdateFailedError) as err:  # and bound to its first use
        await h.execute_update("assign", {"agent_id": "bob", "request_id": "first"})
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.message == "request_id first was already used for assign by amy"

    recent = await h.query("history", result_type=list[DomainEvent])
    stored = [e.to_domain() for e in await read_ticket(rig.pool, tid)]
    assert 1 < recent[0].seq and recent == stored[-len(recent) :]  # the carried tail
    assert f"events 1-{recent[0].seq - 1} are earlier" in render_history(tid, recent)

    expected = await stored_view(rig, tid)
    assert await h.query("state", result_type=TicketView) == expected
    due = expected.sla.first_response_due
    assert due is not None
    now = (await read_ticket(rig.pool, tid))[-1].occurred_at  # the last reply
    # 6 active minutes so far (and the moments the actions took), 18 paused: due about 9
    # active minutes after the last reply.
    assert abs(due - now - timedelta(minutes=9)) < timedelta(seconds=5)

    await rig.sleep(due - now - timedelta(seconds=30))
    assert (await h.query("state", result_type=TicketView)).tier == "L1"
    await rig.sleep(timedelta(minutes=1))
    after = await h.query("state", result_type=TicketView)
    assert after.tier == "L2"
    assert [(b.metric, b.due_at) for b in after.sla.breaches] == [("first_response", due)]
    stored_rows = await read_ticket(rig.pool, tid)
    assert [e.seq for e in stored_rows] == list(range(1, len(stored_rows) + 1))
    assert [e.event_type for e in stored_rows].count("TicketEscalated") == 1
    assert await stored_view(rig, tid) == after
