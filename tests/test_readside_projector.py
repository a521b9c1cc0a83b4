"""The projector: read models equal to a fresh fold, exactly-once batches, commit-order reading,
several projectors at once, rebuild and check. Each test has a database of its own, since the
projector reads every event of its database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from domain.state import fold
from runtime.config import Settings
from store import event_store, projections
from store.event_store import StoredEvent, append_events
from store.projections import (
    ESCALATION_COLUMNS,
    TICKET_COLUMNS,
    background_projector,
    catch_up,
    check,
    checkpoint,
    project_batch,
    rebuild,
    ticket_row,
)
from tests.readside_support import T0, Tale, append, scratch_db, varied_tale


@pytest_asyncio.fixture(loop_scope="session")
async def db(pg_dsn: str, db_pool: asyncpg.Pool) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    async with scratch_db(db_pool, pg_dsn) as made:
        yield made


async def tickets_table(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch(f"SELECT {', '.join(TICKET_COLUMNS)} FROM tickets")
    return {r["ticket_id"]: dict(r) for r in rows}


async def escalations_table(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {', '.join(ESCALATION_COLUMNS)} FROM escalations ORDER BY ticket_id, seq"
    )
    return [dict(r) for r in rows]


async def seed(pool: asyncpg.Pool, n: int) -> list[Tale]:
    tales = [varied_tale(i, T0 + timedelta(hours=i)) for i in range(n)]
    await append(pool, *tales)
    return tales


async def log_size(pool: asyncpg.Pool) -> tuple[int, int]:
    """(events in the log, TicketEscalated events in the log)."""
    row = await pool.fetchrow(
        "SELECT count(*) AS n, count(*) FILTER (WHERE event_type = 'TicketEscalated') AS esc"
        " FROM ticket_events"
    )
    return row["n"], row["esc"]


# --- the rows ------------------------------------------------------------------------------------


async def test_rows_equal_a_fresh_fold_of_each_ticket(db: tuple[asyncpg.Pool, str]) -> None:
    pool, _ = db
    tales = await seed(pool, 10)
    assert await catch_up(pool, batch_size=7) == sum(len(t.events) for t in tales)

    table = await tickets_table(pool)
    positions = {
        r["ticket_id"]: r["p"]
        for r in await pool.fetch(
            "SELECT ticket_id, max(global_position) AS p FROM ticket_events GROUP BY ticket_id"
        )
    }
    for t in tales:
        state = fold(t.events)
        assert state is not None
        assert table[t.ticket_id] == ticket_row(state, positions[t.ticket_id])
        assert table[t.ticket_id]["escalation_count"] == len(state.escalations)
    # A few lives were chosen to show each kind of row:
    statuses = {table[t.ticket_id]["status"] for t in tales}
    assert {"resolved", "closed", "open"} <= statuses
    assert any(r["first_response_breached"] for r in table.values())
    escalations = await escalations_table(pool)
    expected = [
        (t.ticket_id, e.seq, e.payload["trigger"], e.occurred_at)
        for t in tales
        for e in t.events
        if e.event_type == "TicketEscalated"
    ]
    assert sorted((r["ticket_id"], r["seq"], r["trigger"], r["at"]) for r in escalations) == sorted(
        expected
    )
    assert {r["trigger"] for r in escalations} >= {"agent_request", "first_response_breach"}
    assert await check(pool) == []


async def test_catch_up_follows_new_events_of_a_known_ticket(db: tuple[asyncpg.Pool, str]) -> None:
    pool, _ = db
    t = Tale(priority="urgent")
    await append(pool, t)
    await catch_up(pool)
    assert (await tickets_table(pool))[t.ticket_id]["status"] == "new"
    t.act("assign", T0 + timedelta(minutes=1), agent_id="amy")
    t.act("request_escalation", T0 + timedelta(minutes=2), agent_id="amy", reason="db team")
    await append(pool, t)
    assert await catch_up(pool) == 2
    row = (await tickets_table(pool))[t.ticket_id]
    assert (
        row["status"],
        row["tier"],
        row["assignee"],
        row["escalation_count"],
        row["version"],
    ) == (
        "open",
        "L2",
        None,
        1,
        3,
    )
    assert await check(pool) == []


# --- exactly-once ---------------------------------------------------------------------------------


class Crash(Exception):
    pass


def crashing_after(batches: int) -> Any:
    """An `apply` that writes its rows, then crashes inside the transaction of batch N+1."""
    done = 0

    async def apply(
        conn: asyncpg.Connection,
        events: Sequence[StoredEvent],
        cache: projections.FoldCache | None,
    ) -> None:
        nonlocal done
        await projections.apply_events(conn, events, cache)
        if done == batches:
            raise Crash(f"crash in batch {done + 1}")
        done += 1

    return apply


async def batches_after(pool: asyncpg.Pool, position: int, size: int) -> list[list[Any]]:
    """The batches a lone projector at `position` takes: each a list of (global_position,
    ticket_id, seq, is an escalation)."""
    rows = await pool.fetch(
        "SELECT global_position, ticket_id, seq, event_type = 'TicketEscalated' AS esc"
        " FROM ticket_events WHERE global_position > $1 ORDER BY global_position",
        position,
    )
    found = [tuple(r) for r in rows]
    return [found[i : i + size] for i in range(0, len(found), size)]


async def escalations_up_to(pool: asyncpg.Pool, position: int) -> list[tuple[str, int]]:
    """(ticket_id, seq) of every TicketEscalated at or below `position`, the rows the
    `escalations` table must hold once the checkpoint is there."""
    rows = await pool.fetch(
        "SELECT ticket_id, seq FROM ticket_events WHERE event_type = 'TicketEscalated'"
        " AND global_position <= $1 ORDER BY ticket_id, seq",
        position,
    )
    return [(r["ticket_id"], r["seq"]) for r in rows]


async def escalation_keys(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    return [(r["ticket_id"], r["seq"]) for r in await escalations_table(pool)]


@pytest.mark.parametrize("holds_escalation", [True, False], ids=["escalation", "tickets-only"])
async def test_crash_inside_a_batch_then_restart_applies_each_event_once(
    db: tuple[asyncpg.Pool, str], holds_escalation: bool
) -> None:
    """The crashed batch's rows were written (then rolled back with its checkpoint). Ticket rows
    are upserts and would hide a batch applied twice; `escalations` rows are inserts and do not,
    so one case crashes in a batch that holds an escalation."""
    pool, _ = db
    await seed(pool, 12)
    total, escalated = await log_size(pool)
    batches = await batches_after(pool, 0, 5)
    crash_at = next(
        i for i, b in enumerate(batches) if i > 0 and any(e[3] for e in b) == holds_escalation
    )
    apply = crashing_after(crash_at)
    with pytest.raises(Crash):
        while await project_batch(pool, batch_size=5, apply=apply):
            pass
    cp = await checkpoint(pool)
    before = batches[crash_at - 1][-1][0]  # the last position of the batch before the crash
    assert (cp.position, cp.events) == (before, 5 * crash_at)  # the crashed batch rolled back
    # Nothing of the crashed batch is in the read model: no escalation row, no newer ticket row.
    assert await escalation_keys(pool) == await escalations_up_to(pool, before)
    assert max(r["last_position"] for r in (await tickets_table(pool)).values()) <= before
    # Restart: a fresh projector carries on from the checkpoint.
    assert await catch_up(pool, batch_size=5) == total - 5 * crash_at
    cp = await checkpoint(pool)
    assert cp.events == total  # no event counted twice
    assert await escalation_keys(pool) == await escalations_up_to(pool, cp.position)
    assert len(await escalations_table(pool)) == escalated
    assert await check(pool) == []


class Pause:
    """An `apply` that stops batch number `at` (of this projector run) for good, `before` or
    after it wrote its rows, and says so: the test kills the projector there."""

    def __init__(self, at: int, *, before: bool) -> None:
        self.at, self.before = at, before
        self.batches = 0
        self.reached = asyncio.Event()

    async def __call__(
        self,
        conn: asyncpg.Connection,
        events: Sequence[StoredEvent],
        cache: projections.FoldCache | None,
    ) -> None:
        self.batches += 1
        paused = self.batches == self.at
        if paused and self.before:
            self.reached.set()
            await asyncio.Future()  # until cancelled
        await projections.apply_events(conn, events, cache)
        if paused:
            self.reached.set()
            await asyncio.Future()


async def _waits_on_a_row_lock(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted"
        )
    )


async def test_killed_projector_task_then_restart_applies_each_event_once(
    db: tuple[asyncpg.Pool, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill = cancel the running projector task, at three points reached by events, not by
    time: after a batch wrote its rows (escalations among them), at the start of a batch, and
    while it waits for the checkpoint row another transaction holds. Each kill leaves the
    checkpoint and the read model at the end of the last committed batch."""
    pool, _ = db
    await seed(pool, 20)
    total, escalated = await log_size(pool)
    original = projections.project_batch

    async def kill(pause: Pause) -> None:
        monkeypatch.setattr(projections, "project_batch", partial(original, apply=pause))
        stop = asyncio.Event()
        task = asyncio.create_task(
            projections.run_projector(pool, stop, batch_size=3, poll_interval=0.01)
        )
        await asyncio.wait_for(pause.reached.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        monkeypatch.setattr(projections, "project_batch", original)

    for before in (False, True):
        start = (await checkpoint(pool)).position
        batches = await batches_after(pool, start, 3)
        # The second batch from here that holds an escalation, so one batch commits first.
        at = [i for i, b in enumerate(batches) if any(e[3] for e in b)][1]
        await kill(Pause(at + 1, before=before))
        cp = await checkpoint(pool)
        assert cp.position == batches[at - 1][-1][0]
        assert cp.events == await pool.fetchval(
            "SELECT count(*) FROM ticket_events WHERE global_position <= $1", cp.position
        )
        assert await escalation_keys(pool) == await escalations_up_to(pool, cp.position)
        assert await check(pool) == []

    # Third: killed while queued on the checkpoint row, which this transaction holds.
    at_rest = await checkpoint(pool)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute(
            "SELECT 1 FROM projection_checkpoints WHERE name = 'tickets' FOR UPDATE"
        )
        stop = asyncio.Event()
        task = asyncio.create_task(projections.run_projector(pool, stop, batch_size=3))

        async def queued() -> None:
            while not task.done() and not await _waits_on_a_row_lock(pool):  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(queued(), 30)  # fails, not hangs, if it never queues
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await checkpoint(pool) == at_rest

    await catch_up(pool, batch_size=3)
    assert (await checkpoint(pool)).events == total
    assert len(await escalations_table(pool)) == escalated
    assert await check(pool) == []


async def test_escalation_applied_twice_fails_loudly(db: tuple[asyncpg.Pool, str]) -> None:
    pool, _ = db
    t = Tale(priority="urgent").act(
        "request_escalation", T0 + timedelta(minutes=1), agent_id="amy", reason="x"
    )
    await append(pool, t)
    events = await event_store.read_after(pool, 0)
    async with pool.acquire() as conn:
        await projections.apply_events(conn, events)
        with pytest.raises(asyncpg.UniqueViolationError):
            await projections.apply_events(conn, events)


# --- commit order ---------------------------------------------------------------------------------


async def _waits_on_advisory_lock(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
    )


async def _two_writers(pool: asyncpg.Pool, pg_dsn: str, name: str) -> tuple[bool, int, int]:
    """Writer A takes the lower position and holds its transaction open; writer B appends at the
    same time; the projector runs while A is open, then after A commits and B finishes.
    Returns (B waited for A, events projected while A was open, events projected in all)."""
    a, b = Tale(), Tale()
    conn_a = await asyncpg.connect(pg_dsn, database=name)
    try:
        tx_a = conn_a.transaction()
        await tx_a.start()
        await append_events(conn_a, a.pending())  # real append; A's rows have their positions
        task_b = asyncio.create_task(append_events(pool, b.pending()))
        while not task_b.done() and not await _waits_on_advisory_lock(pool):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        b_waited = not task_b.done()
        if not b_waited:
            await task_b
        during = await catch_up(pool)
        await tx_a.commit()
        await task_b
        after = await catch_up(pool)
    finally:
        await conn_a.close()
    return b_waited, during, during + after


async def test_lower_position_committing_last_is_not_skipped(
    db: tuple[asyncpg.Pool, str], pg_dsn: str
) -> None:
    pool, name = db
    b_waited, during, total = await _two_writers(pool, pg_dsn, name)
    assert b_waited, "B must queue behind A's lock, so A's lower position commits first"
    assert during == 0  # nothing is visible before A commits
    assert total == 2
    assert (await checkpoint(pool)).events == 2
    assert await check(pool) == []


async def test_without_the_append_lock_the_projector_would_skip(
    db: tuple[asyncpg.Pool, str], pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: with the lock removed, B commits its higher position first, the projector moves
    past A's lower one, and `check` reports the ticket it never saw. So the test above has teeth,
    and `check` catches a skipped event."""

    monkeypatch.setattr(event_store, "POSITION_LOCK", None)
    pool, name = db
    b_waited, during, total = await _two_writers(pool, pg_dsn, name)
    assert not b_waited
    assert during == 1 and total == 1  # A's event was never applied
    diffs = await check(pool)
    assert len(diffs) == 1 and "missing from the read model" in diffs[0]


# --- several projectors ---------------------------------------------------------------------------


async def test_several_projectors_at_once_apply_each_event_once(
    db: tuple[asyncpg.Pool, str],
) -> None:
    pool, _ = db
    tales = [varied_tale(i, T0 + timedelta(hours=i)) for i in range(40)]
    stop = asyncio.Event()
    runners = [
        asyncio.create_task(
            projections.run_projector(pool, stop, batch_size=4, poll_interval=0.005)
        )
        for _ in range(4)
    ]
    # Appends keep coming while the four projectors compete for batches.
    for i in range(0, len(tales), 5):
        await append(pool, *tales[i : i + 5])
        await asyncio.sleep(0.005)
    total, escalated = await log_size(pool)
    head = await projections.head_position(pool)
    for _ in range(500):
        if (await checkpoint(pool)).position == head:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*runners)
    cp = await checkpoint(pool)
    assert (cp.position, cp.events) == (head, total)
    assert len(await escalations_table(pool)) == escalated
    assert await check(pool) == []


async def test_concurrent_catch_ups_share_the_work(db: tuple[asyncpg.Pool, str]) -> None:
    pool, _ = db
    await seed(pool, 15)
    total, _ = await log_size(pool)
    applied = await asyncio.gather(*(catch_up(pool, batch_size=2) for _ in range(5)))
    assert sum(applied) == total
    assert (await checkpoint(pool)).events == total
    assert await check(pool) == []


# --- rebuild and check ----------------------------------------------------------------------------


async def test_rebuild_equals_live(db: tuple[asyncpg.Pool, str]) -> None:
    pool, _ = db
    tales = [varied_tale(i, T0 + timedelta(hours=i)) for i in range(12)]
    await append(pool, *tales)
    for t in tales[:6]:  # live: the later half of some tickets arrives after a first catch-up
        t.until(T0 + timedelta(days=6))  # breaches, escalations, auto-closes
    await catch_up(pool, batch_size=3)
    assert await append(pool, *tales) > 6
    await catch_up(pool, batch_size=3)
    live = (await tickets_table(pool), await escalations_table(pool))

    seen: list[int] = []
    total, _ = await log_size(pool)
    assert await rebuild(pool, batch_size=5, progress=seen.append) == total
    assert sum(seen) == total and all(n <= 5 for n in seen)
    assert (await tickets_table(pool), await escalations_table(pool)) == live
    assert (await checkpoint(pool)).events == total
    assert await check(pool) == []


async def test_check_finds_tampered_rows(db: tuple[asyncpg.Pool, str]) -> None:
    pool, _ = db
    tales = await seed(pool, 6)
    await catch_up(pool)
    assert await check(pool) == []
    a, b = tales[0].ticket_id, tales[1].ticket_id
    await pool.execute(
        "UPDATE tickets SET status = 'open', escalation_count = 9 WHERE ticket_id = $1", a
    )
    await pool.execute("DELETE FROM escalations WHERE ticket_id = $1", b)
    await pool.execute(
        "INSERT INTO tickets SELECT * FROM tickets WHERE ticket_id = $1 ON CONFLICT DO NOTHING",
        a,
    )
    await pool.execute(
        "INSERT INTO tickets (ticket_id, subject, customer_id, priority, policy, status, tier,"
        " opened_at, first_response_breached, resolution_breached, escalation_count, version,"
        " last_position) VALUES ('ghost', 's', 'c', 'low', 'default', 'open', 'L1', now(),"
        " false, false, 0, 1, 1)"
    )
    diffs = await check(pool)
    assert f"ticket {a}: status is 'open', the log says 'resolved'" in diffs
    assert f"ticket {a}: escalation_count is 9, the log says 0" in diffs
    assert f"escalation {b} seq 3: missing from the read model" in diffs
    assert "ticket ghost: in the read model but not in the log" in diffs
    assert len(diffs) == 4


# --- in the worker --------------------------------------------------------------------------------


async def test_background_projector_follows_and_stops_cleanly(
    db: tuple[asyncpg.Pool, str],
) -> None:
    pool, _ = db
    async with background_projector(pool, poll_interval=0.01) as task:
        assert task is not None
        tales = await seed(pool, 3)
        for _ in range(300):
            if (await checkpoint(pool)).events == sum(len(t.events) for t in tales):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the background projector did not catch up")
    assert task.done() and task.exception() is None
    async with background_projector(pool, enabled=False) as nothing:
        assert nothing is None


def test_projector_env_switch() -> None:
    assert Settings.from_env({}).projector is True
    assert Settings.from_env({"ESCALATION_PROJECTOR": "on"}).projector is True
    for off in ("off", "OFF", "0", "false", "no"):
        assert Settings.from_env({"ESCALATION_PROJECTOR": off}).projector is False
