"""Group commit (store/group_commit.py): many callers' batches in one transaction, each caller
with its own outcome; against a real (embedded) PostgreSQL.

Which callers share a group is made deterministic without timing: callers started in one
`gather` all queue before the writer task first runs (asyncio runs ready tasks in order), and
a session holding the position lock keeps a group waiting inside PostgreSQL (pg_locks shows it)
while the next callers queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.event_store import AppendBatch, EventStoreActivities
from domain.events import DomainEvent
from store import event_store
from store.connection import create_pool
from store.errors import AppendRaced, EventConflict, SeqGap
from store.event_store import APPEND_LOCK_KEY, AppendResult, append_events, read_after
from store.group_commit import CommitterClosed, GroupCommitter
from tests.test_metrics import free_port, prometheus, scrape
from tests.test_store import as_json, make_events, new_ticket, stored


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll state that lives in the server (or in another task) until it holds; 10 s at most."""
    for _ in range(1000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def _lock_waiters(pool: asyncpg.Pool) -> list[int]:
    """Backends queued on an advisory lock (the position lock, in these tests)."""
    rows = await pool.fetch(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted ORDER BY pid"
    )
    return [r["pid"] for r in rows]


@asynccontextmanager
async def _position_lock_held(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Another session holds the position lock until the block ends."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", APPEND_LOCK_KEY)
        yield conn
    finally:
        await conn.close()  # releases the lock if the block did not


async def _outcomes(
    committer: GroupCommitter, batches: Sequence[Sequence[DomainEvent]]
) -> list[AppendResult | BaseException]:
    """All batches appended at once: they queue before the writer runs, so they share a group."""
    return list(
        await asyncio.gather(*(committer.append(b) for b in batches), return_exceptions=True)
    )


# --- coalescing ------------------------------------------------------------------------------


async def test_group_commit_a_lone_append_is_one_transaction_of_one_batch(
    db_pool: asyncpg.Pool,
) -> None:
    committer = GroupCommitter(db_pool)
    tid = new_ticket()
    events = make_events(tid, [1, 2])
    assert await committer.append(events) == AppendResult(inserted=2, already_present=0)
    assert (committer.transactions, committer.batches) == (1, 1)
    assert await stored(db_pool, tid) == as_json(events)
    assert await committer.append([]) == AppendResult(inserted=0, already_present=0)
    assert committer.transactions == 1  # nothing to write, no transaction


async def test_group_commit_concurrent_callers_share_one_transaction(
    db_pool: asyncpg.Pool,
) -> None:
    committer = GroupCommitter(db_pool)
    tickets = [new_ticket() for _ in range(20)]
    batches = [make_events(t, range(1, 1 + i % 4 + 1)) for i, t in enumerate(tickets)]

    outcomes = await _outcomes(committer, batches)

    assert outcomes == [AppendResult(inserted=len(b), already_present=0) for b in batches]
    assert (committer.transactions, committer.batches) == (1, 20)
    for t, b in zip(tickets, batches, strict=True):
        assert await stored(db_pool, t) == as_json(b)


async def test_group_commit_callers_arriving_during_a_commit_form_the_next_group(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    committer = GroupCommitter(db_pool)
    async with _position_lock_held(pg_dsn) as holder:
        first = asyncio.create_task(committer.append(make_events(new_ticket(), [1])))
        await _until(lambda: _has(_lock_waiters(db_pool)), "the first group to queue on the lock")
        later = [
            asyncio.create_task(committer.append(make_events(new_ticket(), [1, 2])))
            for _ in range(10)
        ]
        await _until(lambda: _true(committer.waiting == 10), "ten callers to queue")
        assert committer.transactions == 1
        await holder.execute("SELECT pg_advisory_unlock($1)", APPEND_LOCK_KEY)
        assert await first == AppendResult(inserted=1, already_present=0)
        assert await asyncio.gather(*later) == [AppendResult(inserted=2, already_present=0)] * 10
    assert (committer.transactions, committer.batches) == (2, 11)


@pytest.mark.parametrize(
    ("bounds", "groups"),
    [({"max_batches": 2}, [2, 2, 1]), ({"max_bytes": 1}, [1, 1, 1, 1, 1])],
    ids=["count", "bytes"],
)
async def test_group_commit_groups_are_bounded(
    db_pool: asyncpg.Pool, bounds: dict[str, int], groups: list[int]
) -> None:
    """A group stops at its count or byte bound; a batch over the byte bound still goes alone."""
    committer = GroupCommitter(db_pool, **bounds)
    batches = [make_events(new_ticket(), [1, 2]) for _ in range(5)]
    assert await _outcomes(committer, batches) == [AppendResult(inserted=2, already_present=0)] * 5
    assert (committer.transactions, committer.batches) == (len(groups), 5)


@pytest.mark.parametrize("bounds", [{"max_batches": 0}, {"max_bytes": 0}])
async def test_group_commit_bounds_must_be_positive(
    db_pool: asyncpg.Pool, bounds: dict[str, int]
) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        GroupCommitter(db_pool, **bounds)


# --- each caller its own outcome -------------------------------------------------------------


async def test_group_commit_a_refused_batch_fails_only_its_caller(db_pool: asyncpg.Pool) -> None:
    """Every kind of outcome in one group: the refusals are those append_events gives, for
    their caller alone; the good batches of the group are stored."""
    committer = GroupCommitter(db_pool)
    t_good, t_gap, t_seq, t_changed, t_moved, t_retry, t_more = (new_ticket() for _ in range(7))
    seq_held = make_events(t_seq, [1])
    changed = make_events(t_changed, [1, 2])
    moved = make_events(t_moved, [1])
    retried = make_events(t_retry, [1, 2])
    more = make_events(t_more, [1, 2, 3])
    for prior in (seq_held, changed, moved, retried, more[:1]):
        await append_events(db_pool, prior)
    good = make_events(t_good, [1, 2])
    group = [
        good,
        make_events(t_gap, [3]),
        make_events(t_seq, [1, 2]),
        [changed[0], changed[1].model_copy(update={"event_type": "TicketClosed"})],
        [moved[0].model_copy(update={"ticket_id": new_ticket()})],
        retried,
        more,
    ]

    outcomes = await _outcomes(committer, group)

    assert committer.transactions == 1
    assert outcomes[0] == AppendResult(inserted=2, already_present=0)
    gap = outcomes[1]
    assert isinstance(gap, SeqGap) and (gap.ticket_id, gap.expected, gap.got) == (t_gap, 1, 3)
    seq = outcomes[2]
    assert isinstance(seq, EventConflict) and (seq.ticket_id, seq.seq) == (t_seq, 1)
    assert seq.existing_event_id == seq_held[0].event_id
    assert seq.event_id == group[2][0].event_id
    other = outcomes[3]
    assert isinstance(other, EventConflict) and (other.ticket_id, other.seq) == (t_changed, 2)
    assert "already stored with other content" in str(other)
    elsewhere = outcomes[4]
    assert isinstance(elsewhere, EventConflict)
    assert f"{moved[0].event_id} is already stored as ticket {t_moved} seq 1" in str(elsewhere)
    assert outcomes[5] == AppendResult(inserted=0, already_present=2)
    assert outcomes[6] == AppendResult(inserted=2, already_present=1)

    assert await stored(db_pool, t_good) == as_json(good)
    assert await stored(db_pool, t_gap) == []
    assert await stored(db_pool, t_seq) == as_json(seq_held)
    assert await stored(db_pool, t_changed) == as_json(changed)
    assert await stored(db_pool, t_moved) == as_json(moved)
    assert await stored(db_pool, t_retry) == as_json(retried)
    assert await stored(db_pool, t_more) == as_json(more)


async def test_group_commit_data_the_server_refuses_fails_only_its_caller(
    db_pool: asyncpg.Pool,
) -> None:
    """U+0000 has no place in jsonb: the server refuses the whole statement, so the group is
    written again batch by batch and the error reaches the one batch that holds it."""
    committer = GroupCommitter(db_pool)
    t_good, t_bad, t_also = new_ticket(), new_ticket(), new_ticket()
    good, also = make_events(t_good, [1]), make_events(t_also, [1, 2])
    (bad,) = make_events(t_bad, [1])
    bad = bad.model_copy(update={"payload": {"note": "nul \u0000 here"}})

    outcomes = await _outcomes(committer, [good, [bad], also])

    assert outcomes[0] == AppendResult(inserted=1, already_present=0)
    assert isinstance(outcomes[1], asyncpg.DataError), outcomes[1]
    assert outcomes[2] == AppendResult(inserted=2, already_present=0)
    assert committer.transactions == 4  # the group, then each batch alone
    assert await stored(db_pool, t_good) == as_json(good)
    assert await stored(db_pool, t_bad) == []
    assert await stored(db_pool, t_also) == as_json(also)


async def test_group_commit_malformed_batch_is_refused_before_it_queues(
    db_pool: asyncpg.Pool,
) -> None:
    committer = GroupCommitter(db_pool)
    with pytest.raises(ValueError, match="consecutive"):
        await committer.append(make_events(new_ticket(), [1, 3]))
    assert committer.transactions == 0


async def test_group_commit_same_ticket_twice_goes_in_seq_order(db_pool: asyncpg.Pool) -> None:
    """A ticket's next batch, and a retry of one, queued with it: each waits for the next group,
    so its checks see the batch before it committed."""
    committer = GroupCommitter(db_pool)
    tid, other = new_ticket(), new_ticket()
    events = make_events(tid, [1, 2, 3, 4, 5])
    batches = [events[:2], make_events(other, [1]), events[2:4], events[:2], events[4:]]

    outcomes = await _outcomes(committer, batches)

    assert outcomes == [
        AppendResult(inserted=2, already_present=0),
        AppendResult(inserted=1, already_present=0),
        AppendResult(inserted=2, already_present=0),
        AppendResult(inserted=0, already_present=2),
        AppendResult(inserted=1, already_present=0),
    ]
    # [tid 1-2, other], [tid 3-4], [tid 1-2 again], [tid 5]
    assert (committer.transactions, committer.batches) == (4, 5)
    assert await stored(db_pool, tid) == as_json(events)


async def test_group_commit_function_refuses_a_ticket_in_two_batches(
    db_pool: asyncpg.Pool,
) -> None:
    """The committer never sends it; the function checks anyway (its checks read committed rows
    only, so a ticket's second batch in one call would be judged wrongly)."""
    tid = new_ticket()
    a, b = make_events(tid, [1]), make_events(tid, [2])
    ca, cb = event_store.batch_columns(a), event_store.batch_columns(b)
    columns = [[*getattr(ca, f), *getattr(cb, f)] for f in ca._fields]
    with pytest.raises(asyncpg.InvalidParameterValueError, match="a ticket occurs in two batches"):
        await db_pool.fetch(
            "SELECT * FROM append_event_batches($1, $2, $3, $4, $5, $6, $7, $8)",
            APPEND_LOCK_KEY,
            [1, 2],
            [tid, tid],
            *columns,
        )
    assert await stored(db_pool, tid) == []


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    deliveries=st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 8), st.integers(1, 4)), max_size=15
    )
)
async def test_group_commit_any_deliveries_at_once_are_exactly_once_per_ticket(
    db_pool: asyncpg.Pool, deliveries: list[tuple[int, int, int]]
) -> None:
    """Batches of three tickets (retried, overlapping, early), all appended at once: each
    ticket's batches are judged in the order they came, as one after the other would be."""
    committer = GroupCommitter(db_pool)
    tickets = [new_ticket() for _ in range(3)]
    events = {t: make_events(t, range(1, 12)) for t in tickets}
    batches = [events[tickets[k]][start - 1 : start - 1 + n] for k, start, n in deliveries]

    outcomes = await _outcomes(committer, batches)

    count = dict.fromkeys(tickets, 0)  # the model: how many events each ticket has stored
    for (k, start, _), batch, outcome in zip(deliveries, batches, outcomes, strict=True):
        t = tickets[k]
        if start > count[t] + 1:
            assert isinstance(outcome, SeqGap), outcome
            assert (outcome.expected, outcome.got) == (count[t] + 1, start)
            continue
        new = max(0, start + len(batch) - 1 - count[t])
        assert outcome == AppendResult(inserted=new, already_present=len(batch) - new)
        count[t] += new
    for t in tickets:
        assert await stored(db_pool, t) == as_json(events[t][: count[t]])


