"""The PostgreSQL event store and its activities, against a real (embedded) PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.event_store import AppendBatch, EventStoreActivities
from domain.events import DomainEvent
from domain.notifications import Notification
from runtime.config import Settings
from runtime.database import embedded_database_url, resolve_database_url
from store import event_store
from store.connection import create_pool
from store.errors import EventConflict, SeqGap
from store.event_store import AppendResult, append_events, read_after, read_ticket
from store.notifications import record_notification
from store.schema import MIGRATIONS, applied_versions, migrate

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------------


def new_ticket() -> str:
    return f"T-{uuid.uuid4().hex[:12]}"


def make_events(ticket_id: str, seqs: Sequence[int]) -> list[DomainEvent]:
    return [
        DomainEvent(
            ticket_id=ticket_id,
            seq=s,
            event_id=uuid.uuid4(),
            event_type="TicketAssigned",
            payload={"agent_id": f"a{s}", "assignee": f"a{s}", "note": "ünïcode ✓", "n": [s]},
            occurred_at=T0 + timedelta(minutes=s),
        )
        for s in seqs
    ]


def as_json(events: Sequence[DomainEvent]) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in events]


async def stored(pool: asyncpg.Pool, ticket_id: str) -> list[dict[str, Any]]:
    return [e.to_domain().model_dump(mode="json") for e in await read_ticket(pool, ticket_id)]


@pytest_asyncio.fixture
async def fresh_db(pg_dsn: str, db_pool: asyncpg.Pool) -> AsyncIterator[str]:
    """Name of a new, empty database on the session server (dropped afterwards)."""
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    await db_pool.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await db_pool.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


# --- connection ------------------------------------------------------------------------------


def test_store_resolve_database_url_prefers_settings() -> None:
    dsn = "postgresql://app@db.example:5432/tickets"
    assert resolve_database_url(Settings(database_url=dsn)) == dsn


async def test_store_embedded_database_url_creates_parents_and_attaches() -> None:
    from runtime.database import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="escalation-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    data_dir = root / "not" / "yet" / "pgdata"
    try:
        dsn = await asyncio.to_thread(embedded_database_url, data_dir, cleanup_mode="delete")
        assert await asyncio.to_thread(embedded_database_url, data_dir) == dsn  # attaches
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        embedded_postgres().get_server(data_dir).cleanup()
        shutil.rmtree(root, ignore_errors=True)


async def test_store_pool_decodes_json(db_pool: asyncpg.Pool) -> None:
    assert await db_pool.fetchval("""SELECT '{"a": [1, "x"]}'::jsonb""") == {"a": [1, "x"]}


# --- schema ----------------------------------------------------------------------------------


async def test_store_migrate_is_idempotent(db_pool: asyncpg.Pool) -> None:
    assert await migrate(db_pool) == []
    assert await applied_versions(db_pool) == [m.version for m in MIGRATIONS]


async def test_store_migrate_creates_contract_columns(db_pool: asyncpg.Pool) -> None:
    rows = await db_pool.fetch(
        """
        SELECT column_name, data_type, is_nullable, is_identity FROM information_schema.columns
        WHERE table_name = 'ticket_events' ORDER BY ordinal_position
        """
    )
    assert [(r["column_name"], r["data_type"], r["is_nullable"]) for r in rows] == [
        ("global_position", "bigint", "NO"),
        ("ticket_id", "text", "NO"),
        ("seq", "integer", "NO"),
        ("event_id", "uuid", "NO"),
        ("event_type", "text", "NO"),
        ("payload", "jsonb", "NO"),
        ("occurred_at", "timestamp with time zone", "NO"),
        ("recorded_at", "timestamp with time zone", "NO"),
    ]
    assert rows[0]["is_identity"] == "YES"
    uniques = await db_pool.fetch(
        """
        SELECT array_agg(a.attname ORDER BY a.attname) AS cols
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conrelid = 'ticket_events'::regclass AND c.contype IN ('p', 'u')
        GROUP BY c.conname
        """
    )
    assert sorted(tuple(r["cols"]) for r in uniques) == [
        ("event_id",),
        ("global_position",),
        ("seq", "ticket_id"),
    ]


async def test_store_migrate_concurrently_applies_once(pg_dsn: str, fresh_db: str) -> None:
    c1 = await asyncpg.connect(pg_dsn, database=fresh_db)
    c2 = await asyncpg.connect(pg_dsn, database=fresh_db)
    try:
        results = await asyncio.gather(migrate(c1), migrate(c2))
        all_versions = [m.version for m in MIGRATIONS]
        assert sorted(results) == [[], all_versions]
        assert await applied_versions(c1) == all_versions
        # Both sessions gave the lock back.
        assert await c1.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    finally:
        await c1.close()
        await c2.close()


# --- append and read -------------------------------------------------------------------------


async def test_store_append_and_read_back_exactly(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    events = make_events(tid, [1, 2, 3])
    result = await append_events(db_pool, events)
    assert result == AppendResult(inserted=3, already_present=0)

    rows = await read_ticket(db_pool, tid)
    assert [r.to_domain() for r in rows] == events
    assert [r.seq for r in rows] == [1, 2, 3]
    positions = [r.global_position for r in rows]
    assert positions == sorted(positions)  # within a batch, positions follow seq
    assert all(r.recorded_at.tzinfo is not None for r in rows)

    feed = [e for e in await read_after(db_pool, positions[0] - 1) if e.ticket_id == tid]
    assert feed == rows


async def test_store_payload_with_datetimes_is_stored_as_json(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    event = DomainEvent(
        ticket_id=tid,
        seq=1,
        event_id=uuid.uuid4(),
        event_type="SlaWarning",
        payload={"metric": "resolution", "tier": "L1", "due_at": T0},  # not JSON-ready
        occurred_at=T0,
    )
    await append_events(db_pool, [event])
    (row,) = await read_ticket(db_pool, tid)
    assert row.payload["due_at"] == T0.isoformat().replace("+00:00", "Z")
    assert datetime.fromisoformat(row.payload["due_at"]) == T0
    assert row.to_domain().data().due_at == T0  # type: ignore[attr-defined]


async def test_store_retry_of_same_batch_inserts_nothing(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    events = make_events(tid, [1, 2, 3])
    await append_events(db_pool, events)
    before = await read_ticket(db_pool, tid)

    assert await append_events(db_pool, events) == AppendResult(inserted=0, already_present=3)
    assert await read_ticket(db_pool, tid) == before  # same rows, same positions


async def test_store_partial_overlap_inserts_only_new(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    events = make_events(tid, [1, 2, 3, 4])
    await append_events(db_pool, events[:2])

    assert await append_events(db_pool, events[1:]) == AppendResult(inserted=2, already_present=1)
    assert await stored(db_pool, tid) == as_json(events)


async def test_store_batch_behind_the_end_is_all_present(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    events = make_events(tid, [1, 2, 3, 4])
    await append_events(db_pool, events)
    assert await append_events(db_pool, events[1:3]) == AppendResult(inserted=0, already_present=2)


async def test_store_conflict_names_ticket_seq_and_both_ids(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    events = make_events(tid, [1, 2])
    await append_events(db_pool, events)
    other = make_events(tid, [2, 3])

    with pytest.raises(EventConflict) as err:
        await append_events(db_pool, other)
    message = str(err.value)
    assert tid in message
    assert "seq 2" in message
    assert str(events[1].event_id) in message
    assert str(other[0].event_id) in message
    assert (err.value.ticket_id, err.value.seq) == (tid, 2)
    assert await stored(db_pool, tid) == as_json(events)  # nothing of the batch was written


async def test_store_event_id_reused_elsewhere_is_a_conflict(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    (first,) = make_events(tid, [1])
    await append_events(db_pool, [first])
    moved = first.model_copy(update={"seq": 2})

    with pytest.raises(EventConflict, match=f"{first.event_id} is already stored as ticket {tid}"):
        await append_events(db_pool, [moved])


@pytest.mark.parametrize(
    "change",
    [
        {"occurred_at": T0 + timedelta(seconds=10)},  # the same decision, taken later
        {"event_type": "TicketClosed"},
        {"payload": {"agent_id": "someone else"}},
    ],
)
async def test_store_same_event_with_other_content_is_a_conflict(
    db_pool: asyncpg.Pool, change: dict[str, Any]
) -> None:
    """A retry carries exactly what was stored; an event id that comes back different means
    two versions of one decision, which must fail loudly rather than keep the first."""
    tid = new_ticket()
    events = make_events(tid, [1, 2])
    await append_events(db_pool, events)
    again = [events[0], events[1].model_copy(update=change)]

    with pytest.raises(EventConflict, match="already stored with other content") as err:
        await append_events(db_pool, again)
    assert (err.value.ticket_id, err.value.seq) == (tid, 2)
    assert await stored(db_pool, tid) == as_json(events)
    # The identical retry is still recognised.
    assert await append_events(db_pool, events) == AppendResult(inserted=0, already_present=2)


async def test_store_gap_names_ticket_expected_and_got(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    await append_events(db_pool, make_events(tid, [1, 2]))

    with pytest.raises(SeqGap) as err:
        await append_events(db_pool, make_events(tid, [5, 6]))
    assert (err.value.ticket_id, err.value.expected, err.value.got) == (tid, 3, 5)
    assert tid in str(err.value)
    assert "expected seq 3" in str(err.value)
    assert "got 5" in str(err.value)

    with pytest.raises(SeqGap, match="expected seq 1 or lower, got 2"):
        await append_events(db_pool, make_events(new_ticket(), [2]))


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (lambda: make_events("A-1", [1]) + make_events("B-1", [2]), "one ticket"),
        (lambda: make_events("A-1", [1, 3]), "consecutive"),
        (lambda: make_events("A-1", [2, 1]), "consecutive"),
        (lambda: [*make_events("A-1", [1]), *make_events("A-1", [1])], "consecutive"),
    ],
)
async def test_store_malformed_batch_rejected(
    db_pool: asyncpg.Pool, batch: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await append_events(db_pool, batch())


async def test_store_duplicate_event_id_in_batch_rejected(db_pool: asyncpg.Pool) -> None:
    a, b = make_events(new_ticket(), [1, 2])
    with pytest.raises(ValueError, match="twice"):
        await append_events(db_pool, [a, b.model_copy(update={"event_id": a.event_id})])


async def test_store_empty_batch_is_a_no_op(db_pool: asyncpg.Pool) -> None:
    assert await append_events(db_pool, []) == AppendResult(inserted=0, already_present=0)


async def test_store_large_batch_in_one_statement(db_pool: asyncpg.Pool) -> None:
    tid = new_ticket()
    events = make_events(tid, range(1, 1001))
    assert await append_events(db_pool, events) == AppendResult(inserted=1000, already_present=0)
    rows = await read_ticket(db_pool, tid)
    assert [r.seq for r in rows] == list(range(1, 1001))
    assert [r.global_position for r in rows] == sorted(r.global_position for r in rows)
    page = await read_after(db_pool, rows[0].global_position - 1, limit=10)
    assert [r.seq for r in page] == list(range(1, 11))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(deliveries=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 5)), max_size=12))
async def test_store_any_delivery_order_is_exactly_once(
    db_pool: asyncpg.Pool, deliveries: list[tuple[int, int]]
) -> None:
    """Batches retried, overlapping or early: the store ends up with each event once, in order."""
    tid = new_ticket()
    events = make_events(tid, range(1, 17))
    count = 0  # the model: how many events are stored
    for start, length in deliveries:
        batch = events[start - 1 : start - 1 + length]
        if start > count + 1:
            with pytest.raises(SeqGap):
                await append_events(db_pool, batch)
            continue
        result = await append_events(db_pool, batch)
        new = max(0, start + len(batch) - 1 - count)
        assert result == AppendResult(inserted=new, already_present=len(batch) - new)
        count += new
    assert await stored(db_pool, tid) == as_json(events[:count])


# --- commit order == position order -----------------------------------------------------------


async def _ticket_positions(pool: asyncpg.Pool, after: int, tickets: set[str]) -> list[int]:
    return [e.global_position for e in await read_after(pool, after) if e.ticket_id in tickets]


async def _waits_on_advisory_lock(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
    )


async def _race(pg_dsn: str, pool: asyncpg.Pool) -> tuple[list[int], list[int], bool]:
    """A takes a position and does not commit; B appends meanwhile; then A commits.

    A reader follows global_position upward throughout. Returns the positions the reader saw,
    the positions finally stored, and whether B was still waiting when A committed.
    """
    a_tid, b_tid = new_ticket(), new_ticket()
    tickets = {a_tid, b_tid}
    start = await pool.fetchval("SELECT coalesce(max(global_position), 0) FROM ticket_events")
    seen: list[int] = []

    async def poll() -> None:
        cursor = max(seen, default=start)
        seen.extend(await _ticket_positions(pool, cursor, tickets))

    conn_a = await asyncpg.connect(pg_dsn)
    try:
        tx_a = conn_a.transaction()
        await tx_a.start()
        # The real append, inside an outer transaction we hold open: A's row has its position.
        await append_events(conn_a, make_events(a_tid, [1]))
        task_b = asyncio.create_task(append_events(pool, make_events(b_tid, [1])))
        # Until B has either finished or queued on the lock (no timing guess involved). The
        # state lives in the server, so there is no event to await: poll pg_locks.
        while not task_b.done() and not await _waits_on_advisory_lock(pool):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        b_waited = not task_b.done()
        await poll()
        await tx_a.commit()
        await task_b
        await poll()
    finally:
        await conn_a.close()
    return seen, await _ticket_positions(pool, start, tickets), b_waited


async def test_store_reader_never_misses_an_event_committed_late(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    seen, final, b_waited = await _race(pg_dsn, db_pool)
    assert b_waited, "B must wait for A's commit before taking a position"
    assert len(final) == 2
    assert seen == final  # the reader saw every event, in position order


async def test_store_race_without_the_lock_loses_events(
    pg_dsn: str, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: the same race with the lock removed does lose A, so the test above has teeth."""

    monkeypatch.setattr(event_store, "POSITION_LOCK", None)
    seen, final, b_waited = await _race(pg_dsn, db_pool)
    assert not b_waited
    assert len(final) == 2
    assert len(seen) == 1
    assert seen == [max(final)]  # B's higher position seen first; A's lower one skipped


