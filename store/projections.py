"""Read models projected from `ticket_events`: `tickets` (one row per ticket) and `escalations`.

A projector follows `global_position` upward in batches. Each batch runs in ONE transaction that
locks the projection's checkpoint row (`SELECT ... FOR UPDATE`), reads the events after it,
writes the read-model rows and moves the checkpoint: the batch and its checkpoint commit together
or not at all, so a crash between (or inside) batches neither skips nor repeats an event, and
several projectors on one database take turns instead of applying a batch twice.

Ticket rows are not patched event by event: every ticket touched by a batch is folded afresh
from all its events up to the batch's last position with `domain.state.evolve`, and its row is
taken from `domain.view.view` of that state. So the read model equals a fresh fold of the log by
construction, and `check` can verify exactly that.

Why no gap-wait is needed: positions come from an identity column, which hands values out at
insert time, not commit time, so in general a reader could see position 11 committed while 10 is
still in flight and then skip 10 for good. `store.event_store.append_events` rules that out: every
append takes one global transaction-scoped advisory lock before it inserts and holds it until
commit, and PostgreSQL makes a commit visible before it releases the transaction's locks. So
when any snapshot shows position p, every position below p has either committed (and is in the
same snapshot) or rolled back (a hole that never fills). A reader that has seen p can therefore
go on from p without waiting for lower positions, which is what the projector does. The
guarantee holds for writers that go through `append_events`; the tests hold it to that with two
concurrent writers where the lower position is made to commit last.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from domain import events as ev
from domain.state import TicketState, evolve
from domain.view import view
from store.connection import Executor, connection
from store.event_store import EVENT_COLUMNS, StoredEvent, read_after, row_to_event

log = structlog.get_logger("projector")

TICKETS = "tickets"  # the projection's name in projection_checkpoints
DEFAULT_BATCH = 500

# The columns of `tickets`, in table order; `ticket_row` yields exactly these keys.
TICKET_COLUMNS: tuple[str, ...] = (
    "ticket_id",
    "subject",
    "customer_id",
    "priority",
    "category",
    "policy",
    "status",
    "tier",
    "assignee",
    "opened_at",
    "first_responded_at",
    "resolved_at",
    "closed_at",
    "first_response_due",
    "resolution_due",
    "tier_due",
    "first_response_breached",
    "resolution_breached",
    "escalation_count",
    "version",
    "last_position",
    "path",
    "acknowledged",
    "tags",
    "next_reply_met",
    "next_reply_breached",
    "rules_fired",
)
ESCALATION_COLUMNS: tuple[str, ...] = (
    "ticket_id",
    "seq",
    "from_tier",
    "to_tier",
    "trigger",
    "reason",
    "agent_id",
    "at",
    "global_position",
)

# --- pure: rows from events ---------------------------------------------------------------------


def ticket_row(state: TicketState, last_position: int) -> dict[str, Any]:
    """The `tickets` row of a folded ticket (due times as the `state` query reports them)."""
    v = view(state)
    return {
        "ticket_id": v.ticket_id,
        "subject": v.subject,
        "customer_id": v.customer_id,
        "priority": v.priority,
        "category": v.category,
        "policy": v.policy,
        "status": v.status,
        "tier": v.tier,
        "assignee": v.assignee,
        "opened_at": v.opened_at,
        "first_responded_at": v.first_responded_at,
        "resolved_at": v.resolved_at,
        "closed_at": v.closed_at,
        "first_response_due": v.sla.first_response_due,
        "resolution_due": v.sla.resolution_due,
        "tier_due": v.sla.tier_due,
        "first_response_breached": "first_response" in state.breached,
        "resolution_breached": "resolution" in state.breached,
        "escalation_count": len(state.escalations),
        "version": v.version,
        "last_position": last_position,
        "path": v.path,
        # Whether the current auto-assignee acknowledged; null without an auto-assignment.
        "acknowledged": (state.acknowledged_at is not None) if state.assigned_auto else None,
        "tags": list(state.tags),
        "next_reply_met": state.next_replies_met,
        "next_reply_breached": sum(1 for b in state.breaches if b.metric == "next_reply"),
        "rules_fired": [f.rule for f in state.fired],  # one entry per firing, in order
    }


def escalation_row(event: StoredEvent) -> dict[str, Any] | None:
    """The `escalations` row of a TicketEscalated event; None for any other event."""
    if event.event_type != ev.TicketEscalated.event_type:
        return None
    data = ev.TicketEscalated.model_validate(event.payload)
    return {
        "ticket_id": event.ticket_id,
        "seq": event.seq,
        "from_tier": data.from_tier,
        "to_tier": data.to_tier,
        "trigger": data.trigger,
        "reason": data.reason,
        "agent_id": data.agent_id,
        "at": event.occurred_at,
        "global_position": event.global_position,
    }


def fold_rows(events: Iterable[StoredEvent]) -> dict[str, dict[str, Any]]:
    """`tickets` rows of every ticket in `events` (each ticket's events in seq order)."""
    states: dict[str, TicketState] = {}
    last: dict[str, int] = {}
    for e in events:
        states[e.ticket_id] = evolve(states.get(e.ticket_id), e.to_domain())
        last[e.ticket_id] = e.global_position
    return {tid: ticket_row(s, last[tid]) for tid, s in states.items()}


# --- one batch ------------------------------------------------------------------------------------


def _upsert_sql() -> str:
    cols = ", ".join(TICKET_COLUMNS)
    params = ", ".join(f"${i}" for i in range(1, len(TICKET_COLUMNS) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in TICKET_COLUMNS[1:])
    return (
        f"INSERT INTO tickets ({cols}) VALUES ({params})"
        f" ON CONFLICT (ticket_id) DO UPDATE SET {updates}"
    )


_UPSERT_TICKET = _upsert_sql()
# No ON CONFLICT: an escalation applied twice is a bug, and it must fail loudly, not vanish.
_INSERT_ESCALATION = (
    f"INSERT INTO escalations ({', '.join(ESCALATION_COLUMNS)})"
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(ESCALATION_COLUMNS) + 1))})"
)