# --- cancellation, errors, closing -----------------------------------------------------------


async def test_group_commit_a_caller_cancelled_while_queued_is_not_written(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    committer = GroupCommitter(db_pool)
    t_first, t_cancel, t_keep = new_ticket(), new_ticket(), new_ticket()
    async with _position_lock_held(pg_dsn) as holder:
        first = asyncio.create_task(committer.append(make_events(t_first, [1])))
        await _until(lambda: _has(_lock_waiters(db_pool)), "the first group to queue on the lock")
        cancelled = asyncio.create_task(committer.append(make_events(t_cancel, [1])))
        kept = asyncio.create_task(committer.append(make_events(t_keep, [1])))
        await _until(lambda: _true(committer.waiting == 2), "two callers to queue")
        cancelled.cancel()
        await holder.execute("SELECT pg_advisory_unlock($1)", APPEND_LOCK_KEY)
        assert await first == AppendResult(inserted=1, already_present=0)
        assert await kept == AppendResult(inserted=1, already_present=0)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
    assert (committer.transactions, committer.batches) == (2, 2)
    assert await stored(db_pool, t_cancel) == []
    assert len(await stored(db_pool, t_keep)) == 1


async def test_group_commit_a_caller_cancelled_in_flight_is_committed_with_its_group(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    committer = GroupCommitter(db_pool)
    t_cancel, t_keep = new_ticket(), new_ticket()
    events = make_events(t_cancel, [1, 2])
    async with _position_lock_held(pg_dsn) as holder:
        tasks = [
            asyncio.create_task(committer.append(events)),
            asyncio.create_task(committer.append(make_events(t_keep, [1]))),
        ]
        await _until(lambda: _has(_lock_waiters(db_pool)), "the group to queue on the lock")
        tasks[0].cancel()
        await holder.execute("SELECT pg_advisory_unlock($1)", APPEND_LOCK_KEY)
        assert await tasks[1] == AppendResult(inserted=1, already_present=0)
    assert committer.transactions == 1
    assert await stored(db_pool, t_cancel) == as_json(events)
    # The cancelled caller's retry (Temporal's) is recognised.
    assert await committer.append(events) == AppendResult(inserted=0, already_present=2)


async def test_group_commit_a_lost_connection_fails_every_caller_of_the_group_then_retries_work(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    committer = GroupCommitter(db_pool)
    tickets = [new_ticket() for _ in range(3)]
    batches = [make_events(t, [1, 2]) for t in tickets]
    async with _position_lock_held(pg_dsn) as holder:
        group = asyncio.gather(*(committer.append(b) for b in batches), return_exceptions=True)
        await _until(lambda: _has(_lock_waiters(db_pool)), "the group to queue on the lock")
        (writer,) = await _lock_waiters(db_pool)
        assert await holder.fetchval("SELECT pg_terminate_backend($1)", writer)
        outcomes = await group
    assert committer.transactions == 1
    for outcome in outcomes:
        assert isinstance(outcome, asyncpg.PostgresError | asyncpg.InterfaceError), outcome
    for t in tickets:
        assert await stored(db_pool, t) == []
    # The retries (Temporal's) go on a fresh connection, again as one group.
    assert await _outcomes(committer, batches) == [AppendResult(inserted=2, already_present=0)] * 3
    assert committer.transactions == 2


async def test_group_commit_without_a_database_fails_the_callers(pg_dsn: str) -> None:
    pool = await event_store_pool(pg_dsn)
    await pool.close()
    committer = GroupCommitter(pool)
    outcomes = await _outcomes(committer, [make_events(new_ticket(), [1]) for _ in range(3)])
    assert all(isinstance(o, asyncpg.InterfaceError) for o in outcomes), outcomes


async def test_group_commit_close_writes_what_is_queued_then_refuses(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    committer = GroupCommitter(db_pool)
    tid = new_ticket()
    async with _position_lock_held(pg_dsn) as holder:
        task = asyncio.create_task(committer.append(make_events(tid, [1])))
        await _until(lambda: _has(_lock_waiters(db_pool)), "the group to queue on the lock")
        closing = asyncio.create_task(committer.close())
        await asyncio.sleep(0)
        assert not closing.done()  # waits for the group in flight
        await holder.execute("SELECT pg_advisory_unlock($1)", APPEND_LOCK_KEY)
        await closing
        assert task.done()
    assert await task == AppendResult(inserted=1, already_present=0)
    with pytest.raises(CommitterClosed):
        await committer.append(make_events(new_ticket(), [1]))


# --- positions in commit order ---------------------------------------------------------------


async def test_group_commit_a_group_waits_for_an_open_append_so_the_reader_never_skips(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    """A (a one-batch append in an open transaction) holds a position; a group arrives; the
    group waits on the lock until A commits, so its positions come after A's."""
    a_tid = new_ticket()
    g_tids = [new_ticket() for _ in range(3)]
    tickets = {a_tid, *g_tids}
    start = await db_pool.fetchval("SELECT coalesce(max(global_position), 0) FROM ticket_events")
    committer = GroupCommitter(db_pool)
    seen: list[int] = []

    async def poll() -> None:
        page = await read_after(db_pool, max(seen, default=start))
        seen.extend(e.global_position for e in page if e.ticket_id in tickets)

    conn_a = await asyncpg.connect(pg_dsn)
    try:
        tx_a = conn_a.transaction()
        await tx_a.start()
        await append_events(conn_a, make_events(a_tid, [1]))
        group = asyncio.gather(*(committer.append(make_events(t, [1, 2])) for t in g_tids))
        await _until(lambda: _has(_lock_waiters(db_pool)), "the group to queue on the lock")
        await poll()
        await tx_a.commit()
        await group
        await poll()
    finally:
        await conn_a.close()
    final = [e.global_position for e in await read_after(db_pool, start) if e.ticket_id in tickets]
    assert len(final) == 7
    assert seen == final


async def test_group_commit_a_batch_that_lost_its_seq_after_its_checks_is_refused_alone(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    """B's checks pass while A's seq 1 is uncommitted; once A commits, B's seq 1 is skipped by
    the insert: B is told it raced (nothing of it stays, not even its seq 2), the other batch
    of its group commits, and B's retry names the conflict."""
    tid, other = new_ticket(), new_ticket()
    a_events, b_events, o_events = (
        make_events(tid, [1]),
        make_events(tid, [1, 2]),
        make_events(other, [1]),
    )
    committer = GroupCommitter(db_pool)
    conn_a = await asyncpg.connect(pg_dsn)
    try:
        tx_a = conn_a.transaction()
        await tx_a.start()
        await append_events(conn_a, a_events)
        group = asyncio.gather(
            committer.append(b_events), committer.append(o_events), return_exceptions=True
        )
        await _until(lambda: _has(_lock_waiters(db_pool)), "the group to queue on the lock")
        await tx_a.commit()
        b_outcome, o_outcome = await group
    finally:
        await conn_a.close()
    assert isinstance(b_outcome, AppendRaced), b_outcome
    assert f"ticket {tid}: another append raced this one" in str(b_outcome)
    assert o_outcome == AppendResult(inserted=1, already_present=0)
    assert await stored(db_pool, tid) == as_json(a_events)
    assert await stored(db_pool, other) == as_json(o_events)
    with pytest.raises(EventConflict) as err:
        await committer.append(b_events)
    assert f"ticket {tid} seq 1" in str(err.value)


async def test_group_commit_positions_follow_commit_order_under_concurrency(
    pg_dsn: str, db_pool: asyncpg.Pool
) -> None:
    """Two committers (two worker processes) and one-batch appends, all at once, while a reader
    follows global_position upward: the reader ends up with every event, none skipped."""
    second_pool = await event_store_pool(pg_dsn)
    committers = [GroupCommitter(db_pool), GroupCommitter(second_pool)]
    start = await db_pool.fetchval("SELECT coalesce(max(global_position), 0) FROM ticket_events")
    tickets = [new_ticket() for _ in range(24)]
    events = {t: make_events(t, range(1, 7)) for t in tickets}
    seen: list[int] = []
    done = asyncio.Event()

    async def writer(i: int, t: str) -> None:
        evs, k, size = events[t], 0, 1 + i % 3
        while k < len(evs):
            batch = evs[k : k + size]
            if i % 3 == 2:
                await append_events(db_pool, batch)
            else:
                await committers[i % 3].append(batch)
            k += size

    async def reader() -> None:
        while True:
            finished = done.is_set()
            page = await read_after(db_pool, max(seen, default=start), limit=50)
            seen.extend(e.global_position for e in page if e.ticket_id in events)
            if finished and not page:
                return
            await asyncio.sleep(0)

    try:
        read = asyncio.create_task(reader())
        await asyncio.gather(*(writer(i, t) for i, t in enumerate(tickets)))
        done.set()
        await read
    finally:
        await second_pool.close()
    final = [
        e.global_position
        for e in await read_after(db_pool, start, limit=10_000)
        if e.ticket_id in events
    ]
    assert len(final) == 24 * 6
    assert seen == final
    for t in tickets:
        assert await stored(db_pool, t) == as_json(events[t])


# --- the append_events activity -------------------------------------------------------------


async def test_group_commit_concurrent_activities_share_a_transaction_each_with_its_outcome(
    db_pool: asyncpg.Pool,
) -> None:
    """The worker's activities go through the committer: one transaction for the activities
    running at once; a refusal is that activity's non-retryable error; the latency metric is
    recorded once per activity, with its own outcome."""
    port = free_port()
    runtime = prometheus(port)
    acts = EventStoreActivities(db_pool)
    tickets = [new_ticket() for _ in range(5)]
    batches = [AppendBatch(ticket_id=t, events=make_events(t, [1, 2])) for t in tickets]
    batches[3] = AppendBatch(ticket_id=tickets[3], events=make_events(tickets[3], [4]))

    def run(batch: AppendBatch) -> Awaitable[AppendResult]:
        env = ActivityEnvironment()
        env.metric_meter = runtime.metric_meter
        return env.run(acts.append_events, batch)

    outcomes = await asyncio.gather(*(run(b) for b in batches), return_exceptions=True)
    await acts.close()

    assert acts.appends.transactions == 1
    refused = outcomes.pop(3)
    assert isinstance(refused, ApplicationError) and refused.type == "SeqGap", refused
    assert refused.non_retryable and tickets[3] in str(refused)
    assert outcomes == [AppendResult(inserted=2, already_present=0)] * 4
    s = scrape(port)
    assert s.value("escalation_event_store_append_seconds_count", outcome="ok") == 4
    assert s.value("escalation_event_store_append_seconds_count", outcome="refused") == 1
    with pytest.raises(CommitterClosed):
        await run(batches[0])


# --- helpers ---------------------------------------------------------------------------------


async def _has(waiters: Awaitable[list[int]]) -> bool:
    return bool(await waiters)


async def _true(value: bool) -> bool:
    return value


async def event_store_pool(pg_dsn: str) -> asyncpg.Pool:
    return await create_pool(pg_dsn, min_size=1, max_size=4)