# --- two writers at one seq ------------------------------------------------------------------


async def _waits_on_a_lock(pool: asyncpg.Pool) -> bool:
    """Some session is queued on a lock: the append lock, or a row another transaction inserted
    into the unique index and has not committed yet."""
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_locks"
            " WHERE locktype IN ('advisory', 'transactionid') AND NOT granted"
        )
    )


async def _two_writers_at_one_seq(
    pg_dsn: str, pool: asyncpg.Pool, b_seqs: Sequence[int]
) -> tuple[str, list[DomainEvent], list[DomainEvent], bool, AppendResult | BaseException]:
    """A appends seq 1 of a ticket and holds its transaction open; B appends other events at
    seq 1 (and on) meanwhile, after its checks have found the seq free; then A commits.

    Returns the ticket, A's and B's events, whether B was queued when A committed, and what
    B's append returned or raised."""
    tid = new_ticket()
    a_events, b_events = make_events(tid, [1]), make_events(tid, b_seqs)
    conn_a = await asyncpg.connect(pg_dsn)
    try:
        tx_a = conn_a.transaction()
        await tx_a.start()
        assert await append_events(conn_a, a_events) == AppendResult(inserted=1, already_present=0)
        task_b = asyncio.create_task(append_events(pool, b_events))
        # The state lives in the server: poll pg_locks until B is queued (or already done).
        while not task_b.done() and not await _waits_on_a_lock(pool):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        b_waited = not task_b.done()
        await tx_a.commit()
        (outcome,) = await asyncio.gather(task_b, return_exceptions=True)
    finally:
        await conn_a.close()
    return tid, a_events, b_events, b_waited, outcome