class FoldCache:
    """Folded ticket states with the last position folded in, least recently used dropped first.

    Safe across batches, rolled-back transactions and competing projectors, because it caches
    folds of the log, never read-model rows: the log is append-only, so a state folded up to
    position p plus the ticket's events after p is the fold of all of them, whoever applied the
    batches in between. It only saves re-reading and re-folding a ticket's earlier events.
    """

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._states: OrderedDict[str, tuple[TicketState, int]] = OrderedDict()

    def get(self, ticket_id: str, up_to: int) -> tuple[TicketState, int] | None:
        """The cached fold of `ticket_id` if it ends at or before position `up_to`."""
        hit = self._states.get(ticket_id)
        if hit is None or hit[1] > up_to:
            return None
        self._states.move_to_end(ticket_id)
        return hit

    def put(self, ticket_id: str, state: TicketState, position: int) -> None:
        self._states[ticket_id] = (state, position)
        self._states.move_to_end(ticket_id)
        while len(self._states) > self.size:
            self._states.popitem(last=False)


async def apply_events(
    conn: asyncpg.Connection, events: Sequence[StoredEvent], cache: FoldCache | None = None
) -> None:
    """Write the read-model rows for a batch of events (ascending positions), in `conn`'s
    transaction: each touched ticket is folded from the log up to the batch's last position
    (starting from its cached fold, when there is one)."""
    if not events:
        return
    end = events[-1].global_position
    touched = list(dict.fromkeys(e.ticket_id for e in events))
    hits = {tid: cache.get(tid, end) if cache is not None else None for tid in touched}
    states: dict[str, TicketState | None] = {t: h[0] if h else None for t, h in hits.items()}
    last: dict[str, int] = {t: h[1] if h else 0 for t, h in hits.items()}
    rows = await conn.fetch(
        f"SELECT {EVENT_COLUMNS} FROM ticket_events"
        " JOIN unnest($1::text[], $2::bigint[]) AS f(ticket_id, after) USING (ticket_id)"
        " WHERE global_position > f.after AND global_position <= $3 ORDER BY ticket_id, seq",
        touched,
        [last[t] for t in touched],
        end,
    )
    for r in rows:
        e = row_to_event(r)
        states[e.ticket_id] = evolve(states[e.ticket_id], e.to_domain())
        last[e.ticket_id] = e.global_position
    upserts = []
    for tid in touched:
        state = states[tid]
        if state is None:  # only if the log lost the ticket's first events: fold fails loudly
            raise ValueError(f"ticket {tid}: no TicketOpened at or before position {end}")
        if cache is not None:
            cache.put(tid, state, last[tid])
        row = ticket_row(state, last[tid])
        upserts.append(tuple(row[c] for c in TICKET_COLUMNS))
    await conn.executemany(_UPSERT_TICKET, upserts)
    escalations = [r for r in map(escalation_row, events) if r is not None]
    if escalations:
        await conn.executemany(
            _INSERT_ESCALATION, [tuple(r[c] for c in ESCALATION_COLUMNS) for r in escalations]
        )


