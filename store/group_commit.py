"""Group commit: concurrent appends of one process written by one transaction per group.

Every append takes the global position lock and holds it until its commit
(store/event_store.py), so appends one transaction each commit strictly one after the other:
the lock, not the database, bounds the rate. A `GroupCommitter` collects the batches of
concurrent callers and writes them with `append_event_batches` (migration 8): one round trip,
one lock, one insert, one commit for the whole group, then each caller gets its own result or
its own refusal (SeqGap, EventConflict), exactly as `append_events` would have given it. A
batch that lost a seq to another writer between its checks and its insert gets AppendRaced
(retryable; the retry names the conflict) where `append_events` raises a serialization failure.

Leader/follower without timers: an append queues its batch and, if no group is being written,
starts the writer at once, so a lone append waits for nothing. While a group is being written,
new batches queue; the next group is everything queued (up to `max_batches` and `max_bytes`)
once the current one has committed. One group is in flight at a time, on one connection held
while batches keep coming.

Failures: a database error that closes the connection (or any error outside the statement)
fails every caller of that group (their retries are recognised event by event); the next
group starts on a fresh connection. An error the server raises for the statement (bad data,
say U+0000 in a payload) is retried batch by batch, so it reaches only the batch that causes
it. A caller cancelled while queued is dropped from the queue; one cancelled while its group is
in flight is committed all the same (its retry finds the events already present).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from domain.events import DomainEvent
from store import event_store
from store.errors import AppendRaced
from store.event_store import AppendResult, BatchColumns, append_outcome, batch_columns, check_batch

MAX_GROUP_BATCHES = 64
MAX_GROUP_BYTES = 4 * 1024 * 1024  # payload text: one transaction stays small

_APPEND_GROUP = "SELECT * FROM append_event_batches($1, $2, $3, $4, $5, $6, $7, $8)"


@dataclass
class _Waiting:
    events: Sequence[DomainEvent]
    cols: BatchColumns
    size: int
    future: asyncio.Future[AppendResult] = field(repr=False)

    @property
    def ticket_id(self) -> str:
        return self.events[0].ticket_id


class CommitterClosed(RuntimeError):
    """An append after `close()`."""


class GroupCommitter:
    """Appends for one pool; create it with the pool, `close()` it before the pool closes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batches: int = MAX_GROUP_BATCHES,
        max_bytes: int = MAX_GROUP_BYTES,
    ) -> None:
        if max_batches < 1 or max_bytes < 1:
            raise ValueError(
                f"max_batches and max_bytes must be >= 1, got {max_batches}, {max_bytes}"
            )
        self._pool = pool
        self._max_batches = max_batches
        self._max_bytes = max_bytes
        self._queue: deque[_Waiting] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        # What tests and benchmarks read: transactions tried, and the batches they carried.
        self.transactions = 0
        self.batches = 0

    @property
    def waiting(self) -> int:
        """Batches queued for a group not yet being written."""
        return len(self._queue)

    async def append(self, events: Sequence[DomainEvent]) -> AppendResult:
        """`event_store.append_events`, written together with the other callers' batches."""
        if not events:
            return AppendResult(inserted=0, already_present=0)
        check_batch(events)
        if self._closed:
            raise CommitterClosed("the event store's group committer is closed")
        cols = batch_columns(events)
        size = sum(len(p) for p in cols.payloads)
        loop = asyncio.get_running_loop()
        item = _Waiting(events, cols, size, loop.create_future())
        self._queue.append(item)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_queued())
        # Cancelling the caller cancels this future: a queued batch is then skipped.
        return await item.future

    async def close(self) -> None:
        """Refuse new appends; wait until the batches already queued are written."""
        self._closed = True
        if self._writer is not None:
            await asyncio.wait([self._writer])

    def _next_group(self) -> list[_Waiting]:
        """The queued batches in order, up to the bounds; a ticket's second batch (a retry, or
        its next batch) waits for the next group, so each group's checks see committed rows."""
        group: list[_Waiting] = []
        tickets: set[str] = set()
        size = 0
        later: list[_Waiting] = []
        while self._queue and len(group) < self._max_batches:
            item = self._queue.popleft()
            if item.future.done():  # cancelled while queued
                continue
            if item.ticket_id in tickets:
                later.append(item)
                continue
            if group and size + item.size > self._max_bytes:
                self._queue.appendleft(item)
                break
            group.append(item)
            tickets.add(item.ticket_id)
            size += item.size
        self._queue.extendleft(reversed(later))
        return group

    async def _write_queued(self) -> None:
        """Write groups until the queue is empty, on one connection while it stays usable."""
        group: list[_Waiting] = []
        try:
            while self._queue:
                try:
                    conn = await self._pool.acquire()
                except Exception as exc:  # none to be had: this group fails, the next tries
                    _fail(self._next_group(), exc)
                    continue
                try:
                    while self._queue:
                        group = self._next_group()
                        if group:
                            await self._write(conn, group)
                        group = []
                except Exception as exc:  # the connection broke: the next group gets another
                    _fail(group, exc)
                    group = []
                finally:
                    # A broken connection is discarded by the pool; nobody waits on this.
                    with contextlib.suppress(Exception):
                        await self._pool.release(conn)
        except BaseException as exc:  # cancelled (the loop is going down): nobody may hang
            _fail(group, exc)
            _fail(list(self._queue), exc)
            self._queue.clear()
            raise

    async def _write(self, conn: asyncpg.Connection, group: list[_Waiting]) -> None:
        """One transaction for the group; each caller gets its outcome. Raises when the
        connection is no longer usable; the callers not answered yet are then failed with it."""
        self.transactions += 1
        self.batches += len(group)
        try:
            rows = await conn.fetch(_APPEND_GROUP, event_store.POSITION_LOCK, *_arguments(group))
        except asyncpg.PostgresError as exc:
            if conn.is_closed():
                raise
            if len(group) == 1:
                _fail(group, exc)
                return
            # The server refused the statement (nothing of it is stored) for something one
            # batch may hold: alone, each batch gets its own outcome.
            for item in group:
                await self._write(conn, [item])
            return
        outcomes = {r["batch_no"]: r for r in rows}
        for number, item in enumerate(group, start=1):
            if item.future.done():  # cancelled in flight: written all the same
                continue
            row = outcomes[number]
            if row["outcome"] == "raced":
                item.future.set_exception(
                    AppendRaced(f"ticket {item.ticket_id}: another append raced this one")
                )
                continue
            try:
                item.future.set_result(append_outcome(row, item.events))
            except Exception as exc:
                item.future.set_exception(exc)


def _arguments(group: list[_Waiting]) -> tuple[list[Any], ...]:
    """append_event_batches' arrays: every event with its batch's number and ticket."""
    batches: list[int] = []
    tickets: list[str] = []
    seqs: list[int] = []
    ids: list[UUID] = []
    types: list[str] = []
    payloads: list[str] = []
    times: list[datetime] = []
    for number, item in enumerate(group, start=1):
        n = len(item.events)
        batches += [number] * n
        tickets += [item.ticket_id] * n
        seqs += item.cols.seqs
        ids += item.cols.ids
        types += item.cols.types
        payloads += item.cols.payloads
        times += item.cols.times
    return batches, tickets, seqs, ids, types, payloads, times


def _fail(group: Sequence[_Waiting], exc: BaseException) -> None:
    for item in group:
        if item.future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            item.future.cancel()
        else:
            item.future.set_exception(exc)
