"""The append-only event store: `ticket_events` in PostgreSQL (docs/contract.md#event-store).

Appends are exactly-once under retries: an event already stored under the same
(ticket_id, seq, event_id) is recognised and skipped. Every append takes one global,
transaction-scoped advisory lock before it takes positions, so positions are handed out in
commit order and a reader following `global_position` upward never skips an event. The append
itself is a server-side function (migration 4), so it costs one round trip. The worker's
appends go through store/group_commit.py, which writes concurrent callers' batches in one
transaction (migration 8) with the same checks and the same lock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
import pydantic_core
from pydantic import BaseModel, ConfigDict

from domain.events import DomainEvent
from store.connection import Executor, connection
from store.errors import EventConflict, SeqGap

# Arbitrary but fixed: every writer of `ticket_events` must take the same key.
APPEND_LOCK_KEY = 0x7469636B657402  # "ticket" 02

EVENT_COLUMNS = (
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


def row_to_event(row: asyncpg.Record) -> StoredEvent:
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


def check_batch(events: Sequence[DomainEvent]) -> None:
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


class BatchColumns(NamedTuple):
    """A batch as the append functions' array arguments, one list per column."""

    seqs: list[int]
    ids: list[UUID]
    types: list[str]
    payloads: list[str]
    times: list[datetime]


def batch_columns(events: Sequence[DomainEvent]) -> BatchColumns:
    return BatchColumns(
        [e.seq for e in events],
        [e.event_id for e in events],
        [e.event_type for e in events],
        # pydantic's encoder: payloads may hold datetimes, UUIDs, decimals.
        [pydantic_core.to_json(e.payload).decode() for e in events],
        [e.occurred_at for e in events],
    )


def append_outcome(row: Mapping[str, Any], events: Sequence[DomainEvent]) -> AppendResult:
    """The result of one batch's outcome row (append_ticket_events, append_event_batches), or
    the refusal it names: SeqGap, EventConflict."""
    ticket_id = events[0].ticket_id
    if row["outcome"] == "gap":
        raise SeqGap(ticket_id, row["at_seq"], events[0].seq)
    if row["outcome"] == "changed":
        seq, mine = row["at_seq"], row["existing_id"]
        raise EventConflict(
            ticket_id,
            seq,
            mine,
            mine,
            f"ticket {ticket_id} seq {seq}: event {mine} is already stored with other content"
            " (type, payload or time); refusing to keep two versions of it",
        )
    if row["outcome"] == "conflict":
        seq, existing = row["at_seq"], row["existing_id"]
        mine = events[seq - events[0].seq].event_id
        if existing != mine:
            raise EventConflict(ticket_id, seq, existing, mine)
        raise EventConflict(
            ticket_id,
            seq,
            mine,
            mine,
            f"ticket {ticket_id} seq {seq}: event {mine} is already stored"
            f" as ticket {row['other_ticket']} seq {row['other_seq']}",
        )
    if row["outcome"] != "ok":
        raise RuntimeError(f"ticket {ticket_id}: unknown append outcome {row['outcome']!r}")
    inserted: int = row["inserted"]
    return AppendResult(inserted=inserted, already_present=len(events) - inserted)


# Positions are taken in commit order only while every writer takes the lock; tests switch it
# off (None) to show what goes wrong without it.
POSITION_LOCK: int | None = APPEND_LOCK_KEY


async def append_events(pool: Executor, events: Sequence[DomainEvent]) -> AppendResult:
    """Append one ticket's consecutive events in one transaction; idempotent under retries.

    Raises ValueError for a malformed batch, EventConflict if a seq is held by another event
    (or an event_id is stored elsewhere, or stored with other content), SeqGap if the batch
    starts beyond the next seq.

    The work is the `append_ticket_events` function (migration 4), one round trip. It first
    takes one global, transaction-scoped advisory lock: an identity column hands out positions
    when rows are inserted, not when they commit, so without the lock transaction A could take
    position 10, B position 11, B commit first, and a reader that has seen 11 would never see
    10. Holding one lock until commit (pyeventsourcing uses LOCK TABLE ... EXCLUSIVE for the
    same reason; an advisory lock does not block readers) makes position order commit order.

    One transaction per batch: concurrent appends commit one after the other. The worker's
    activity goes through store/group_commit.py instead, which writes many callers' batches
    in one transaction with the same checks and the same lock.
    """
    if not events:
        return AppendResult(inserted=0, already_present=0)
    check_batch(events)
    cols = batch_columns(events)
    async with connection(pool) as conn:
        row = await conn.fetchrow(
            "SELECT * FROM append_ticket_events($1, $2, $3, $4, $5, $6, $7)",
            POSITION_LOCK,
            events[0].ticket_id,
            *cols,
        )
    assert row is not None
    return append_outcome(row, events)


async def read_ticket(pool: Executor, ticket_id: str) -> list[StoredEvent]:
    """One ticket's events, by seq."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            f"SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ticket_id = $1 ORDER BY seq",
            ticket_id,
        )
    return [row_to_event(r) for r in rows]


async def read_after(pool: Executor, position: int, limit: int = 1000) -> list[StoredEvent]:
    """Events with `global_position > position`, ascending: the feed for projections.

    Positions have holes (a rolled-back append uses some up), but never one that fills later.
    """
    async with connection(pool) as conn:
        rows = await conn.fetch(
            f"SELECT {EVENT_COLUMNS} FROM ticket_events WHERE global_position > $1"
            " ORDER BY global_position LIMIT $2",
            position,
            limit,
        )
    return [row_to_event(r) for r in rows]
