# ruff: noqa: E501  (the case tables read best one case a line)
"""Bad input matrix (issue 7, item 4): malformed and hostile inputs at every door.

Workflow start, signals and updates run on the dev server (rejected Updates lock the
time-skipping server's clock); the policy and agent files are parsed as the worker parses them.
Each input gets a clear error naming the field, or an `ActionRejected` event; no workflow is
left failing its tasks, the ticket still takes a valid action, and nothing recorded before is lost.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.event_store import AppendBatch, EventStoreActivities
from domain.agents import DirectoryError, parse_directory
from domain.errors import PolicyError
from domain.events import DomainEvent
from domain.policy import parse_policies
from store.event_store import read_ticket
from tests.conftest import TicketRig
from workflows.ticket import REJECTED_PAYLOAD_MAX

MB = "x" * 1_000_000
SQL = "'; DROP TABLE ticket_events; --"
MISSING = object()  # drop the field from the input


# --- helpers --------------------------------------------------------------------------------


async def task_failures(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Messages of every WorkflowTaskFailed event in the workflow's history."""
    return [
        e.workflow_task_failed_event_attributes.failure.message
        async for e in handle.fetch_history_events()
        if e.HasField("workflow_task_failed_event_attributes")
    ]


async def healthy_ticket(rig: TicketRig) -> tuple[WorkflowHandle[Any, Any], list[dict[str, Any]]]:
    """An open ticket with a few events recorded; returns it and its history so far."""
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "amy"})
    await h.execute_update("await_customer", {"agent_id": "amy", "message": "which order?"})
    return h, await h.query("history")


async def still_healthy(
    rig: TicketRig, h: WorkflowHandle[Any, Any], before: list[dict[str, Any]], patience: float = 15
) -> list[dict[str, Any]]:
    """A valid action still works, what was recorded before is unchanged (in the workflow and
    the store), the store holds exactly the history, and no workflow task failed."""
    view = await asyncio.wait_for(
        h.execute_update("customer_replied", {"message": "order 42"}), timeout=patience
    )
    assert view["status"] == "open"
    history: list[dict[str, Any]] = await h.query("history")
    assert history[: len(before)] == before
    stored = await read_ticket(rig.pool, rig.last_id)
    assert [str(e.event_id) for e in stored] == [e["event_id"] for e in history]
    assert [e.payload for e in stored] == [e["payload"] for e in history]
    assert [e.seq for e in stored] == list(range(1, len(history) + 1))
    assert await task_failures(h) == []
    return history


# --- workflow start -------------------------------------------------------------------------

START_CASES: list[Any] = [
    pytest.param({"subject": 123}, "subject", id="subject-wrong-type"),
    pytest.param({"subject": "a\x00b"}, "subject: Value error, NUL characters", id="subject-nul"),
    pytest.param({"customer_id": MISSING}, "customer_id: required field is missing", id="missing-customer"),
    pytest.param({"subject": MISSING}, "subject: required field is missing", id="missing-subject"),
    pytest.param({"color": "red"}, "color: unknown field", id="unknown-field"),
    pytest.param({"subject": MB}, "subject", id="subject-1mb"),
    pytest.param({"description": MB}, "description", id="description-1mb"),
    pytest.param({"ticket_id": "T-1\n\x00\x1b[2J"}, "ticket_id", id="ticket-id-control-chars"),
    pytest.param({"ticket_id": SQL}, "ticket_id", id="ticket-id-sql"),
    pytest.param({"priority": "critical"}, "priority", id="unknown-priority"),
    pytest.param({"customer_id": {"id": "acme"}}, "customer_id", id="customer-wrong-type"),
    pytest.param({"policy": ""}, "policy", id="empty-policy"),
    pytest.param({"policy": "../../etc/passwd"}, "unknown policy '../../etc/passwd'", id="policy-path"),
    pytest.param({"ticket_id": "T-other"}, "does not match workflow id", id="ticket-id-mismatch"),
    pytest.param([1, 2], "input must be a JSON object, got list", id="input-list"),
    pytest.param(None, "input must be a JSON object", id="input-null"),
    pytest.param("T-1", "input must be a JSON object, got str", id="input-string"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "expected"), START_CASES)
