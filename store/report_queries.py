"""Reads of the read models (`tickets`, `escalations`) and counts, for reports and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from store.connection import Executor, connection
from store.projections import TICKET_COLUMNS

_OPENED_IN = (
    "($1::timestamptz IS NULL OR t.opened_at >= $1)"
    " AND ($2::timestamptz IS NULL OR t.opened_at < $2)"
)


async def tickets_opened(
    pool: Executor, fields: Sequence[str], since: datetime | None, until: datetime | None
) -> list[asyncpg.Record]:
    """`fields` of the tickets opened in [since, until) (an open end: no bound)."""
    unknown = sorted(set(fields) - set(TICKET_COLUMNS))
    if unknown:
        raise ValueError(f"not columns of tickets: {', '.join(unknown)}")
    columns = ", ".join(f"t.{f}" for f in fields)
    async with connection(pool) as conn:
        return list(
            await conn.fetch(f"SELECT {columns} FROM tickets t WHERE {_OPENED_IN}", since, until)
        )


async def escalations_of_tickets_opened(
    pool: Executor, since: datetime | None, until: datetime | None
) -> list[asyncpg.Record]:
    """(ticket_id, trigger, at) of every escalation of the tickets opened in [since, until)."""
    async with connection(pool) as conn:
        return list(
            await conn.fetch(
                "SELECT e.ticket_id, e.trigger, e.at FROM escalations e"
                f" JOIN tickets t USING (ticket_id) WHERE {_OPENED_IN}",
                since,
                until,
            )
        )


async def event_count(pool: Executor) -> int:
    async with connection(pool) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM ticket_events"))


async def ticket_count(pool: Executor) -> int:
    async with connection(pool) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM tickets"))