async def ensure_checkpoint(pool: Executor, name: str = TICKETS) -> None:
    async with connection(pool) as conn:
        await conn.execute(
            "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING", name
        )


@dataclass(frozen=True)
class Checkpoint:
    name: str
    position: int
    events: int
    updated_at: datetime


async def checkpoint(pool: Executor, name: str = TICKETS) -> Checkpoint:
    async with connection(pool) as conn:
        row = await conn.fetchrow(
            "SELECT name, position, events, updated_at FROM projection_checkpoints WHERE name = $1",
            name,
        )
    if row is None:
        raise LookupError(f"no projection named {name!r}: run the migrations (worker or readside)")
    return Checkpoint(**dict(row))


async def head_position(pool: Executor) -> int:
    """The highest global_position in the log (0 when empty)."""
    async with connection(pool) as conn:
        return await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM ticket_events")


async def project_batch(
    pool: Executor,
    *,
    name: str = TICKETS,
    batch_size: int = DEFAULT_BATCH,
    cache: FoldCache | None = None,
    apply: Callable[..., Awaitable[None]] = apply_events,
) -> int:
    """Apply the next batch and move the checkpoint, in one transaction; returns its size.

    The checkpoint row is locked first, so a second projector on the same projection waits here
    and then starts after this batch: never the same batch twice. `apply` is the seam tests use
    to crash a batch half-way.
    """
    async with connection(pool) as conn, conn.transaction():
        position = await conn.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE", name
        )
        if position is None:
            raise LookupError(f"no projection named {name!r}: run the migrations")
        # A new statement after the lock: in READ COMMITTED it sees everything committed so far,
        # including the batch of a projector that held the lock before us.
        events = await read_after(conn, position, batch_size)
        if not events:
            return 0
        await apply(conn, events, cache)
        await conn.execute(
            "UPDATE projection_checkpoints SET position = $2, events = events + $3,"
            " updated_at = now() WHERE name = $1",
            name,
            events[-1].global_position,
            len(events),
        )
        return len(events)


async def catch_up(
    pool: Executor,
    *,
    name: str = TICKETS,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    cache: FoldCache | None = None,
) -> int:
    """Apply batches until the log holds nothing new; returns the number of events applied."""
    total = 0
    cache = cache if cache is not None else FoldCache()
    while n := await project_batch(pool, name=name, batch_size=batch_size, cache=cache):
        total += n
        if progress is not None:
            progress(n)
    return total


async def run_projector(
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    *,
    name: str = TICKETS,
    batch_size: int = DEFAULT_BATCH,
    poll_interval: float = 0.5,
    max_backoff: float = 30.0,
) -> None:
    """Follow the log until `stop` is set: catch up, then poll. A failing batch (database away,
    an event that does not fold) is logged and retried with backoff; it never ends the loop,
    and it never moves the checkpoint past an event it could not apply."""
    await ensure_checkpoint(pool, name)
    log.info("projector started", projection=name)
    backoff = poll_interval
    cache = FoldCache()
    while not stop.is_set():
        try:
            applied = await catch_up(pool, name=name, batch_size=batch_size, cache=cache)
            if applied:
                log.debug("projected", projection=name, events=applied)
            backoff = poll_interval
            wait = poll_interval
        except Exception as exc:  # the projector never takes its host process down with it
            log.error("projection batch failed; retrying", projection=name, error=repr(exc))
            backoff = min(backoff * 2, max_backoff)
            wait = backoff
        try:
            await asyncio.wait_for(stop.wait(), timeout=wait)
        except TimeoutError:
            pass
    log.info("projector stopped", projection=name)


