"""Assignments in PostgreSQL (store/assignments.py): claims are idempotent, concurrent choices
never exceed an agent's capacity, and events applied late or twice never undo a later claim."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from domain.events import DomainEvent
from store.assignments import claim_assignee, loads, track_assignees, tracked

pytestmark = pytest.mark.asyncio(loop_scope="session")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def tag() -> str:
    return uuid.uuid4().hex[:8]


def event(ticket_id: str, seq: int, event_type: str, **payload: Any) -> DomainEvent:
    return DomainEvent(
        ticket_id=ticket_id,
        seq=seq,
        event_id=uuid.uuid4(),
        event_type=event_type,
        payload=payload,
        occurred_at=T0,
    )


def first_below(capacity: dict[str, int]) -> Any:
    """A pick that takes the first candidate (by id) below its capacity."""

    def pick(current: dict[str, int], cursor: str | None) -> str | None:
        for agent in sorted(capacity):
            if current.get(agent, 0) < capacity[agent]:
                return agent
        return None

    return pick


async def claim(
    pool: asyncpg.Pool, ticket: str, team: str, agents: list[str], pick: Any, **kw: int
) -> Any:
    return await claim_assignee(
        pool,
        ticket_id=ticket,
        team=team,
        visit=kw.get("visit", 1),
        attempt=kw.get("attempt", 0),
        as_of_seq=kw.get("seq", 1),
        candidates=agents,
        pick=pick,
    )


async def test_a_retried_claim_returns_the_agent_it_claimed(db_pool: asyncpg.Pool) -> None:
    t, a, b = f"T-{tag()}", f"a-{tag()}", f"b-{tag()}"
    first = await claim(db_pool, t, f"team-{tag()}", [a, b], lambda loads, cursor: a)
    again = await claim(db_pool, t, "ignored", [a, b], lambda loads, cursor: b)
    assert first.agent_id == a and not first.repeated
    # Another team (a new visit): a new question, whose claim replaces the ticket's last one.
    assert (again.agent_id, again.repeated) == (b, False)
    team = f"team-{tag()}"
    t2 = f"T-{tag()}"
    one = await claim(db_pool, t2, team, [a, b], lambda loads, cursor: a, visit=2, attempt=1)
    two = await claim(db_pool, t2, team, [a, b], lambda loads, cursor: b, visit=2, attempt=1)
    assert (one.agent_id, two.agent_id, two.repeated) == (a, a, True)
    three = await claim(db_pool, t2, team, [a, b], lambda loads, cursor: b, visit=2, attempt=2)
    assert (three.agent_id, three.repeated) == (b, False)  # the next attempt replaces it
    assert await loads(db_pool, [a, b]) == {b: 2}  # one claim per ticket


async def test_the_cursor_is_the_teams_last_auto_assignee(db_pool: asyncpg.Pool) -> None:
    team, a = f"team-{tag()}", f"a-{tag()}"
    seen: list[str | None] = []

    def pick(current: dict[str, int], cursor: str | None) -> str:
        seen.append(cursor)
        return a

    await claim(db_pool, f"T-{tag()}", team, [a], pick)
    await claim(db_pool, f"T-{tag()}", team, [a], pick)
    assert seen == [None, a]


async def test_concurrent_choices_across_teams_never_exceed_capacity(
    db_pool: asyncpg.Pool, pg_dsn: str
) -> None:
    """Twenty tickets at once, on two pools, entering two teams that share `shared` (capacity
    2); each team also has its own agent with capacity 1: exactly four are assigned."""
    shared, own1, own2 = f"s-{tag()}", f"o1-{tag()}", f"o2-{tag()}"
    team1, team2 = f"t1-{tag()}", f"t2-{tag()}"
    cap = {shared: 2, own1: 1, own2: 1}
    other = await asyncpg.create_pool(pg_dsn, min_size=5, max_size=10)
    try:
        jobs = [
            claim(
                db_pool if i % 2 else other,
                f"T-{tag()}",
                team1 if i % 4 < 2 else team2,
                [shared, own1] if i % 4 < 2 else [shared, own2],
                first_below({k: v for k, v in cap.items() if k != (own2 if i % 4 < 2 else own1)}),
            )
            for i in range(20)
        ]
        claims = await asyncio.gather(*jobs)
    finally:
        await other.close()
    chosen = sorted(c.agent_id for c in claims if c.agent_id is not None)
    assert chosen == sorted([shared, shared, own1, own2])
    assert await loads(db_pool, list(cap)) == cap


async def test_events_keep_the_rows_and_never_undo_a_later_claim(db_pool: asyncpg.Pool) -> None:
    t, a, b = f"T-{tag()}", f"a-{tag()}", f"b-{tag()}"
    await track_assignees(db_pool, [event(t, 2, "TicketAssigned", assignee=a, agent_id=a)])
    assert await loads(db_pool, [a]) == {a: 1}
    # A choice at seq 5 claims b; then the escalation at seq 5 and earlier events arrive.
    await claim(db_pool, t, f"team-{tag()}", [b], lambda loads, cursor: b, seq=5)
    late = [
        event(t, 3, "AssignmentTimedOut", assignee=a, tier="x"),
        event(t, 5, "TicketEscalated", from_tier="x", to_tier="y", trigger="ack_timeout"),
    ]
    await track_assignees(db_pool, late)
    assert await loads(db_pool, [a, b]) == {b: 1}
    await track_assignees(db_pool, [event(t, 6, "TicketAssigned", assignee=b, agent_id=b)] * 2)
    await track_assignees(db_pool, [event(t, 7, "TicketResolved", agent_id=b, resolution="x")])
    assert await loads(db_pool, [b]) == {}  # a resolved ticket is no load
    replied = event(t, 8, "CustomerReplied", reopened=True)
    assert tracked([replied])
    await track_assignees(db_pool, [replied])
    assert await loads(db_pool, [b]) == {b: 1}
    await track_assignees(
        db_pool,
        [
            event(
                t,
                9,
                "TicketTransferred",
                from_path="a",
                to_path="b",
                from_tier="x",
                to_tier="y",
                reason="r",
                agent_id=b,
            )
        ],
    )
    assert await loads(db_pool, [b]) == {}
    assert not tracked([event(t, 10, "AgentResponded", agent_id=b, first_response=True)])