@pytest.mark.parametrize("b_seqs", [[1], [1, 2]], ids=["same-seq", "same-seq-and-the-next"])
async def test_store_a_writer_that_lost_the_race_for_a_seq_is_refused_not_told_ok(
    pg_dsn: str, db_pool: asyncpg.Pool, b_seqs: list[int]
) -> None:
    """B's checks pass before A commits, so only the function's last step can see that the row
    at seq 1 is A's, not B's: B is rolled back (and never told its event is stored), and its
    retry names the conflict."""
    tid, a_events, b_events, b_waited, outcome = await _two_writers_at_one_seq(
        pg_dsn, db_pool, b_seqs
    )
    assert b_waited, "B must be queued behind A's open transaction"
    assert isinstance(outcome, asyncpg.SerializationError), outcome
    assert f"ticket {tid}: another append raced this one" in str(outcome)
    assert await stored(db_pool, tid) == as_json(a_events)  # nothing of B, not even seq 2
    with pytest.raises(EventConflict) as err:
        await append_events(db_pool, b_events)  # the retry the activity's retry policy makes
    message = str(err.value)
    assert f"ticket {tid} seq 1" in message
    assert str(a_events[0].event_id) in message and str(b_events[0].event_id) in message


async def test_store_without_the_append_lock_the_unique_seq_still_keeps_one_event_per_seq(
    pg_dsn: str, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no position lock to queue on, B's insert waits on A's uncommitted row in the
    (ticket_id, seq) index, then finds the seq taken: one event at seq 1, B refused."""
    monkeypatch.setattr(event_store, "POSITION_LOCK", None)
    tid, a_events, _, b_waited, outcome = await _two_writers_at_one_seq(pg_dsn, db_pool, [1])
    assert b_waited, "B must be queued on A's row at (ticket, seq 1)"
    assert isinstance(outcome, asyncpg.SerializationError), outcome
    rows = await db_pool.fetch(
        "SELECT seq, event_id FROM ticket_events WHERE ticket_id = $1 ORDER BY seq", tid
    )
    assert [(r["seq"], r["event_id"]) for r in rows] == [(1, a_events[0].event_id)]


# --- notifications ---------------------------------------------------------------------------


def make_notification(ticket_id: str) -> Notification:
    return Notification(
        notification_id=f"{uuid.uuid4()}:breach",
        ticket_id=ticket_id,
        kind="breach",
        tier="L2",
        subject="Refund not received",
        message="resolution SLA breached",
        at=T0,
    )


async def test_store_record_notification_once(db_pool: asyncpg.Pool) -> None:
    n = make_notification(new_ticket())
    assert await record_notification(db_pool, n) is True
    assert await record_notification(db_pool, n) is False
    rows = await db_pool.fetch(
        "SELECT ticket_id, kind, tier, subject, message, at FROM notifications"
        " WHERE notification_id = $1",
        n.notification_id,
    )
    assert [dict(r) for r in rows] == [
        {
            "ticket_id": n.ticket_id,
            "kind": "breach",
            "tier": "L2",
            "subject": n.subject,
            "message": n.message,
            "at": T0,
        }
    ]


# --- activities ------------------------------------------------------------------------------


async def test_activities_store_append_events(db_pool: asyncpg.Pool) -> None:
    acts = EventStoreActivities(db_pool)
    env = ActivityEnvironment()
    tid = new_ticket()
    batch = AppendBatch(ticket_id=tid, events=make_events(tid, [1, 2]))

    first = await env.run(acts.append_events, batch)
    again = await env.run(acts.append_events, batch)  # a retry after a lost completion
    assert first == AppendResult(inserted=2, already_present=0)
    assert again == AppendResult(inserted=0, already_present=2)
    assert await stored(db_pool, tid) == as_json(batch.events)


@pytest.mark.parametrize("error_type", ["EventConflict", "SeqGap", "InvalidBatch", "ForeignEvent"])
async def test_activities_store_append_refusals_are_non_retryable(
    db_pool: asyncpg.Pool, error_type: str
) -> None:
    acts = EventStoreActivities(db_pool)
    env = ActivityEnvironment()
    tid = new_ticket()
    await env.run(acts.append_events, AppendBatch(ticket_id=tid, events=make_events(tid, [1])))
    events = {
        "EventConflict": make_events(tid, [1]),
        "SeqGap": make_events(tid, [3]),
        "InvalidBatch": make_events(tid, [2, 4]),
        "ForeignEvent": make_events(new_ticket(), [2]),
    }[error_type]

    with pytest.raises(ApplicationError) as err:
        await env.run(acts.append_events, AppendBatch(ticket_id=tid, events=events))
    assert err.value.type == ("InvalidBatch" if error_type == "ForeignEvent" else error_type)
    assert err.value.non_retryable
    assert tid in str(err.value)


async def test_activities_store_database_errors_propagate_for_retry(pg_dsn: str) -> None:
    pool = await create_pool(pg_dsn, min_size=1, max_size=1)
    await pool.close()
    acts = EventStoreActivities(pool)
    tid = new_ticket()
    batch = AppendBatch(ticket_id=tid, events=make_events(tid, [1]))

    with pytest.raises(asyncpg.InterfaceError):  # not an ApplicationError: Temporal retries it
        await ActivityEnvironment().run(acts.append_events, batch)


async def test_activities_store_notify_is_idempotent(db_pool: asyncpg.Pool) -> None:
    acts = EventStoreActivities(db_pool)
    env = ActivityEnvironment()
    n = make_notification(new_ticket())
    assert await env.run(acts.notify, n) is True
    assert await env.run(acts.notify, n) is False
    count = await db_pool.fetchval(
        "SELECT count(*) FROM notifications WHERE notification_id = $1", n.notification_id
    )
    assert count == 1


# --- the mutation check (bench/mutations.py) --------------------------------------------------


def test_every_mutation_of_bench_mutations_still_finds_its_target() -> None:
    """The full mutation run is not part of the suite; this keeps its list in step with the
    code: a target text that moved or changed would silently mutate nothing."""
    from bench.mutations import MUTATIONS, ROOT, SELF_CHECK, target_problems

    # The tool leaves this test out of its runs (a mutated target fails it by construction).
    this = test_every_mutation_of_bench_mutations_still_finds_its_target.__name__
    assert SELF_CHECK == f"tests/test_store.py::{this}"
    assert target_problems(ROOT, MUTATIONS) == []
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)
    for m in MUTATIONS:
        assert m.old != m.new, m.name
        for node in (*m.tests, *m.deselect):
            path, _, test = node.partition("::")
            assert (ROOT / path).is_file(), node
            assert not test or f"def {test}(" in (ROOT / path).read_text(encoding="utf-8"), node
