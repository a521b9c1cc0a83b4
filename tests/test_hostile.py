"""Payloads sent by someone with only a Temporal client, meant to stop, freeze or fork a ticket
(issue 13; docs/contract.md#robustness-promises). Each ticket must go on: a refusal is recorded
(Signal) or returned (Update), later actions are applied and stored, queries answer, and no
workflow task fails."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.commands import MAX_PAYLOAD_DEPTH, payload_depth
from runtime.codec import ENCODING, KEY_ID_METADATA, KEYS_ENV
from runtime.config import Settings
from runtime.temporal import data_converter
from store.event_store import read_ticket
from tests.conftest import TicketRig, ticket_worker
from tests.test_bad_inputs import healthy_ticket, still_healthy
from tests.test_codec import K1, with_converter

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