@asynccontextmanager
async def background_projector(
    pool: asyncpg.Pool, enabled: bool = True, **options: Any
) -> AsyncIterator[asyncio.Task[None] | None]:
    """Run `run_projector` as a background task for the duration of the block (the worker's
    default; `ESCALATION_PROJECTOR=off` turns it off). On exit it is stopped and awaited: a
    batch in flight finishes and commits (or rolls back) before the pool closes."""
    if not enabled:
        yield None
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(pool, stop, **options), name="projector")
    try:
        yield task
    finally:
        stop.set()
        await task


# --- rebuild and check ----------------------------------------------------------------------------


async def mark_workflow_ended(pool: Executor, ticket_id: str, how: str) -> None:
    """Say on the ticket's row that its workflow ended without closing it (`terminated`...)."""
    async with connection(pool) as conn:
        await conn.execute(
            "UPDATE tickets SET workflow_ended = $2 WHERE ticket_id = $1", ticket_id, how
        )


async def reset(pool: Executor, name: str = TICKETS) -> None:
    """Empty the read models and move the checkpoint back to 0, in one transaction. The update
    locks the checkpoint row first, so a batch in flight commits before, and none interleaves."""
    await ensure_checkpoint(pool, name)
    async with connection(pool) as conn, conn.transaction():
        await conn.execute(
            "UPDATE projection_checkpoints SET position = 0, events = 0, updated_at = now()"
            " WHERE name = $1",
            name,
        )
        await conn.execute("TRUNCATE tickets, escalations")


async def rebuild(
    pool: Executor,
    *,
    name: str = TICKETS,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Drop and replay the read models from the log; returns the number of events replayed.

    Batches commit as they go, so an interrupted rebuild resumes where it stopped (any running
    projector carries it on); while it runs, readers see a partly rebuilt read model.
    """
    await reset(pool, name)
    return await catch_up(pool, name=name, batch_size=batch_size, progress=progress)


async def check(pool: Executor, *, name: str = TICKETS) -> list[str]:
    """Differences between the read models and a fresh fold of the log up to the checkpoint.

    Runs in one REPEATABLE READ snapshot, so a projector at work cannot cause false alarms.
    """
    diffs: list[str] = []
    async with connection(pool) as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            position = await conn.fetchval(
                "SELECT position FROM projection_checkpoints WHERE name = $1", name
            )
            if position is None:
                return [f"no projection named {name!r}"]
            actual = {
                r["ticket_id"]: dict(r)
                for r in await conn.fetch(f"SELECT {', '.join(TICKET_COLUMNS)} FROM tickets")
            }
            actual_esc = {
                (r["ticket_id"], r["seq"]): dict(r)
                for r in await conn.fetch(
                    f"SELECT {', '.join(ESCALATION_COLUMNS)} FROM escalations"
                )
            }
            expected: dict[str, dict[str, Any]] = {}
            expected_esc: dict[tuple[str, int], dict[str, Any]] = {}
            ticket_events: list[StoredEvent] = []

            def flush() -> None:
                expected.update(fold_rows(ticket_events))
                ticket_events.clear()

            cursor = conn.cursor(
                f"SELECT {EVENT_COLUMNS} FROM ticket_events WHERE global_position <= $1"
                " ORDER BY ticket_id, seq",
                position,
                prefetch=2000,
            )
            async for record in cursor:
                event = row_to_event(record)
                if ticket_events and ticket_events[-1].ticket_id != event.ticket_id:
                    flush()
                ticket_events.append(event)
                esc = escalation_row(event)
                if esc is not None:
                    expected_esc[(event.ticket_id, event.seq)] = esc
            flush()

    diffs += _compare("ticket", expected, actual)
    diffs += _compare("escalation", expected_esc, actual_esc)
    return diffs


def _compare(
    kind: str, expected: dict[Any, dict[str, Any]], actual: dict[Any, dict[str, Any]]
) -> list[str]:
    out: list[str] = []

    def label(key: Any) -> str:
        return f"{kind} {key[0]} seq {key[1]}" if isinstance(key, tuple) else f"{kind} {key}"

    for key in sorted(expected.keys() - actual.keys()):
        out.append(f"{label(key)}: missing from the read model")
    for key in sorted(actual.keys() - expected.keys()):
        out.append(f"{label(key)}: in the read model but not in the log")
    for key in sorted(expected.keys() & actual.keys()):
        want, got = expected[key], actual[key]
        for column, value in want.items():
            if got.get(column) != value:
                out.append(f"{label(key)}: {column} is {got.get(column)!r}, the log says {value!r}")
    return out
