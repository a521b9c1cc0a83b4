"""Projector throughput against a plain SELECT scan of the same rows, in one run.

    .venv/bin/python bench/projector.py [--events 50000] [--batch-size 500]

Seeds a scratch database with tickets told through the real decider (about 7 events each,
interleaved in time as a busy system would write them), then times, on the same rows:
  1. a plain scan: SELECT the columns the projector reads, ordered by global_position;
  2. the projector catching up from position 0 (`store.projections.catch_up`), which reads the
     same rows, refolds every touched ticket, upserts `tickets`, inserts `escalations` and
     moves its checkpoint, one transaction per batch.
Prints both rates and their ratio. With DATABASE_URL set, the scratch database is created on
that server (and dropped); otherwise a throwaway embedded PostgreSQL is started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import pydantic_core

from domain import events as ev
from domain.commands import OpenTicket, parse_action
from domain.decider import Open, Tick, decide
from domain.policy import DEFAULT_POLICY, PRIORITIES
from domain.state import TicketState, evolve, next_deadline
from store import projections
from store.connection import create_pool
from store.event_store import EVENT_COLUMNS
from store.schema import migrate

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def ticket_events(i: int) -> list[ev.DomainEvent]:
    """Ticket i's life (varies with i): assigned, answered, escalated or breached, resolved."""
    tid = f"B-{i:07d}"
    opened = T0 + timedelta(minutes=3 * i)
    state: TicketState | None = None
    out: list[ev.DomainEvent] = []

    def record(payloads: list[ev.EventPayload], now: datetime) -> None:
        nonlocal state
        for data in payloads:
            seq = len(out) + 1
            e = ev.DomainEvent(
                ticket_id=tid,
                seq=seq,
                event_id=uuid5(NAMESPACE_URL, f"bench/{tid}/{seq}"),
                event_type=data.event_type,
                payload=data.model_dump(mode="json"),
                occurred_at=now,
            )
            state = evolve(state, e)
            out.append(e)

    def act(name: str, minutes: float, **payload: object) -> None:
        now = opened + timedelta(minutes=minutes)
        record(decide(state, parse_action(name, payload), now), now)

    ticket = OpenTicket(
        ticket_id=tid,
        subject="Bench ticket",
        customer_id=f"cust-{i % 50}",
        priority=PRIORITIES[i % 4],
        category=("billing", "login", "shipping")[i % 3],
    )
    record(decide(None, Open(ticket=ticket, policy=DEFAULT_POLICY), opened), opened)
    act("assign", 2, agent_id=f"agent-{i % 20}")
    if i % 3 == 0:
        # Left alone for a day: warnings, breaches and automatic escalations.
        until = opened + timedelta(days=1)
        while (due := next_deadline(state)) is not None and due <= until:
            record(decide(state, Tick(), due), due)
    else:
        act("respond", 5 + i % 40, agent_id=f"agent-{i % 20}", message="looking")
    if i % 4 == 1 and i % 3 != 0:
        act("request_escalation", 60, agent_id=f"agent-{i % 20}", reason="needs L2")
    if i % 5 != 4:
        act("resolve", 24 * 60 + 30, agent_id=f"agent-{i % 20}", resolution="fixed")
    return out


def seed_events(n_events: int) -> list[ev.DomainEvent]:
    events: list[ev.DomainEvent] = []
    i = 0
    while len(events) < n_events:
        events += ticket_events(i)
        i += 1
    # Interleaved in time, as the workflows of many tickets would append them.
    events.sort(key=lambda e: (e.occurred_at, e.ticket_id, e.seq))
    return events


@asynccontextmanager
async def scratch_database() -> AsyncIterator[dict[str, str]]:
    """Connection arguments of an empty scratch database (see the module docstring)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            yield {"dsn": url, "database": name}
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        return
    from runtime.database import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="escalation-bench-", dir="/tmp"))
    os.chmod(root, 0o755)  # as root, the server runs as another user that must enter the dir
    server = embedded_postgres().get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield {"dsn": server.get_uri()}
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


RAW_COLUMNS = ("ticket_id", "seq", "event_id", "event_type", "payload", "occurred_at")


def raw_row(e: ev.DomainEvent) -> tuple[Any, ...]:
    """An event as a plain row of RAW_COLUMNS (the payload as JSON text), for bulk writes that
    bypass the store's append."""
    return (
        e.ticket_id,
        e.seq,
        e.event_id,
        e.event_type,
        pydantic_core.to_json(e.payload).decode(),
        e.occurred_at,
    )


async def measure(where: dict[str, str], n_events: int, batch_size: int) -> dict[str, float]:
    """Seed `n_events` into the empty database `where`, then time the scan and the catch-up.

    Returns events, tickets, scan and project seconds, and both rates (bench/run.py reuses it).
    """
    events = seed_events(n_events)
    tickets = len({e.ticket_id for e in events})
    pool = await create_pool(**where, min_size=1, max_size=4)
    try:
        await migrate(pool)
        # A plain connection: COPY wants asyncpg's binary jsonb codec, not the pool's text one.
        conn = await asyncpg.connect(**where)
        try:
            await conn.copy_records_to_table(
                "ticket_events",
                columns=list(RAW_COLUMNS),
                records=[raw_row(e) for e in events],
            )
            await conn.execute("ANALYZE ticket_events")
        finally:
            await conn.close()
        n = await pool.fetchval("SELECT count(*) FROM ticket_events")

        # Warm the cache the same way for both: one untimed scan.
        await pool.fetch(f"SELECT {EVENT_COLUMNS} FROM ticket_events ORDER BY global_position")
        t = time.perf_counter()
        rows = await pool.fetch(
            f"SELECT {EVENT_COLUMNS} FROM ticket_events ORDER BY global_position"
        )
        scan = time.perf_counter() - t
        assert len(rows) == n

        await projections.reset(pool)
        t = time.perf_counter()
        applied = await projections.catch_up(pool, batch_size=batch_size)
        project = time.perf_counter() - t
        assert applied == n

        diffs = await projections.check(pool)
        assert diffs == [], diffs[:5]
    finally:
        await pool.close()
    return {
        "events": n,
        "tickets": tickets,
        "scan_s": scan,
        "project_s": project,
        "scan_rate": n / scan,
        "project_rate": n / project,
    }


async def bench(n_events: int, batch_size: int) -> None:
    async with scratch_database() as where:
        r = await measure(where, n_events, batch_size)
    n, scan, project = r["events"], r["scan_s"], r["project_s"]
    print(f"plain SELECT scan : {n} rows   in {scan:7.3f}s = {n / scan:10,.0f} rows/s")
    print(
        f"projector catch-up: {n} events in {project:7.3f}s = {n / project:10,.0f} events/s"
        f" (batch {batch_size}; {r['tickets']} ticket rows; check: 0 differences)"
    )
    print(f"ratio: the projector runs at 1/{project / scan:.1f} of the scan's rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=projections.DEFAULT_BATCH)
    args = parser.parse_args()
    asyncio.run(bench(args.events, args.batch_size))


if __name__ == "__main__":
    main()