async def test_bad_start_input_fails_the_workflow_at_once_naming_the_field(
    dev_rig: TicketRig, fields: Any, expected: str
) -> None:
    ticket_id = f"B-{uuid.uuid4().hex[:12]}"
    if isinstance(fields, dict):
        ticket: Any = {"ticket_id": ticket_id, "subject": "s", "customer_id": "acme"}
        ticket.update(fields)
        ticket = {k: v for k, v in ticket.items() if v is not MISSING}
    else:
        ticket = fields
    h = await dev_rig.client.start_workflow(
        "TicketWorkflow", ticket, id=f"ticket-{ticket_id}", task_queue=dev_rig.task_queue
    )
    dev_rig.handles.append(h)
    with pytest.raises(WorkflowFailureError) as err:
        await asyncio.wait_for(h.result(), timeout=15)
    cause = err.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidTicket" and cause.non_retryable
    assert expected in cause.message
    assert len(cause.message) < 2000  # a 1 MB input is named, not echoed
    assert await task_failures(h) == []
    assert await read_ticket(dev_rig.pool, ticket_id) == []


async def test_start_without_any_input_fails_with_invalid_ticket(dev_rig: TicketRig) -> None:
    ticket_id = f"B-{uuid.uuid4().hex[:12]}"
    h = await dev_rig.client.start_workflow(
        "TicketWorkflow", id=f"ticket-{ticket_id}", task_queue=dev_rig.task_queue
    )
    dev_rig.handles.append(h)
    with pytest.raises(WorkflowFailureError) as err:
        await asyncio.wait_for(h.result(), timeout=15)
    assert isinstance(err.value.cause, ApplicationError)
    assert err.value.cause.type == "InvalidTicket"
    assert "input must be a JSON object" in err.value.cause.message
    assert await task_failures(h) == []


async def test_sql_looking_text_is_stored_verbatim_and_the_tables_survive(
    dev_rig: TicketRig,
) -> None:
    h = await dev_rig.open(subject=SQL, customer_id="x'); DELETE FROM ticket_events; --",
                           description=f"{SQL}\n\"quoted\" \\ backslash $1 %s")  # fmt: skip
    await h.execute_update("respond", {"agent_id": "amy", "message": SQL})
    await h.signal("resolve", {"agent_id": SQL, "resolution": SQL})
    await h.execute_update("customer_replied", {"message": SQL})  # reopens
    stored = await read_ticket(dev_rig.pool, dev_rig.last_id)
    opened = stored[0].payload
    assert opened["subject"] == SQL
    assert opened["customer_id"] == "x'); DELETE FROM ticket_events; --"
    assert opened["description"] == f'{SQL}\n"quoted" \\ backslash $1 %s'
    assert stored[1].payload["message"] == SQL
    assert stored[2].payload["agent_id"] == SQL  # the resolve (no directory: anyone may)
    assert stored[3].payload["message"] == SQL and stored[3].payload["reopened"] is True
    tables = await dev_rig.pool.fetchval(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ticket_events'"
    )
    assert tables == 1
    assert await dev_rig.pool.fetchval("SELECT count(*) FROM ticket_events") >= len(stored)
    assert await task_failures(h) == []


# --- signals --------------------------------------------------------------------------------

