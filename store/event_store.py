"""The append-only event store: `ticket_events` in PostgreSQL (CONTRACT.md, Event store).

Appends are exactly-once under retries: an event already stored under the same
(ticket_id, seq, event_id) is recognised and skipped. Every append takes one global,
transaction-scoped advisory lock before it takes positions, so positions are handed out in
commit order and a reader following `global_position` upward never skips an event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import pydantic_core
from pydantic import BaseModel, ConfigDict

from domain.events import DomainEvent
from store.connection import Executor, connection
from store.errors import EventConflict, SeqGap

# Arbitrary but fixed: every writer of `ticket_events` must take the same key.
APPEND_LOCK_KEY = 0x7469636B657402  # "ticket" 02

_COLUMNS = (
    "global_position, ticket_id, seq, event_id, event_type, payload::text AS payload,"
    " occurred_at, recorded_at"
)


class StoredEvent(BaseModel):
    """One row of `ticket_events`: the domain event plus the store's own columns."""

    model_config = ConfigDict(frozen=True)

    global_position: int
    ticket_id: str
    seq: int
    event_id: UUID
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime

    def to_domain(self) -> DomainEvent:
        return DomainEvent(
            ticket_id=self.ticket_id,
            seq=self.seq,
            event_id=self.event_id,
            event_type=self.event_type,
            payload=self.payload,
            occurred_at=self.occurred_at,
        )


class AppendResult(BaseModel):
    inserted: int
    already_present: int


def _row_to_event(row: asyncpg.Record) -> StoredEvent:
    # payload is selected as text and decoded here, so any pool works, with or without codecs.
    return StoredEvent(
        global_position=row["global_position"],
        ticket_id=row["ticket_id"],
        seq=row["seq"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        payload=json.loads(row["payload"]),
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
    )


def _check_batch(events: Sequence[DomainEvent]) -> None:
    """One ticket, consecutive seqs, distinct event ids: anything else is a caller's bug."""
    ticket_id, first = events[0].ticket_id, events[0].seq
    for i, e in enumerate(events):
        if e.ticket_id != ticket_id:
            raise ValueError(
                f"a batch must be for one ticket: got {ticket_id!r} and {e.ticket_id!r}"
            )
        if e.seq != first + i:
            raise ValueError(
                f"ticket {ticket_id}: seqs in a batch must be consecutive;"
                f" expected {first + i} at index {i}, got {e.seq}"
            )
    if len({e.event_id for e in events}) != len(events):
        raise ValueError(f"ticket {ticket_id}: an event_id occurs twice in the batch")


async def _lock_positions(conn: asyncpg.Connection) -> None:
    """Serialise appends until commit, so positions are taken in commit order.

    An identity column hands out values when rows are inserted, not when they commit. Without
    this lock, transaction A could take position 10, transaction B position 11, B commit first,
    and a reader that has seen 11 would go on from 11 and never see 10 when A commits. Holding
    one lock from before the insert until commit (pyeventsourcing uses LOCK TABLE ... EXCLUSIVE
    for the same reason; an advisory lock does not block readers) makes position order equal
    commit order. The price is that appends, across all tickets, commit one at a time.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)


async def append_events(pool: Executor, events: Sequence[DomainEvent]) -> AppendResult:
    """Append one ticket's consecutive events in one transaction; idempotent under retries.

    Raises ValueError for a malformed batch, EventConflict if a seq is held by another event
    (or an event_id is stored elsewhere), SeqGap if the batch starts beyond the next seq.
    """
    if not events:
        return AppendResult(inserted=0, already_present=0)
    _check_batch(events)
    ticket_id, first, last = events[0].ticket_id, events[0].seq, events[-1].seq
    ids = [e.event_id for e in events]

    async with connection(pool) as conn, conn.transaction():
        await _lock_positions(conn)
        # A separate statement after the lock: in READ COMMITTED its snapshot is taken now, so it
        # sees every append that committed before we got the lock.
        rows = await conn.fetch(
            """
            SELECT ticket_id, seq, event_id FROM ticket_events
            WHERE (ticket_id = $1 AND seq BETWEEN $2 - 1 AND $3) OR event_id = ANY($4::uuid[])
            """,
            ticket_id,
            first,
            last,
            ids,
        )
        held = {r["seq"]: r["event_id"] for r in rows if r["ticket_id"] == ticket_id}
        by_id = {r["event_id"]: (r["ticket_id"], r["seq"]) for r in rows}

        # Seqs are gapless per ticket, so "seq first-1 exists" is "max(seq) >= first-1".
        if first > 1 and first - 1 not in held:
            expected = await conn.fetchval(
                "SELECT coalesce(max(seq), 0) + 1 FROM ticket_events WHERE ticket_id = $1",
                ticket_id,
            )
            raise SeqGap(ticket_id, expected, first)

        new: list[DomainEvent] = []
        for e in events:
            existing = held.get(e.seq)
            if existing is not None and existing != e.event_id:
                raise EventConflict(ticket_id, e.seq, existing, e.event_id)
            at = by_id.get(e.event_id)
            if at is not None and at != (ticket_id, e.seq):
                raise EventConflict(
                    ticket_id,
                    e.seq,
                    e.event_id,
                    e.event_id,
                    f"ticket {ticket_id} seq {e.seq}: event {e.event_id} is already stored"
                    f" as ticket {at[0]} seq {at[1]}",
                )
            if existing is None:
                new.append(e)

        if new:
            # One statement for the whole batch; ORDER BY keeps positions in seq order.
            await conn.execute(
                """
                INSERT INTO ticket_events
                    (ticket_id, seq, event_id, event_type, payload, occurred_at)
                SELECT $1, u.seq, u.event_id, u.event_type, u.payload::jsonb, u.occurred_at
                FROM unnest($2::int[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[])
                    AS u(seq, event_id, event_type, payload, occurred_at)
                ORDER BY u.seq
                """,
                ticket_id,
                [e.seq for e in new],
                [e.event_id for e in new],
                [e.event_type for e in new],
                # pydantic's encoder: payloads may hold datetimes, UUIDs, decimals.
                [pydantic_core.to_json(e.payload).decode() for e in new],
                [e.occurred_at for e in new],
            )
    return AppendResult(inserted=len(new), already_present=len(events) - len(new))


async def read_ticket(pool: Executor, ticket_id: str) -> list[StoredEvent]:
    """One ticket's events, by seq."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM ticket_events WHERE ticket_id = $1 ORDER BY seq",
            ticket_id,
        )
    return [_row_to_event(r) for r in rows]


async def read_after(pool: Executor, position: int, limit: int = 1000) -> list[StoredEvent]:
    """Events with `global_position > position`, ascending: the feed for projections.

    Positions have holes (a rolled-back append uses some up), but never one that fills later.
    """
    async with connection(pool) as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM ticket_events WHERE global_position > $1"
            " ORDER BY global_position LIMIT $2",
            position,
            limit,
        )
    return [_row_to_event(r) for r in rows]
