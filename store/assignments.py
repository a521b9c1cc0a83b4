"""Assignments in PostgreSQL: each open ticket's assignee (agents' loads), team cursors, claims.

A choice runs in one transaction: it locks the team's cursor row, then its candidates' agent
rows in id order, reads their loads, lets the caller pick, and writes the claim and the cursor.
So two tickets entering teams at the same moment, on any workers, see each other's claims and
never both take an agent's last unit of capacity. The claim is keyed by (ticket, team visit,
attempt): a retried local activity for the same question gets the same agent back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.events import DomainEvent
from store.connection import Executor, connection
from store.event_store import EVENT_COLUMNS, StoredEvent, row_to_event

# Event type -> the change it makes to the ticket's row: (column, value).
_EFFECTS: dict[str, tuple[str, object]] = {
    "AssignmentTimedOut": ("agent_id", None),
    "TicketEscalated": ("agent_id", None),
    "TicketTransferred": ("agent_id", None),
    "TicketResolved": ("open", False),
    "TicketClosed": ("open", False),
    "TicketReopened": ("open", True),
}


@dataclass(frozen=True)
class Claim:
    agent_id: str | None
    loads: dict[str, int]  # the candidates' loads as read under the lock (before this claim)
    repeated: bool = False  # a retried request: the claim it made before


Pick = Callable[[dict[str, int], str | None], str | None]


async def claim_assignee(
    pool: Executor,
    *,
    ticket_id: str,
    team: str,
    visit: int,
    attempt: int,
    as_of_seq: int,
    candidates: Sequence[str],
    pick: Pick,
) -> Claim:
    """Claim an agent for the ticket: `pick(loads, cursor)` chooses among `candidates`."""
    async with connection(pool) as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO assignment_cursors (team) VALUES ($1) ON CONFLICT DO NOTHING", team
        )
        cursor = await conn.fetchval(
            "SELECT last_agent FROM assignment_cursors WHERE team = $1 FOR UPDATE", team
        )
        mine = await conn.fetchrow(
            "SELECT agent_id, team, visit, attempt FROM ticket_assignees"
            " WHERE ticket_id = $1 FOR UPDATE",
            ticket_id,
        )
        if (
            mine is not None
            and mine["agent_id"] is not None
            and (mine["team"], mine["visit"], mine["attempt"]) == (team, visit, attempt)
        ):
            return Claim(agent_id=mine["agent_id"], loads={}, repeated=True)
        ids = sorted(set(candidates))
        await conn.execute(
            "INSERT INTO assignment_agents (agent_id) SELECT unnest($1::text[])"
            " ON CONFLICT DO NOTHING",
            ids,
        )
        await conn.execute(
            "SELECT agent_id FROM assignment_agents WHERE agent_id = ANY($1::text[])"
            " ORDER BY agent_id FOR UPDATE",
            ids,
        )
        rows = await conn.fetch(
            "SELECT agent_id, count(*) AS n FROM ticket_assignees"
            " WHERE open AND agent_id = ANY($1::text[]) AND ticket_id <> $2 GROUP BY agent_id",
            ids,
            ticket_id,
        )
        loads = {r["agent_id"]: int(r["n"]) for r in rows}
        chosen = pick(loads, cursor)
        if chosen is None:
            return Claim(agent_id=None, loads=loads)
        if chosen not in ids:
            raise ValueError(f"pick chose {chosen!r}, not one of the candidates")
        await conn.execute(
            """
            INSERT INTO ticket_assignees
                (ticket_id, agent_id, open, team, visit, attempt, as_of_seq)
            VALUES ($1, $2, true, $3, $4, $5, $6)
            ON CONFLICT (ticket_id) DO UPDATE SET
                agent_id = EXCLUDED.agent_id, open = true, team = EXCLUDED.team,
                visit = EXCLUDED.visit, attempt = EXCLUDED.attempt,
                as_of_seq = greatest(ticket_assignees.as_of_seq, EXCLUDED.as_of_seq),
                updated_at = now()
            """,
            ticket_id,
            chosen,
            team,
            visit,
            attempt,
            as_of_seq,
        )
        await conn.execute(
            "UPDATE assignment_cursors SET last_agent = $2, updated_at = now() WHERE team = $1",
            team,
            chosen,
        )
        return Claim(agent_id=chosen, loads=loads)


def tracked(events: Sequence[DomainEvent]) -> bool:
    """True if any event changes who a ticket is assigned to or whether it counts as load."""
    return any(
        e.event_type in _EFFECTS
        or e.event_type == "TicketAssigned"
        or (e.event_type == "CustomerReplied" and e.payload.get("reopened"))
        for e in events
    )


async def track_assignees(pool: Executor, events: Sequence[DomainEvent]) -> None:
    """Apply stored events to their tickets' rows; idempotent and safe out of order: an
    event at or below a row's `as_of_seq` is already reflected and changes nothing."""
    changes: list[tuple[str, int, str, object]] = []
    for e in events:
        if e.event_type == "TicketAssigned":
            changes.append((e.ticket_id, e.seq, "agent_id", e.payload["assignee"]))
        elif e.event_type in _EFFECTS:
            column, value = _EFFECTS[e.event_type]
            changes.append((e.ticket_id, e.seq, column, value))
        elif e.event_type == "CustomerReplied" and e.payload.get("reopened"):
            changes.append((e.ticket_id, e.seq, "open", True))
    if not changes:
        return
    async with connection(pool) as conn, conn.transaction():
        for ticket_id, seq, column, value in changes:
            agent = value if column == "agent_id" else None
            is_open = value if column == "open" else True
            # A new row starts from this event; an existing one changes only `column`.
            await conn.execute(
                f"""
                INSERT INTO ticket_assignees (ticket_id, agent_id, open, as_of_seq)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (ticket_id) DO UPDATE SET
                    {column} = EXCLUDED.{column}, as_of_seq = EXCLUDED.as_of_seq,
                    updated_at = now()
                WHERE ticket_assignees.as_of_seq < EXCLUDED.as_of_seq
                """,
                ticket_id,
                agent,
                is_open,
                seq,
            )


async def loads(pool: Executor, agent_ids: Sequence[str]) -> dict[str, int]:
    """Open tickets assigned to each agent (agents without any are left out)."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT agent_id, count(*) AS n FROM ticket_assignees"
            " WHERE open AND agent_id = ANY($1::text[]) GROUP BY agent_id",
            list(agent_ids),
        )
    return {r["agent_id"]: int(r["n"]) for r in rows}


async def auto_assigned_events(
    pool: Executor, since: datetime | None, until: datetime | None
) -> list[StoredEvent]:
    """Every event of the tickets opened in [since, until) that were ever auto-assigned, in
    ticket and seq order: what the acknowledgement report folds."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            f"SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ticket_id IN ("
            " SELECT e.ticket_id FROM ticket_events e JOIN tickets t USING (ticket_id)"
            " WHERE e.event_type = 'TicketAssigned' AND e.payload ->> 'trigger' = 'auto'"
            " AND ($1::timestamptz IS NULL OR t.opened_at >= $1)"
            " AND ($2::timestamptz IS NULL OR t.opened_at < $2)"
            ") ORDER BY ticket_id, seq",
            since,
            until,
        )
    return [row_to_event(r) for r in rows]
