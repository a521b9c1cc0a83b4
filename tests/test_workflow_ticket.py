"""TicketWorkflow on the time-skipping server: SLA timers, actions, refusals, event store.

Time only moves through `env.sleep` or while awaiting a result, so every timer here is exact.
Rejected Updates are tested on the dev server (test_workflow_devserver.py): on the Java
time-skipping server a rejected Update leaves its clock locked and the next `sleep` times out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from store.event_store import read_ticket
from tests.conftest import TicketRig

pytestmark = pytest.mark.asyncio


def at(view: dict[str, Any], key: str) -> datetime:
    value = view["sla"][key]
    assert value, f"sla.{key} is null"
    return datetime.fromisoformat(value)


def types(history: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in history]


async def test_first_response_breach_escalates_at_the_due_time(rig: TicketRig) -> None:
    h = await rig.open(priority="urgent")  # first response 15m
    await rig.sleep(timedelta(minutes=14, seconds=50))
    view = await h.query("state")
    assert view["tier"] == "L1" and view["sla"]["breaches"] == []
    await rig.sleep(timedelta(seconds=20))
    view = await h.query("state")
    assert view["tier"] == "L2"
    assert view["escalations"][0]["trigger"] == "first_response_breach"
    breach = view["sla"]["breaches"][0]
    assert breach["metric"] == "first_response" and breach["tier"] == "L1"
    assert datetime.fromisoformat(breach["due_at"]) - datetime.fromisoformat(
        view["opened_at"]
    ) == timedelta(minutes=15)
    history = types(await h.query("history"))
    assert history[:4] == ["TicketOpened", "SlaWarning", "SlaBreached", "TicketEscalated"]


async def test_tier_timeouts_chain_to_the_top_tier_and_no_further(rig: TicketRig) -> None:
    h = await rig.open(priority="urgent")  # tier budget 1h
    await h.execute_update("respond", {"agent_id": "amy"})
    await rig.sleep(timedelta(hours=1, seconds=1))
    assert (await h.query("state"))["tier"] == "L2"
    await rig.sleep(timedelta(hours=1))
    view = await h.query("state")
    assert view["tier"] == "L3" and view["sla"]["tier_due"] is None
    await rig.sleep(timedelta(hours=30))
    view = await h.query("state")
    assert view["tier"] == "L3"
    assert [e["trigger"] for e in view["escalations"]] == ["tier_timeout", "tier_timeout"]


async def test_agent_request_escalates_at_once_with_reason(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "amy"})
    view = await h.execute_update(
        "request_escalation", {"agent_id": "amy", "reason": "needs DBA", "to_tier": "L3"}
    )
    assert view["tier"] == "L3" and view["assignee"] is None
    esc = view["escalations"][0]
    assert (esc["trigger"], esc["reason"], esc["agent_id"]) == ("agent_request", "needs DBA", "amy")


async def test_pending_freezes_every_clock_and_resume_shifts_due_times(rig: TicketRig) -> None:
    h = await rig.open(priority="high")  # first response 1h, resolution 8h, tier 2h
    before = await h.query("state")
    await rig.sleep(timedelta(minutes=10))
    view = await h.execute_update("await_customer", {"agent_id": "amy"})
    assert view["status"] == "pending" and view["sla"]["paused"] is True
    assert view["sla"]["first_response_due"] is None
    await rig.sleep(timedelta(days=3))
    view = await h.query("state")
    assert view["tier"] == "L1" and view["sla"]["breaches"] == []
    view = await h.execute_update("customer_replied", {"message": "here you go"})
    assert view["status"] == "open"
    shift = at(view, "first_response_due") - at(before, "first_response_due")
    assert shift >= timedelta(days=3)
    assert at(view, "resolution_due") - at(before, "resolution_due") == shift
    assert at(view, "tier_due") - at(before, "tier_due") == shift


async def test_priority_change_recomputes_and_breaches_at_once(rig: TicketRig) -> None:
    h = await rig.open(priority="low")  # first response 8h
    await rig.sleep(timedelta(minutes=30))
    view = await h.execute_update(
        "change_priority", {"agent_id": "lead", "priority": "urgent", "reason": "outage"}
    )
    assert view["priority"] == "urgent"
    assert view["tier"] == "L2"  # urgent first response (15m) was already past
    assert [b["metric"] for b in view["sla"]["breaches"]] == ["first_response"]
    assert at(view, "resolution_due") - datetime.fromisoformat(view["opened_at"]) == timedelta(
        hours=4
    )
    history = types(await h.query("history"))
    assert history[-3:] == ["PriorityChanged", "SlaBreached", "TicketEscalated"]


async def test_resolved_ticket_closes_itself_after_auto_close(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("respond", {"agent_id": "amy"})
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "restarted"})
    result = await h.result()  # skips the 72h auto-close timer
    assert result["status"] == "closed"
    history = await h.query("history")
    assert history[-1]["event_type"] == "TicketClosed"
    assert history[-1]["payload"]["trigger"] == "auto"
    closed = datetime.fromisoformat(result["closed_at"])
    resolved = datetime.fromisoformat(history[-2]["occurred_at"])
    # A timer fires a few ms after its due time (the task that armed it started earlier).
    assert timedelta(hours=72) <= closed - resolved < timedelta(hours=72, seconds=1)


async def test_reopen_cancels_auto_close_and_keeps_active_time(rig: TicketRig) -> None:
    h = await rig.open(priority="high")
    await h.execute_update("respond", {"agent_id": "amy"})
    await rig.sleep(timedelta(hours=1))
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    await rig.sleep(timedelta(hours=10))
    view = await h.execute_update("reopen", {"reason": "still broken"})
    assert view["status"] == "open" and view["resolved_at"] is None
    opened = datetime.fromisoformat(view["opened_at"])
    # 8h resolution target, 1h already spent, 10h resolved do not count; real milliseconds
    # pass between the updates, so allow a second.
    spent = at(view, "resolution_due") - opened
    assert timedelta(hours=18) - timedelta(seconds=1) < spent < timedelta(hours=18, seconds=1)
    await rig.sleep(timedelta(hours=63))  # past where the 72h auto-close would have fired
    view = await h.query("state")
    assert view["status"] == "open"  # no auto-close once reopened
    assert [b["metric"] for b in view["sla"]["breaches"]] == ["resolution"]


async def test_customer_reply_reopens_a_resolved_ticket(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    view = await h.execute_update("customer_replied", {"message": "not fixed"})
    assert view["status"] == "open"


async def test_request_id_makes_an_action_idempotent(rig: TicketRig) -> None:
    h = await rig.open()
    first = await h.execute_update("assign", {"agent_id": "amy", "request_id": "r-1"})
    again = await h.execute_update("assign", {"agent_id": "amy", "request_id": "r-1"})
    await h.signal("assign", {"agent_id": "amy", "request_id": "r-1"})
    view = await h.query("state")
    assert first == again and view["assignee"] == "amy"
    assert types(await h.query("history")).count("TicketAssigned") == 1
    assert "ActionRejected" not in types(await h.query("history"))


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("assign", {"agent_id": "bob"}),  # another agent
        ("assign", {"agent_id": "amy", "assignee": "carl"}),  # another payload
        ("request_escalation", {"agent_id": "amy", "reason": "needs L2"}),  # another action
        ("close", {"agent_id": "nobody-knows-me"}),
    ],
)
async def test_a_request_id_is_bound_to_its_first_use(
    rig: TicketRig, action: str, payload: dict[str, Any]
) -> None:
    """The same request id with another action, agent or payload used to return the current
    view, storing nothing and skipping authorization (issue 13, item 4)."""
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "esc-1"})
    before = await h.query("history")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(action, {**payload, "request_id": "esc-1"})
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.message == "request_id esc-1 was already used for assign by amy"
    assert await h.query("history") == before  # an Update leaves no trace
    await h.signal(action, {**payload, "request_id": "esc-1"})
    view = await h.execute_update("respond", {"agent_id": "amy"})
    history = await h.query("history")
    refused = [e for e in history if e["event_type"] == "ActionRejected"]
    assert [e["payload"]["reason"] for e in refused] == [
        "request_id esc-1 was already used for assign by amy"
    ]
    assert view["status"] == "open" and view["tier"] == "L1"


async def test_malformed_signal_is_recorded_and_the_ticket_stays_healthy(rig: TicketRig) -> None:
    h = await rig.open()
    await h.signal("assign", "not an object")
    await h.signal("request_escalation", {"agent_id": "amy"})
    await h.signal("reopen", {"reason": "x"})
    await h.signal("no_such_action", {"x": 1})  # unknown signal names are not ours to record
    view = await h.execute_update("assign", {"agent_id": "amy"})
    assert view["assignee"] == "amy"
    history = await h.query("history")
    rejected = [e["payload"] for e in history if e["event_type"] == "ActionRejected"]
    assert [r["action"] for r in rejected] == ["assign", "request_escalation", "reopen"]
    assert "payload must be a JSON object" in rejected[0]["reason"]
    assert "reason: required field is missing" in rejected[1]["reason"]
    assert rejected[2]["reason"] == f"ticket {rig.last_id} is new; cannot reopen"


async def test_invalid_start_input_fails_at_once_with_invalid_ticket(rig: TicketRig) -> None:
    h = await rig.start_raw({"ticket_id": "T 1", "subject": "", "customer_id": "c", "extra": 1})
    with pytest.raises(WorkflowFailureError) as err:
        await h.result()
    cause = err.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidTicket" and cause.non_retryable
    for field in ("ticket_id", "subject", "extra: unknown field"):
        assert field in cause.message


async def test_unknown_policy_fails_with_invalid_ticket(rig: TicketRig) -> None:
    h = await rig.start_raw(
        {"ticket_id": "T-nope", "subject": "s", "customer_id": "c", "policy": "nope"}
    )
    with pytest.raises(WorkflowFailureError) as err:
        await h.result()
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.type == "InvalidTicket"
    assert "unknown policy 'nope'" in err.value.cause.message


async def test_resolution_breach_notifies_and_reminds_at_the_top_tier(rig: TicketRig) -> None:
    h = await rig.open(priority="urgent")  # resolution 4h, renotify every 1h
    await h.execute_update("respond", {"agent_id": "amy"})
    await h.execute_update(
        "request_escalation", {"agent_id": "amy", "reason": "x", "to_tier": "L3"}
    )
    await rig.sleep(timedelta(hours=4, minutes=1))
    view = await h.query("state")
    assert [b["metric"] for b in view["sla"]["breaches"]] == ["resolution"]
    await rig.sleep(timedelta(hours=3))
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    await rig.sleep(timedelta(hours=5))  # resolved: reminders stop
    kinds = await rig.notification_kinds(rig.last_id)
    assert kinds.count("breach") == 1
    assert kinds.count("breach_reminder") == 3
    assert "at_risk" in kinds and "escalated" in kinds


async def test_store_holds_exactly_the_history_gapless(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "amy"})
    await h.signal("respond", {"agent_id": "amy", "message": "hello"})
    await h.execute_update("close", {"agent_id": "amy"})
    result = await h.result()
    history = await h.query("history")
    stored = await read_ticket(rig.pool, rig.last_id)
    assert [e.seq for e in stored] == list(range(1, len(history) + 1))
    assert [str(e.event_id) for e in stored] == [e["event_id"] for e in history]
    assert [e.event_type for e in stored] == types(history)
    assert [e.payload for e in stored] == [e["payload"] for e in history]
    assert result["version"] == len(stored)
