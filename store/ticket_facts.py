"""Small look-ups of a ticket's facts in the event store, for routing and metric labels."""

from __future__ import annotations

from store.connection import Executor, connection


async def ticket_policy(pool: Executor, ticket_id: str) -> str | None:
    """The name of the policy recorded in the ticket's `TicketOpened`; None if not stored."""
    async with connection(pool) as conn:
        return await conn.fetchval(
            """
            SELECT payload -> 'policy' ->> 'name' FROM ticket_events
            WHERE ticket_id = $1 AND event_type = 'TicketOpened'
            ORDER BY seq LIMIT 1
            """,
            ticket_id,
        )


async def unclosed_tickets(pool: Executor) -> list[tuple[str, int]]:
    """(ticket_id, last seq) of every stored ticket whose last event is not TicketClosed."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            """
            SELECT DISTINCT ON (ticket_id) ticket_id, seq, event_type FROM ticket_events
            ORDER BY ticket_id, seq DESC
            """
        )
    return [(r["ticket_id"], r["seq"]) for r in rows if r["event_type"] != "TicketClosed"]


async def priority_before(pool: Executor, ticket_id: str, seq: int) -> str | None:
    """The ticket's priority just before event `seq` (from TicketOpened / PriorityChanged)."""
    async with connection(pool) as conn:
        return await conn.fetchval(
            """
            SELECT coalesce(payload ->> 'to_priority', payload ->> 'priority') FROM ticket_events
            WHERE ticket_id = $1 AND seq < $2
              AND event_type IN ('TicketOpened', 'PriorityChanged')
            ORDER BY seq DESC LIMIT 1
            """,
            ticket_id,
            seq,
        )