SIGNAL_CASES: list[Any] = [
    pytest.param("assign", "not an object", "payload must be a JSON object, got str", id="assign-string"),
    pytest.param("assign", [1, 2], "payload must be a JSON object, got list", id="assign-list"),
    pytest.param("assign", 42, "payload must be a JSON object, got int", id="assign-number"),
    pytest.param("assign", None, "agent_id: required field is missing", id="assign-null"),
    pytest.param("respond", {"agent_id": 123}, "agent_id", id="respond-agent-wrong-type"),
    pytest.param("respond", {"agent_id": "amy", "sudo": True}, "sudo: unknown field", id="respond-unknown-field"),
    pytest.param("change_priority", {"agent_id": "amy", "priority": "critical"}, "priority", id="priority-unknown"),
    pytest.param("request_escalation", {"agent_id": "amy", "reason": "x", "to_tier": "L9"}, "to_tier: unknown tier 'L9'", id="escalate-unknown-tier"),
    pytest.param("request_escalation", {"agent_id": "amy", "reason": ""}, "reason", id="escalate-empty-reason"),
    pytest.param("resolve", {"agent_id": "amy"}, "resolution: required field is missing", id="resolve-missing-resolution"),
    pytest.param("assign", {"agent_id": "amy", "request_id": "r" * 129}, "request_id", id="request-id-too-long"),
    pytest.param("close", {"agent_id": "a" * 129}, "agent_id", id="agent-id-too-long"),
    pytest.param("reopen", {"reason": SQL}, "cannot reopen", id="reopen-while-pending-sql"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "payload", "reason"), SIGNAL_CASES)
async def test_bad_signal_is_recorded_as_action_rejected(
    dev_rig: TicketRig, action: str, payload: Any, reason: str
) -> None:
    h, before = await healthy_ticket(dev_rig)
    await h.signal(action, payload)
    history = await still_healthy(dev_rig, h, before)
    rejected = history[len(before)]
    assert rejected["event_type"] == "ActionRejected"
    assert rejected["payload"]["action"] == action
    assert reason in rejected["payload"]["reason"]
    assert history[len(before) + 1]["event_type"] == "CustomerReplied"


async def test_a_1mb_signal_payload_is_rejected_and_recorded_truncated(dev_rig: TicketRig) -> None:
    h, before = await healthy_ticket(dev_rig)
    await h.signal("respond", {"agent_id": "amy", "message": MB})
    history = await still_healthy(dev_rig, h, before)
    rejected = history[len(before)]["payload"]
    assert rejected["reason"].startswith("respond: payload of 1000")
    assert rejected["reason"].endswith(" bytes is over the 262144 allowed")
    kept = rejected["payload"]["truncated"]
    assert len(kept) == REJECTED_PAYLOAD_MAX and kept.startswith('{"agent_id":"amy"')


async def test_control_characters_in_a_message_are_kept_verbatim(dev_rig: TicketRig) -> None:
    h, before = await healthy_ticket(dev_rig)
    text = "line\r\nbell\x07 esc\x1b[31mred\x1b[0m tab\t del\x7f \u202eRTL \ufeff"
    await h.signal("respond", {"agent_id": "amy", "message": text})
    history = await still_healthy(dev_rig, h, before)
    assert history[len(before)]["event_type"] == "AgentResponded"
    stored = await read_ticket(dev_rig.pool, dev_rig.last_id)
    assert stored[len(before)].payload["message"] == text


async def test_a_nul_character_in_a_message_never_wedges_the_ticket(dev_rig: TicketRig) -> None:
    h, before = await healthy_ticket(dev_rig)
    await h.signal("respond", {"agent_id": "amy\x00", "message": "a\x00b"})
    history = await still_healthy(dev_rig, h, before, patience=5)
    rejected = history[len(before)]["payload"]
    assert "NUL characters" in rejected["reason"]
    assert rejected["agent_id"] == "amy\ufffd" and rejected["payload"]["message"] == "a\ufffdb"


async def test_a_signal_without_payload_is_rejected_for_the_missing_field(
    dev_rig: TicketRig,
) -> None:
    h, before = await healthy_ticket(dev_rig)
    await h.signal("close")
    history = await still_healthy(dev_rig, h, before)
    assert "agent_id: required field is missing" in history[len(before)]["payload"]["reason"]


