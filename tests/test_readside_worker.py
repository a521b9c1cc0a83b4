"""The worker runs the projector beside itself by default; ESCALATION_PROJECTOR=off turns it off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

import worker
from runtime.config import Settings
from store import projections
from store.projections import checkpoint
from tests.readside_support import append, dsn_for, scratch_db, varied_tale


@pytest_asyncio.fixture(loop_scope="session")
async def db(pg_dsn: str, db_pool: asyncpg.Pool) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    async with scratch_db(db_pool, pg_dsn) as made:
        yield made


@pytest.mark.devserver
@pytest.mark.parametrize("projector", [True, False], ids=["default", "off"])
async def test_worker_runs_the_projector_unless_turned_off(
    dev_env: WorkflowEnvironment,
    db: tuple[asyncpg.Pool, str],
    pg_dsn: str,
    projector: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool, name = db
    settings = Settings(
        temporal_address=dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        task_queue=f"tq-{uuid.uuid4()}",
        database_url=dsn_for(pg_dsn, name),
        projector=projector,
    )
    # Seen from inside the worker, not by waiting: the moment it has set up its projector (or
    # none), and every projector loop started while it ran.
    ready = asyncio.Event()
    slots: list[asyncio.Task[None] | None] = []
    loops: list[str] = []
    real_background, real_run = worker.background_projector, projections.run_projector

    @asynccontextmanager
    async def background(
        pool: asyncpg.Pool, enabled: bool = True, **options: Any
    ) -> AsyncIterator[asyncio.Task[None] | None]:
        async with real_background(pool, enabled, **options) as task:
            slots.append(task)
            ready.set()
            yield task

    async def run_projector(pool: asyncpg.Pool, stop: asyncio.Event, **options: Any) -> None:
        loops.append(options.get("name", projections.TICKETS))
        await real_run(pool, stop, **options)

    monkeypatch.setattr(worker, "background_projector", background)
    monkeypatch.setattr(projections, "run_projector", run_projector)

    tales = [varied_tale(i) for i in range(3)]
    await append(pool, *tales)  # before the worker starts: a projector has work at once
    total = sum(len(t.events) for t in tales)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(settings, stop))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        if projector:
            for _ in range(500):
                if (await checkpoint(pool)).events == total:
                    break
                await asyncio.sleep(0.01)
            assert (await checkpoint(pool)).events == total
        else:
            assert slots == [None]
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)  # stops cleanly, projector and all
    assert loops == (["tickets"] if projector else [])
    assert (await checkpoint(pool)).events == (total if projector else 0)
    count = await pool.fetchval("SELECT count(*) FROM tickets")
    assert count == (3 if projector else 0)
