"""The worker runs the projector beside itself by default; ESCALATION_PROJECTOR=off turns it off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

import worker
from runtime.config import Settings
from store.projections import checkpoint
from tests.readside_support import append, dsn_for, scratch_db, varied_tale


@pytest_asyncio.fixture(loop_scope="session")
async def db(pg_dsn: str, db_pool: asyncpg.Pool) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    async with scratch_db(db_pool, pg_dsn) as made:
        yield made


@pytest.mark.devserver
@pytest.mark.parametrize("projector", [True, False], ids=["default", "off"])
async def test_worker_runs_the_projector_unless_turned_off(
    dev_env: WorkflowEnvironment, db: tuple[asyncpg.Pool, str], pg_dsn: str, projector: bool
) -> None:
    pool, name = db
    settings = Settings(
        temporal_address=dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        task_queue=f"tq-{uuid.uuid4()}",
        database_url=dsn_for(pg_dsn, name),
        projector=projector,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(settings, stop))
    try:
        tales = [varied_tale(i) for i in range(3)]
        await append(pool, *tales)
        total = sum(len(t.events) for t in tales)
        for _ in range(200 if projector else 50):  # off: a second shows it stays at 0
            if (await checkpoint(pool)).events == total:
                break
            await asyncio.sleep(0.02)
        assert (await checkpoint(pool)).events == (total if projector else 0)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)  # stops cleanly, projector and all
    count = await pool.fetchval("SELECT count(*) FROM tickets")
    assert count == (3 if projector else 0)