# --- updates (rejected before anything is written) ------------------------------------------

UPDATE_CASES: list[Any] = [
    pytest.param("assign", {}, "agent_id: required field is missing", id="assign-empty"),
    pytest.param("assign", {"agent_id": ""}, "agent_id", id="assign-empty-agent"),
    pytest.param("assign", "amy", "payload must be a JSON object, got str", id="assign-string"),
    pytest.param("assign", {"agent_id": "amy", "priority": "high"}, "priority: unknown field", id="assign-unknown-field"),
    pytest.param("assign", {"agent_id": "amy", "request_id": ""}, "request_id", id="assign-empty-request-id"),
    pytest.param("respond", {"agent_id": "amy", "message": MB}, "over the 262144 allowed", id="respond-1mb"),
    pytest.param("change_priority", {"agent_id": "amy", "priority": "P0"}, "priority", id="priority-unknown"),
    pytest.param("request_escalation", {"agent_id": "amy", "reason": "x" * 2001}, "reason", id="escalate-long-reason"),
    pytest.param("request_escalation", {"agent_id": "amy", "reason": "x", "to_tier": SQL}, "to_tier", id="escalate-sql-tier"),
    pytest.param("resolve", {"agent_id": "amy", "resolution": None}, "resolution", id="resolve-null-resolution"),
    pytest.param("close", {"agent_id": ["amy"]}, "agent_id", id="close-agent-list"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "payload", "reason"), UPDATE_CASES)
async def test_bad_update_is_rejected_naming_the_field_and_leaves_no_trace(
    dev_rig: TicketRig, action: str, payload: Any, reason: str
) -> None:
    h, before = await healthy_ticket(dev_rig)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await asyncio.wait_for(h.execute_update(action, payload), timeout=15)
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ActionRejected"
    assert reason in cause.message and len(cause.message) < 2000
    assert await h.query("history") == before
    history = await still_healthy(dev_rig, h, before)
    assert len(history) == len(before) + 1  # only the valid action after it


# --- policy file ----------------------------------------------------------------------------

POLICY = """
[policies.p]
tiers = {tiers}
{extra}
[policies.p.targets.urgent]
first_response = "{first_response}"
resolution = "4h"
tier_budget = "1h"
[policies.p.targets.{priority}]
first_response = "1h"
resolution = "8h"
tier_budget = "2h"
[policies.p.targets.normal]
first_response = "4h"
resolution = "24h"
tier_budget = "8h"
[policies.p.targets.low]
first_response = "8h"
resolution = "72h"
tier_budget = "24h"
"""

GOOD_TIERS = '["L1", "L2"]'

POLICY_CASES: list[Any] = [
    pytest.param({"first_response": "-5m"}, "first_response: Value error, invalid duration '-5m'", id="negative-duration"),
    pytest.param({"first_response": "5x"}, "invalid duration '5x'", id="unknown-unit"),
    pytest.param({"first_response": "0s"}, "must be greater than zero", id="zero-duration"),
    pytest.param({"first_response": "99999999999999d"}, "too large", id="huge-duration"),
    pytest.param({"first_response": SQL}, "invalid duration", id="sql-duration"),
    pytest.param({"priority": "critical"}, "targets.critical", id="unknown-priority"),
    pytest.param({"extra": "escalate_to = 'L9'"}, "policies.p.escalate_to: unknown field", id="unknown-field"),
    pytest.param({"extra": "warn_at = 1e308"}, "warn_at", id="huge-warn-at"),
    pytest.param({"extra": "calendar = 'mars'"}, "unknown calendar 'mars'", id="unknown-calendar"),
    pytest.param({"extra": "tiers = ['L1', 'L2']"}, "not valid TOML: Cannot overwrite a value (at line 4", id="duplicate-key"),
    pytest.param({"tiers": "['L1', 'L 2']"}, "policies.p.tiers: Value error, tier name 'L 2' must be", id="bad-tier"),
    pytest.param({"extra": "renotify_every = 60"}, "renotify_every", id="duration-wrong-type"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "expected"), POLICY_CASES)
