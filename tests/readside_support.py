"""Helpers for the read-side tests: tickets told through the real decider, a scratch database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from domain import events as ev
from domain.commands import OpenTicket
from domain.decider import Open, decide
from domain.policy import DEFAULT_POLICY
from store.connection import create_pool
from store.event_store import append_events
from store.schema import migrate
from tests.test_domain_decider import Story

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def new_id(prefix: str = "R") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Tale(Story):
    """One ticket's life through `decide`, stamped into envelopes as the workflow would (the
    decider tests' Story), with any customer and category, and a note of what was stored."""

    def __init__(
        self,
        ticket_id: str | None = None,
        *,
        priority: str = "normal",
        customer_id: str = "acme",
        category: str | None = "billing",
        opened_at: datetime = T0,
    ) -> None:
        self.ticket_id = ticket_id or new_id()
        self.state = None
        self.events = []
        self.appended = 0
        ticket = OpenTicket(
            ticket_id=self.ticket_id,
            subject="Refund not received",
            customer_id=customer_id,
            priority=priority,
            category=category,
        )
        self.record(decide(None, Open(ticket=ticket, policy=DEFAULT_POLICY), opened_at), opened_at)

    def act(self, name: str, now: datetime, **payload: Any) -> Tale:  # type: ignore[override]
        super().act(name, now, **payload)
        return self

    def until(self, now: datetime) -> Tale:
        """Let the SLA clocks run to `now`: every deadline on the way is decided."""
        self.run_until(now)
        return self

    def pending(self) -> list[ev.DomainEvent]:
        """Events not yet handed to the store (marks them handed)."""
        out = self.events[self.appended :]
        self.appended = len(self.events)
        return out


def varied_tale(i: int, opened_at: datetime = T0) -> Tale:
    """Ticket number i with one of several lives: quiet, escalated, breached, resolved, closed."""
    priority = ("urgent", "high", "normal", "low")[i % 4]
    t = Tale(priority=priority, customer_id=f"c{i % 3}", opened_at=opened_at)
    m = lambda minutes: opened_at + timedelta(minutes=minutes)  # noqa: E731
    kind = i % 5
    if kind == 0:
        t.act("assign", m(1), agent_id="amy").act("respond", m(2), agent_id="amy")
        t.act("resolve", m(30), agent_id="amy", resolution="done")
    elif kind == 1:
        t.act("assign", m(1), agent_id="bob")
        t.act("request_escalation", m(5), agent_id="bob", reason="needs L2")
        t.act("respond", m(6), agent_id="cy")
    elif kind == 2:
        t.until(opened_at + timedelta(days=4))  # breaches and escalates on its own
    elif kind == 3:
        t.act("respond", m(3), agent_id="dee").act("await_customer", m(4), agent_id="dee")
        t.act("customer_replied", m(60)).act("close", m(61), agent_id="dee")
    else:
        t.act("assign", m(2), agent_id="eve")
    return t


async def append(pool: asyncpg.Pool | asyncpg.Connection, *tales: Tale) -> int:
    n = 0
    for t in tales:
        events = t.pending()
        if events:
            n += (await append_events(pool, events)).inserted
    return n


def dsn_for(pg_dsn: str, name: str) -> str:
    """`pg_dsn` with its database replaced by `name` (query parameters kept)."""
    base, _, query = pg_dsn.partition("?")
    dsn = base.rsplit("/", 1)[0] + f"/{name}"
    return f"{dsn}?{query}" if query else dsn


@asynccontextmanager
async def scratch_db(
    server_pool: asyncpg.Pool, pg_dsn: str
) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """A new, migrated database on the session server and a pool on it; dropped afterwards.
    Yields the pool and the database name (`asyncpg.connect(pg_dsn, database=name)`)."""
    name = f"readside_{uuid.uuid4().hex[:12]}"
    await server_pool.execute(f'CREATE DATABASE "{name}"')
    pool = await create_pool(pg_dsn, database=name, min_size=1, max_size=12)
    try:
        await migrate(pool)
        yield pool, name
    finally:
        await pool.close()
        await server_pool.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
