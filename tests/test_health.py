"""runtime/health.py: the worker container's health check, against a real dev server."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from runtime import health
from tests.conftest import ticket_worker

pytestmark = [pytest.mark.asyncio, pytest.mark.devserver]


async def test_healthy_only_while_this_host_s_worker_polls(
    dev_env: WorkflowEnvironment, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    monkeypatch.setenv("ESCALATION_TASK_QUEUE", task_queue)
    assert await health.main(client=dev_env.client) == 1  # nobody polls yet
    async with ticket_worker(dev_env.client, task_queue, db_pool):
        for _ in range(100):  # a poller shows once its first poll reached the server
            if await health.pollers(dev_env.client, task_queue):
                break
            await asyncio.sleep(0.05)
        assert await health.main(client=dev_env.client) == 0
        assert await health.main("another-host", client=dev_env.client) == 1
