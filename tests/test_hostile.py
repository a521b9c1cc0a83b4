"""Payloads sent by someone with only a Temporal client, meant to stop, freeze or fork a ticket
(issue 13; docs/contract.md#robustness-promises). Each ticket must go on: a refusal is recorded
(Signal) or returned (Update), later actions are applied and stored, queries answer, and no
workflow task fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.commands import MAX_PAYLOAD_DEPTH, payload_depth
from domain.state import fold
from domain.view import TicketView
from domain.view import view as domain_view
from runtime.codec import ENCODING, KEY_ID_METADATA, KEYS_ENV
from runtime.config import PROJECT_ROOT, Settings
from runtime.temporal import data_converter
from store.event_store import read_ticket
from tests.conftest import TicketRig, ticket_worker
from tests.test_bad_inputs import healthy_ticket, still_healthy, task_failures
from tests.test_codec import K1, with_converter
from tickets import TicketClient
from workflows import history_budget

pytestmark = pytest.mark.devserver


def nested(levels: int) -> Any:
    value: Any = "deep"
    for _ in range(levels):
        value = [value]
    return value


def json_payload(text: str) -> RawValue:
    """A payload exactly as a raw client may write it, JSON text of any shape."""
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode()))


def test_depth_is_counted_without_recursion_and_stops_past_the_limit() -> None:
    assert payload_depth("x") == 0
    assert payload_depth({"a": [1, {"b": []}]}) == 4
    assert payload_depth(nested(100_000)) == MAX_PAYLOAD_DEPTH + 1  # no RecursionError


@pytest.mark.parametrize("levels", [33, 199, 5_000])
async def test_a_deeply_nested_signal_is_refused_and_the_store_keeps_up(
    dev_rig: TicketRig, levels: int
) -> None:
    """199 levels used to be recorded whole in ActionRejected, which append_events then could
    not decode: the store stopped at seq 1 while the workflow went on."""
    h, before = await healthy_ticket(dev_rig)
    text = '{"agent_id": "ann", "x": ' + "[" * levels + "]" * levels + "}"
    await h.signal("respond", json_payload(text))
    history = await still_healthy(dev_rig, h, before)
    refused = history[len(before)]
    assert refused["event_type"] == "ActionRejected"
    reason = refused["payload"]["reason"]
    assert reason.startswith("respond: ") and ("deeper than 32" in reason or "decode" in reason)
    assert payload_depth(refused["payload"]["payload"]) <= MAX_PAYLOAD_DEPTH


async def test_a_deeply_nested_update_is_refused_and_leaves_no_trace(dev_rig: TicketRig) -> None:
    h, before = await healthy_ticket(dev_rig)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update("respond", {"agent_id": "ann", "x": nested(40)})
    assert isinstance(err.value.cause, ApplicationError)
    assert "nests deeper than 32 levels" in err.value.cause.message
    assert await h.query("history") == before
    await still_healthy(dev_rig, h, before)


# --- a forged encrypted payload ---------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def encrypted_rig(
    dev_env: WorkflowEnvironment, db_pool: asyncpg.Pool
) -> AsyncIterator[tuple[TicketRig, Client]]:
    """A worker and a client with the codec on, as `worker.py` builds them; and a keyless
    client that writes raw payloads (the attacker)."""
    settings = Settings.from_env({KEYS_ENV: f"k1:{K1}"})
    worker_client = with_converter(dev_env.client, data_converter(settings, worker=True))
    keyed = with_converter(dev_env.client, data_converter(settings))
    keyless = with_converter(dev_env.client, pydantic_data_converter)
    task_queue = f"tq-{uuid.uuid4()}"
    async with ticket_worker(worker_client, task_queue, db_pool):
        rig = TicketRig(dev_env, db_pool, task_queue)
        rig.client = keyed
        yield rig, keyless
        await rig.finish()


def forged(key_id: bytes) -> RawValue:
    return RawValue(
        Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=b"\x00" * 60)
    )


@pytest.mark.parametrize("key_id", [b"nope", b"k1"], ids=["unknown-key", "garbage-under-k1"])
async def test_a_forged_encrypted_signal_is_refused_not_fatal(
    encrypted_rig: tuple[TicketRig, Client], key_id: bytes
) -> None:
    rig, keyless = encrypted_rig
    h, before = await healthy_ticket(rig)
    await keyless.get_workflow_handle(h.id).signal("respond", forged(key_id))
    history = await still_healthy(rig, h, before)
    refused = history[len(before)]
    assert refused["event_type"] == "ActionRejected"
    assert refused["payload"]["reason"].startswith("respond: payload does not decrypt (")


async def test_a_forged_encrypted_update_is_rejected_and_queries_still_answer(
    encrypted_rig: tuple[TicketRig, Client],
) -> None:
    rig, keyless = encrypted_rig
    h, before = await healthy_ticket(rig)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await keyless.get_workflow_handle(h.id).execute_update("respond", forged(b"nope"))
    assert isinstance(err.value.cause, ApplicationError)
    assert "does not decrypt" in err.value.cause.message and "'nope'" in err.value.cause.message
    assert await h.query("history") == before
    await still_healthy(rig, h, before)
    stored = await read_ticket(rig.pool, rig.last_id)
    assert [e.event_type for e in stored][-1] == "CustomerReplied"


# --- id reuse and reset ------------------------------------------------------------------------


async def test_starting_a_closed_ticket_s_id_again_is_refused_and_records_nothing(
    dev_rig: TicketRig,
) -> None:
    h = await dev_rig.open()
    await h.execute_update("close", {"agent_id": "amy"})
    stored = await read_ticket(dev_rig.pool, dev_rig.last_id)
    # the README's own `temporal workflow start`: default id reuse policy, so a new run starts
    again = await dev_rig.client.start_workflow(
        "TicketWorkflow",
        {"ticket_id": dev_rig.last_id, "subject": "again", "customer_id": "acme"},
        id=h.id,
        task_queue=dev_rig.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as err:
        await again.result()
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidTicket"
    assert cause.message.startswith(f"ticket_id: ticket {dev_rig.last_id} already exists in the")
    assert "(2 events, status closed)" in cause.message
    assert await read_ticket(dev_rig.pool, dev_rig.last_id) == stored
    view = await TicketClient(dev_rig.client, dev_rig.task_queue).show(dev_rig.last_id)
    assert view.status == "closed" and view.subject != "again"  # the stored ticket, not a phantom


async def _first_task_completed(client: Client, workflow_id: str) -> int:
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return event.event_id
    raise AssertionError("no completed workflow task")


async def test_a_reset_to_the_first_workflow_task_resumes_from_the_store(
    dev_rig: TicketRig,
) -> None:
    """`temporal workflow reset --type FirstWorkflowTask` made the new run decide seq 1 again,
    which the store refused (EventStoreFailed): the ticket was dead. The reset reapplies the
    Updates sent after the reset point; with their request ids stored, they are no-ops."""
    h = await dev_rig.open()
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "r-assign"})
    await h.execute_update("await_customer", {"agent_id": "amy", "request_id": "r-wait"})
    before = await h.query("history")
    client = dev_rig.client
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=h.id),
            reason="operator reset",
            workflow_task_finish_event_id=await _first_task_completed(client, h.id),
            request_id=str(uuid.uuid4()),
        )
    )
    reset = client.get_workflow_handle(h.id, run_id=response.run_id)
    view = await reset.execute_update("respond", {"agent_id": "amy", "message": "back"})
    assert view["version"] == len(before) + 1 and view["status"] == "open"
    stored = await read_ticket(dev_rig.pool, dev_rig.last_id)
    assert [e.seq for e in stored] == list(range(1, len(before) + 2))
    assert [str(e.event_id) for e in stored[: len(before)]] == [e["event_id"] for e in before]
    state = fold([e.to_domain() for e in stored])
    assert state is not None
    assert TicketView.model_validate(view) == domain_view(state)
    assert await task_failures(reset) == ["operator reset"]  # the reset's own mark, no other
    dev_rig.handles.append(reset)


# --- floods -------------------------------------------------------------------------------------


async def _runs(client: Client, workflow_id: str) -> int:
    return len([w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")])


@pytest.mark.slow
async def test_a_signal_flood_continues_as_new_on_budget_and_loses_nothing(
    dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handlers only take actions in, so the run continues as new whenever its budget says,
    carrying what it has not decided yet: 600 Signals at once, budget 100 per run."""
    monkeypatch.setattr(history_budget, "CONTINUE_AS_NEW_MESSAGES", 100)
    h = await dev_rig.open()
    await asyncio.gather(
        *(
            h.signal("respond", {"agent_id": "amy", "message": f"m{n}", "request_id": f"f-{n}"})
            for n in range(600)
        )
    )
    view = await asyncio.wait_for(
        TicketClient(dev_rig.client, dev_rig.task_queue).respond(dev_rig.last_id, "amy", "last"),
        timeout=120,
    )
    stored = await read_ticket(dev_rig.pool, dev_rig.last_id)
    messages = [e.payload["message"] for e in stored if e.event_type == "AgentResponded"]
    assert sorted(messages) == sorted([f"m{n}" for n in range(600)] + ["last"])
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert view.version == len(stored)
    assert (
        await _runs(dev_rig.client, h.id) >= 2
    )  # the first took in 100 and more, then handed over