def test_bad_policy_file_is_refused_naming_the_field(fields: dict[str, str], expected: str) -> None:
    values = {
        "tiers": GOOD_TIERS,
        "extra": "",
        "first_response": "15m",
        "priority": "high",
        **fields,
    }
    with pytest.raises(PolicyError) as err:
        parse_policies(POLICY.format(**values), "policies.toml")
    assert str(err.value).startswith("policies.toml: ")
    assert expected in str(err.value)


async def test_policy_template_is_valid() -> None:
    text = POLICY.format(tiers=GOOD_TIERS, extra="", first_response="15m", priority="high")
    assert parse_policies(text, "policies.toml")["p"].tiers == ("L1", "L2")


def test_bad_tier_name_is_refused() -> None:
    text = POLICY.format(tiers=f'["L1", "{SQL}"]', extra="", first_response="15m", priority="high")
    with pytest.raises(PolicyError, match="tier name"):
        parse_policies(text, "policies.toml")


# --- agents file ----------------------------------------------------------------------------

AGENT_CASES: list[Any] = [
    pytest.param('[agents.a]\nname = "A"\nrole = "root"', "agents.a.role", id="unknown-role"),
    pytest.param('[agents."a b"]\nname = "A"', "agent id 'a b' must be", id="bad-id-space"),
    pytest.param(f'[agents."{SQL}"]\nname = "A"', "must be 1-128 letters", id="bad-id-sql"),
    pytest.param('[agents."a\\u0000"]\nname = "A"', "must be 1-128 letters", id="bad-id-nul"),
    pytest.param('[agents.a]\nname = 5', "agents.a.name", id="name-wrong-type"),
    pytest.param('[agents.a]\nname = "A"\ntiers = "L1"', "agents.a.tiers", id="tiers-wrong-type"),
    pytest.param('[agents.a]\nname = "A"\nadmin = true', "agents.a.admin: unknown field", id="unknown-field"),
    pytest.param('[agents.a]\nname = "A"\nid = "b"', "agents.a.id: unknown field", id="id-field"),
    pytest.param(f'[agents.a]\nname = "{"x" * 1_000_000}"', "agents.a.name", id="name-1mb"),
    pytest.param('[people.a]\nname = "A"', "unknown top-level key(s): people", id="unknown-table"),
    pytest.param("[agents]\n", "no [agents.<id>] table", id="no-agents"),
    pytest.param("[agents.a\nname = 1", "not valid TOML", id="not-toml"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), AGENT_CASES)
def test_bad_agents_file_is_refused_naming_the_field(text: str, expected: str) -> None:
    with pytest.raises(DirectoryError) as err:
        parse_directory(text, "agents.toml")
    message = str(err.value)
    assert message.startswith("agents.toml: ") and expected in message
    assert len(message) < 2000


async def test_data_postgres_refuses_is_a_permanent_refusal_not_endless_retries(
    db_pool: Any,
) -> None:
    """Defence in depth behind the NUL check: the store activity refuses such a batch for good."""
    ticket_id = f"NUL-{uuid.uuid4().hex[:8]}"
    event = DomainEvent(
        ticket_id=ticket_id,
        seq=1,
        event_id=uuid.uuid4(),
        event_type="CustomerReplied",
        payload={"message": "a\x00b", "reopened": False, "request_id": None},
        occurred_at=datetime.now(UTC),
    )
    store = EventStoreActivities(db_pool)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(
            store.append_events, AppendBatch(ticket_id=ticket_id, events=[event])
        )
    assert err.value.type == "InvalidBatch" and err.value.non_retryable
    assert await read_ticket(db_pool, ticket_id) == []
