"""Worker tuning knobs (ESCALATION_MAX_*, ESCALATION_SHUTDOWN_GRACE) and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.policy import BUILTIN_POLICIES
from runtime.config import PROJECT_ROOT, Settings
from store.event_store import APPEND_LOCK_KEY
from tests.conftest import start_worker, worker_process_env
from worker import build_worker, tuning

# --- Settings ------------------------------------------------------------------------------------


def test_defaults_are_the_sdk_defaults() -> None:
    s = Settings.from_env({})
    assert s.max_concurrent_activities is None
    assert s.max_concurrent_workflow_tasks is None
    assert s.max_cached_workflows == 1000
    assert s.shutdown_grace == 10.0


def test_knobs_are_read() -> None:
    s = Settings.from_env(
        {
            "ESCALATION_MAX_CONCURRENT_ACTIVITIES": "7",
            "ESCALATION_MAX_CONCURRENT_WORKFLOW_TASKS": " 12 ",
            "ESCALATION_MAX_CACHED_WORKFLOWS": "0",
            "ESCALATION_SHUTDOWN_GRACE": "2.5",
        }
    )
    assert (s.max_concurrent_activities, s.max_concurrent_workflow_tasks) == (7, 12)
    assert s.max_cached_workflows == 0
    assert s.shutdown_grace == 2.5
    assert Settings.from_env({"ESCALATION_SHUTDOWN_GRACE": "1m30s"}).shutdown_grace == 90.0
    assert Settings.from_env({"ESCALATION_SHUTDOWN_GRACE": "0"}).shutdown_grace == 0.0


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("ESCALATION_MAX_CONCURRENT_ACTIVITIES", "many", "not a whole number"),
        ("ESCALATION_MAX_CONCURRENT_ACTIVITIES", "0", "at least 1"),
        ("ESCALATION_MAX_CONCURRENT_WORKFLOW_TASKS", "1", "at least 2"),
        ("ESCALATION_MAX_CACHED_WORKFLOWS", "-1", "at least 0"),
        ("ESCALATION_MAX_CACHED_WORKFLOWS", "1.5", "not a whole number"),
        ("ESCALATION_SHUTDOWN_GRACE", "soon", "not a duration"),
        ("ESCALATION_SHUTDOWN_GRACE", "-3", "between 0 and 86400"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(ValueError) as err:
        Settings.from_env({name: value})
    assert name in str(err.value)
    assert says in str(err.value)


def test_the_worker_refuses_a_bad_knob_at_start() -> None:
    env = {**os.environ, "ESCALATION_MAX_CONCURRENT_ACTIVITIES": "lots"}
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode != 0
    assert "ESCALATION_MAX_CONCURRENT_ACTIVITIES='lots' is not a whole number" in done.stderr


@pytest.mark.asyncio
async def test_build_worker_passes_the_knobs(
    dev_env: WorkflowEnvironment, db_pool: asyncpg.Pool
) -> None:
    settings = Settings.from_env(
        {
            "ESCALATION_MAX_CONCURRENT_ACTIVITIES": "3",
            "ESCALATION_MAX_CONCURRENT_WORKFLOW_TASKS": "4",
            "ESCALATION_MAX_CACHED_WORKFLOWS": "50",
            "ESCALATION_SHUTDOWN_GRACE": "7",
        }
    )
    policies = dict(BUILTIN_POLICIES)
    w = build_worker(dev_env.client, f"tq-{uuid.uuid4()}", db_pool, policies, **tuning(settings))
    config = w.config()
    assert config.get("max_concurrent_activities") == 3
    assert config.get("max_concurrent_workflow_tasks") == 4
    assert config.get("max_cached_workflows") == 50
    assert config.get("graceful_shutdown_timeout") == timedelta(seconds=7)
    # The old positional call still works and keeps the SDK defaults.
    plain = build_worker(dev_env.client, f"tq-{uuid.uuid4()}", db_pool, policies).config()
    assert plain.get("max_concurrent_activities") is None
    assert plain.get("max_cached_workflows") == 1000
    assert plain.get("graceful_shutdown_timeout") == timedelta(seconds=10)


# --- SIGTERM on a real worker process -----------------------------------------------------------


async def _wait_for(predicate: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.asyncio
async def test_sigterm_lets_an_in_flight_activity_finish(
    dev_env: WorkflowEnvironment, pg_dsn: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """SIGTERM while append_events is blocked: the append completes, the process exits 0."""
    task_queue = f"tq-{uuid.uuid4()}"
    log_path = tmp_path / "worker.log"
    env = worker_process_env(dev_env, pg_dsn, task_queue, ESCALATION_SHUTDOWN_GRACE="20")
    ticket_id = f"SIG-{uuid.uuid4().hex[:10]}"
    proc = start_worker(env, log_path)
    try:

        async def started() -> bool:
            assert proc.poll() is None, log_path.read_text()
            return "worker started" in log_path.read_text()

        await _wait_for(started, 60, "the worker to start")

        # Hold the store's append lock: the ticket's first append_events activity blocks in it.
        async with db_pool.acquire() as blocker:
            tx = blocker.transaction()
            await tx.start()
            try:
                await blocker.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
                handle = await dev_env.client.start_workflow(
                    "TicketWorkflow",
                    {"ticket_id": ticket_id, "subject": "Refund not received", "customer_id": "a"},
                    id=f"ticket-{ticket_id}",
                    task_queue=task_queue,
                )

                async def appending() -> bool:
                    # The append_events activity is queued on the lock inside PostgreSQL.
                    waiting = await db_pool.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                    return bool(waiting)

                await _wait_for(appending, 30, "append_events to be running")
                proc.send_signal(signal.SIGTERM)

                async def stopping() -> bool:
                    return "worker stopping" in log_path.read_text()

                # The worker has taken the signal while its activity is still blocked.
                await _wait_for(stopping, 30, "the worker to take SIGTERM")
                assert proc.poll() is None, "the worker left before its activity finished"
                assert await appending(), "the append must still be blocked on the lock"
            finally:
                await tx.rollback()  # releases the lock: the blocked append goes through

        code = await asyncio.to_thread(proc.wait, 20)
        output = log_path.read_text()
        assert code == 0, output
        # In this order: the signal taken, the blocked append finished, then the exit.
        stopping_at = output.index("worker stopping")
        appended_at = output.index("events appended")
        assert stopping_at < appended_at < output.index("worker stopped"), output
        stored = await db_pool.fetch(
            "SELECT event_type FROM ticket_events WHERE ticket_id = $1 ORDER BY seq", ticket_id
        )
        assert [r["event_type"] for r in stored][:1] == ["TicketOpened"]
        await handle.terminate("test finished")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
