"""Connecting to the event store: pools whose connections decode json/jsonb. Takes a DSN; which
server it names is decided above the store (runtime/database.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg

# Store functions take either a pool (they acquire a connection) or a connection (they use it,
# joining its transaction if one is open: how tests hold a transaction open on purpose).
Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


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
