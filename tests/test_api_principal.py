"""The caller's identity reaches the workflow signed: with ESCALATION_REQUIRE_PRINCIPAL a Signal
or Update sent straight to Temporal without a valid principal for its agent is refused,
whoever sends it; without the requirement it is applied; replay never needs the keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowUpdateInput,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from api.auth import Caller
from api.principal_client import principal_header
from domain.principal import HEADER
from tests.api_support import ApiRig, api_rig
from workflows.ticket import TicketWorkflow

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(loop_scope="session")
async def required(dev_env: Any, db_pool: Any, tmp_path: Path) -> AsyncIterator[ApiRig]:
    async with api_rig(dev_env, db_pool, tmp_path, require=True) as rig:
        yield rig


@pytest_asyncio.fixture(loop_scope="session")
async def optional(dev_env: Any, db_pool: Any, tmp_path: Path) -> AsyncIterator[ApiRig]:
    async with api_rig(dev_env, db_pool, tmp_path, require=False) as rig:
        yield rig


class _FixedHeader(Interceptor):
    """Sends the given principal header with every Update, whatever the call is."""

    def __init__(self, headers: Mapping[str, Payload]) -> None:
        self.headers = headers

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        fixed = self.headers

        class _Out(OutboundInterceptor):
            async def start_workflow_update(
                self, input: StartWorkflowUpdateInput
            ) -> WorkflowUpdateHandle[Any]:
                input.headers = {**input.headers, **fixed}
                return await super().start_workflow_update(input)

        return _Out(next)


def with_headers(client: Client, headers: Mapping[str, Payload]) -> Client:
    config = client.config()
    config["interceptors"] = [_FixedHeader(headers)]
    return Client(**config)


async def events_of(rig: ApiRig, tid: str, count: int) -> list[dict[str, Any]]:
    """The stored events once there are `count` of them (appends follow the decision)."""
    events: list[dict[str, Any]] = []
    for _ in range(100):
        r = await rig.http.get(f"/v1/tickets/{tid}/events", headers=rig.auth("max"))
        events = r.json()
        if len(events) >= count:
            break
        await asyncio.sleep(0.05)
    return events


async def test_a_direct_update_without_principal_is_refused_when_required(
    required: ApiRig,
) -> None:
    tid, _ = await required.open()
    handle = required.client.get_workflow_handle(f"ticket-{tid}")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("assign", {"agent_id": "max"})
    assert "unauthenticated" in str(err.value.cause)
    assert "carries no principal" in str(err.value.cause)
    # the customer's own action names no agent: no principal needed
    await handle.execute_update("customer_replied", {"message": "hello?"})
    # through the API the same action is signed and applied
    r = await required.http.post(f"/v1/tickets/{tid}/actions/assign", headers=required.auth("max"))
    assert r.status_code == 200 and r.json()["assignee"] == "max"


async def test_a_direct_signal_without_principal_is_recorded_as_refused(required: ApiRig) -> None:
    tid, _ = await required.open()
    handle = required.client.get_workflow_handle(f"ticket-{tid}")
    await handle.signal("respond", {"agent_id": "max", "message": "I am max, honest"})
    events = await events_of(required, tid, 2)
    assert events[1]["event_type"] == "ActionRejected"
    assert "unauthenticated" in events[1]["payload"]["reason"]
    view = (await required.http.get(f"/v1/tickets/{tid}", headers=required.auth("max"))).json()
    assert view["first_responded_at"] is None


async def test_a_principal_copied_from_another_call_is_refused(required: ApiRig) -> None:
    tid, _ = await required.open()
    other, _ = await required.open()
    max_ = Caller("agent", "max", None)
    # A genuine principal of max, for another ticket; and one for this ticket but other text.
    for header in (
        principal_header(required.keys, max_, f"ticket-{other}", "assign", [{"agent_id": "max"}]),
        principal_header(
            required.keys, max_, f"ticket-{tid}", "assign", [{"agent_id": "max", "x": 1}]
        ),
    ):
        client = with_headers(required.client, {HEADER: header})
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await client.get_workflow_handle(f"ticket-{tid}").execute_update(
                "assign", {"agent_id": "max"}
            )
        assert "issued for another ticket, action or payload" in str(err.value.cause)
    # and the right one, sent straight to Temporal, is accepted
    good = principal_header(required.keys, max_, f"ticket-{tid}", "assign", [{"agent_id": "max"}])
    client = with_headers(required.client, {HEADER: good})
    view = await client.get_workflow_handle(f"ticket-{tid}").execute_update(
        "assign", {"agent_id": "max"}
    )
    assert view["assignee"] == "max"


async def test_a_principal_signed_with_an_unknown_key_is_refused(required: ApiRig) -> None:
    from domain.principal import parse_keys
    from tests.api_support import new_keys

    tid, _ = await required.open()
    stranger = parse_keys(new_keys("p9"))
    assert stranger is not None
    header = principal_header(
        stranger, Caller("agent", "max", None), f"ticket-{tid}", "assign", [{"agent_id": "max"}]
    )
    client = with_headers(required.client, {HEADER: header})
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await client.get_workflow_handle(f"ticket-{tid}").execute_update(
            "assign", {"agent_id": "max"}
        )
    assert "unknown key id 'p9'" in str(err.value.cause)


async def test_a_direct_update_is_applied_when_not_required(optional: ApiRig) -> None:
    tid, _ = await optional.open()
    handle = optional.client.get_workflow_handle(f"ticket-{tid}")
    view = await handle.execute_update("assign", {"agent_id": "max"})
    assert view["assignee"] == "max"


@pytest.mark.slow
async def test_replay_needs_no_keys(required: ApiRig) -> None:
    tid, _ = await required.open()
    handle = required.client.get_workflow_handle(f"ticket-{tid}")
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("assign", {"agent_id": "max"})
    r = await required.http.post(f"/v1/tickets/{tid}/actions/assign", headers=required.auth("max"))
    assert r.status_code == 200
    await handle.signal("respond", {"agent_id": "max"})
    await events_of(required, tid, 4)
    history = await handle.fetch_history()
    # No worker, no directory, no keys, no interceptor: the recorded decisions replay.
    replayer = Replayer(workflows=[TicketWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)  # raises on any non-determinism