@pytest.mark.slow
async def test_updates_during_a_continue_as_new_are_retried_and_applied_once(
    dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_budget, "CONTINUE_AS_NEW_MESSAGES", 20)
    h = await dev_rig.open()
    tc = TicketClient(dev_rig.client, dev_rig.task_queue)
    views = await asyncio.wait_for(
        asyncio.gather(*(tc.respond(dev_rig.last_id, "amy", f"u{n}") for n in range(60))),
        timeout=180,
    )
    stored = await read_ticket(dev_rig.pool, dev_rig.last_id)
    messages = sorted(e.payload["message"] for e in stored if e.event_type == "AgentResponded")
    assert messages == sorted(f"u{n}" for n in range(60))  # each once: no loss, no double
    assert max(v.version for v in views) == len(stored)
    assert await _runs(dev_rig.client, h.id) >= 3


@pytest.mark.slow
async def test_big_replies_are_stored_in_batches_under_the_blob_limit(dev_rig: TicketRig) -> None:
    """1,500 valid 20 KB replies got the run terminated at 53 MB; here 300 replies of 19 KB
    (5.7 MB, twice the history budget) at once: appended in batches of at most
    APPEND_BATCH_BYTES, continued as new on the 2 MB budget, every reply stored once."""
    h = await dev_rig.open()
    body = "x" * 19_000
    await asyncio.gather(
        *(h.signal("respond", {"agent_id": "amy", "message": f"{n}:{body}"}) for n in range(300))
    )
    await asyncio.wait_for(
        TicketClient(dev_rig.client, dev_rig.task_queue).respond(dev_rig.last_id, "amy", "end"),
        timeout=180,
    )
    stored = await read_ticket(dev_rig.pool, dev_rig.last_id)
    replies = [e for e in stored if e.event_type == "AgentResponded"]
    assert len(replies) == 301 and len({e.payload["message"] for e in replies}) == 301
    assert await _runs(dev_rig.client, h.id) >= 2


async def test_a_signal_over_the_server_s_blob_limit_never_reaches_the_ticket(
    dev_rig: TicketRig,
) -> None:
    """30 concurrent 1.9 MB Signals got a run terminated (history size) within a second; the
    server the dev stack runs (like docker-compose's) refuses blobs over 1 MiB at the door."""
    h, before = await healthy_ticket(dev_rig)
    huge = json_payload('{"agent_id": "amy", "message": "' + "x" * 1_900_000 + '"}')
    results = await asyncio.gather(
        *(h.signal("respond", huge) for _ in range(30)), return_exceptions=True
    )
    assert all(isinstance(r, RPCError) for r in results), results
    await still_healthy(dev_rig, h, before)


def test_the_dev_stack_and_compose_set_the_blob_limit_the_budget_absorbs() -> None:
    import yaml

    from runtime import dev

    cmd = dev.temporal_command("temporal", db_filename="t.db")
    i = cmd.index("--dynamic-config-value")
    assert cmd[i + 1] == f"limit.blobSize.error={history_budget.SERVER_BLOB_LIMIT}"
    config = yaml.safe_load((PROJECT_ROOT / "deploy/temporal-dynamic-config.yaml").read_text())
    assert config["limit.blobSize.error"] == [{"value": history_budget.SERVER_BLOB_LIMIT}]
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    temporal = compose["services"]["temporal"]
    path = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert temporal["volumes"] == [f"./deploy/temporal-dynamic-config.yaml:/etc/temporal/{path}:ro"]
    # what a ticket writes in one blob stays under it
    assert history_budget.APPEND_BATCH_BYTES < history_budget.SERVER_BLOB_LIMIT
    assert (
        history_budget.CARRIED_EVENT_BYTES + history_budget.CARRIED_INBOX_BYTES
        <= history_budget.SERVER_BLOB_LIMIT // 2
    )
