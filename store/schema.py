"""Schema migrations of the event store, applied by every worker at start.

Safe when several workers start at once: the whole run holds one session-level advisory lock,
so migrations apply one worker at a time and each version is recorded exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from store.connection import Executor, connection

# Arbitrary but fixed: every process that migrates this database must use the same key.
MIGRATION_LOCK_KEY = 0x7469636B657401  # "ticket" 01


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "ticket_events and notifications",
        """
        CREATE TABLE ticket_events (
            global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ticket_id       text        NOT NULL,
            seq             integer     NOT NULL CHECK (seq >= 1),
            event_id        uuid        NOT NULL UNIQUE,
            event_type      text        NOT NULL,
            payload         jsonb       NOT NULL,
            occurred_at     timestamptz NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ticket_events_ticket_seq_key UNIQUE (ticket_id, seq)
        );

        CREATE TABLE notifications (
            notification_id text        PRIMARY KEY,
            ticket_id       text        NOT NULL,
            kind            text        NOT NULL,
            tier            text        NOT NULL,
            subject         text        NOT NULL,
            message         text        NOT NULL,
            at              timestamptz NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX notifications_ticket_at_idx ON notifications (ticket_id, at);
        """,
    ),
    Migration(
        2,
        "read models: tickets, escalations, projection_checkpoints",
        """
        -- One row per projection: the last global_position applied, and how many events were
        -- applied in all (a double-applied batch would show as events > rows in the log).
        CREATE TABLE projection_checkpoints (
            name       text        PRIMARY KEY,
            position   bigint      NOT NULL DEFAULT 0,
            events     bigint      NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO projection_checkpoints (name) VALUES ('tickets');

        CREATE TABLE tickets (
            ticket_id               text        PRIMARY KEY,
            subject                 text        NOT NULL,
            customer_id             text        NOT NULL,
            priority                text        NOT NULL,
            category                text,
            policy                  text        NOT NULL,
            status                  text        NOT NULL,
            tier                    text        NOT NULL,
            assignee                text,
            opened_at               timestamptz NOT NULL,
            first_responded_at      timestamptz,
            resolved_at             timestamptz,
            closed_at               timestamptz,
            first_response_due      timestamptz,
            resolution_due          timestamptz,
            tier_due                timestamptz,
            first_response_breached boolean     NOT NULL,
            resolution_breached     boolean     NOT NULL,
            escalation_count        integer     NOT NULL,
            version                 integer     NOT NULL,
            last_position           bigint      NOT NULL
        );
        CREATE INDEX tickets_opened_at_idx ON tickets (opened_at);
        CREATE INDEX tickets_status_tier_idx ON tickets (status, tier);

        CREATE TABLE escalations (
            ticket_id       text        NOT NULL,
            seq             integer     NOT NULL,
            from_tier       text        NOT NULL,
            to_tier         text        NOT NULL,
            trigger         text        NOT NULL,
            reason          text,
            agent_id        text,
            at              timestamptz NOT NULL,
            global_position bigint      NOT NULL,
            PRIMARY KEY (ticket_id, seq)
        );
        CREATE INDEX escalations_at_idx ON escalations (at);
        """,
    ),
    Migration(
        3,
        "notification deliveries and dead letters",
        """
        -- One row per (notification, channel) once delivery was tried: a retried notify
        -- activity skips the channels already delivered.
        CREATE TABLE notification_deliveries (
            notification_id text        NOT NULL,
            channel         text        NOT NULL,
            attempts        integer     NOT NULL,
            delivered_at    timestamptz,
            last_error      text,
            updated_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (notification_id, channel)
        );

        -- A notice that a channel still refused on the activity's last attempt.
        CREATE TABLE notification_dead_letters (
            notification_id text        NOT NULL,
            channel         text        NOT NULL,
            ticket_id       text        NOT NULL,
            kind            text        NOT NULL,
            tier            text        NOT NULL,
            attempts        integer     NOT NULL,
            last_error      text        NOT NULL,
            at              timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (notification_id, channel)
        );
        CREATE INDEX notification_dead_letters_at_idx ON notification_dead_letters (at);
        """,
    ),
    Migration(
        4,
        "append_ticket_events: the exactly-once append in one round trip",
        """
        -- The whole append (checks, position lock, insert) runs inside the server: one round
        -- trip instead of five. The checks come before the lock (a ticket has one writer, so
        -- its earlier appends are committed and visible), and the lock is held only from the
        -- insert to the commit, never across the network. In READ COMMITTED each statement
        -- below takes a new snapshot.
        CREATE FUNCTION append_ticket_events(
            lock_key    bigint,
            p_ticket_id text,
            p_seqs      integer[],
            p_ids       uuid[],
            p_types     text[],
            p_payloads  text[],
            p_times     timestamptz[],
            OUT outcome      text,
            OUT inserted     integer,
            OUT at_seq       integer,
            OUT existing_id  uuid,
            OUT other_ticket text,
            OUT other_seq    integer
        ) LANGUAGE plpgsql AS $fn$
        DECLARE
            first_seq integer := p_seqs[1];
            clash     record;
        BEGIN
            inserted := 0;
            IF first_seq > 1 AND NOT EXISTS (
                SELECT 1 FROM ticket_events WHERE ticket_id = p_ticket_id AND seq = first_seq - 1
            ) THEN
                outcome := 'gap';
                SELECT coalesce(max(seq), 0) + 1 INTO at_seq
                FROM ticket_events WHERE ticket_id = p_ticket_id;
                RETURN;
            END IF;
            -- A seq held by another event, one of our event ids stored elsewhere, or one of our
            -- events stored with other content (a retry must carry exactly what was stored).
            SELECT u.seq, t.event_id, t.ticket_id, t.seq AS stored_seq,
                   t.event_id = u.event_id AND t.ticket_id = p_ticket_id AND t.seq = u.seq
                       AS changed
            INTO clash
            FROM unnest(p_seqs, p_ids, p_types, p_payloads, p_times)
                AS u(seq, event_id, event_type, payload, occurred_at)
            JOIN ticket_events t
              ON (t.ticket_id = p_ticket_id AND t.seq = u.seq AND t.event_id <> u.event_id)
              OR (t.event_id = u.event_id AND (t.ticket_id <> p_ticket_id OR t.seq <> u.seq))
              OR (t.event_id = u.event_id AND t.ticket_id = p_ticket_id AND t.seq = u.seq
                  AND (t.event_type, t.payload, t.occurred_at)
                      IS DISTINCT FROM (u.event_type, u.payload::jsonb, u.occurred_at))
            ORDER BY u.seq
            LIMIT 1;
            IF FOUND THEN
                outcome := CASE WHEN clash.changed THEN 'changed' ELSE 'conflict' END;
                at_seq := clash.seq;
                existing_id := clash.event_id;
                other_ticket := clash.ticket_id;
                other_seq := clash.stored_seq;
                RETURN;
            END IF;
            IF lock_key IS NOT NULL THEN
                PERFORM pg_advisory_xact_lock(lock_key);
            END IF;
            -- Rows already stored (a retried batch) are skipped; a retry racing its own
            -- earlier attempt waits on the unique index, then skips.
            INSERT INTO ticket_events (ticket_id, seq, event_id, event_type, payload, occurred_at)
            SELECT p_ticket_id, u.seq, u.event_id, u.event_type, u.payload::jsonb, u.occurred_at
            FROM unnest(p_seqs, p_ids, p_types, p_payloads, p_times)
                AS u(seq, event_id, event_type, payload, occurred_at)
            ORDER BY u.seq
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
            -- A row skipped must be ours already; another writer's row that raced in after the
            -- checks rolls this back, and the retry's checks name the conflict.
            IF inserted < cardinality(p_seqs) AND EXISTS (
                SELECT 1 FROM unnest(p_seqs, p_ids) AS u(seq, event_id)
                WHERE NOT EXISTS (
                    SELECT 1 FROM ticket_events t
                    WHERE t.ticket_id = p_ticket_id AND t.seq = u.seq AND t.event_id = u.event_id
                )
            ) THEN
                RAISE EXCEPTION 'ticket %: another append raced this one', p_ticket_id
                    USING ERRCODE = 'serialization_failure';
            END IF;
            outcome := 'ok';
        END
        $fn$;
        """,
    ),
    Migration(
        5,
        "assignments: each open ticket's assignee, team cursors, agent lock rows; paths",
        """
        -- Who each ticket is assigned to, kept by the append_events activity from the events
        -- (and by a choice, which claims an agent before its TicketAssigned is stored).
        -- `as_of_seq`: the last event reflected, so events applied late or twice never
        -- undo a later claim. An agent's load is the count of its open rows.
        CREATE TABLE ticket_assignees (
            ticket_id  text        PRIMARY KEY,
            agent_id   text,
            open       boolean     NOT NULL DEFAULT true,
            team       text,
            visit      integer,
            attempt    integer,
            as_of_seq  integer     NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ticket_assignees_load_idx ON ticket_assignees (agent_id)
            WHERE open AND agent_id IS NOT NULL;

        -- The round robin's position per team; its row is locked by every choice for the team.
        CREATE TABLE assignment_cursors (
            team       text        PRIMARY KEY,
            last_agent text,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- One row per agent ever considered: a choice locks its candidates' rows (in id
        -- order), so two choices sharing an agent (two teams) never both take its last unit.
        CREATE TABLE assignment_agents (
            agent_id text PRIMARY KEY
        );

        ALTER TABLE tickets ADD COLUMN path text, ADD COLUMN acknowledged boolean;
        CREATE INDEX tickets_path_idx ON tickets (path, status);
        """,
    ),
    Migration(
        6,
        "tickets.workflow_ended: a ticket whose workflow ended without closing it",
        """
        -- Set by `readside.py reconcile` (terminated, failed, timed_out, canceled); the
        -- projector leaves it alone (not a column it folds), a rebuild clears it.
        ALTER TABLE tickets ADD COLUMN workflow_ended text;
        """,
    ),
    Migration(
        7,
        "tickets: tags, next-reply figures, rules fired",
        """
        -- Rows projected before are rebuilt by `escalation-readside rebuild`; until then the
        -- defaults say what those tickets had: no tags, no next-reply clock, no rules.
        ALTER TABLE tickets
            ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
            ADD COLUMN next_reply_met integer NOT NULL DEFAULT 0,
            ADD COLUMN next_reply_breached integer NOT NULL DEFAULT 0,
            ADD COLUMN rules_fired text[] NOT NULL DEFAULT '{}';
        CREATE INDEX tickets_tags_idx ON tickets USING gin (tags);
        """,
    ),
    Migration(
        8,
        "append_event_batches: several tickets' appends in one transaction (group commit)",
        """
        -- append_ticket_events for many batches at once (store/group_commit.py): the same
        -- checks per batch, one position lock, one insert, one commit. A refused batch gets its
        -- own outcome row and nothing stored; the others go on. Each event carries its batch's
        -- number (1..n); a ticket occurs in one batch only (the caller splits the rest into
        -- the next group), so every check reads committed rows, as append_ticket_events does.
        CREATE FUNCTION append_event_batches(
            p_lock     bigint,
            p_batches  integer[],
            p_tickets  text[],
            p_seqs     integer[],
            p_ids      uuid[],
            p_types    text[],
            p_payloads text[],
            p_times    timestamptz[]
        ) RETURNS TABLE (
            batch_no     integer,
            outcome      text,
            inserted     integer,
            at_seq       integer,
            existing_id  uuid,
            other_ticket text,
            other_seq    integer
        ) LANGUAGE plpgsql AS $fn$
        DECLARE
            refused     integer[] := '{}';
            raced       integer[] := '{}';
            ins_tickets text[];
            ins_seqs    integer[];
            r           record;
        BEGIN
            IF (SELECT count(DISTINCT u.t) <> count(DISTINCT u.b)
                FROM unnest(p_batches, p_tickets) AS u(b, t)) THEN
                RAISE EXCEPTION 'append_event_batches: a ticket occurs in two batches'
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            -- A batch starting beyond its ticket's next seq.
            FOR r IN
                SELECT f.b, f.t,
                       (SELECT coalesce(max(e.seq), 0) + 1 FROM ticket_events e
                        WHERE e.ticket_id = f.t) AS next_seq
                FROM (SELECT u.b, u.t, min(u.s) AS s
                      FROM unnest(p_batches, p_tickets, p_seqs) AS u(b, t, s)
                      GROUP BY u.b, u.t) f
                WHERE f.s > 1 AND NOT EXISTS (
                    SELECT 1 FROM ticket_events e WHERE e.ticket_id = f.t AND e.seq = f.s - 1
                )
            LOOP
                batch_no := r.b; outcome := 'gap'; inserted := 0; at_seq := r.next_seq;
                existing_id := NULL; other_ticket := NULL; other_seq := NULL;
                RETURN NEXT;
                refused := refused || r.b;
            END LOOP;
            -- Per remaining batch its first clash by seq: its seq held by another event, its
            -- event id stored elsewhere, or its event stored with other content.
            FOR r IN
                SELECT DISTINCT ON (u.b) u.b, u.s, e.event_id, e.ticket_id, e.seq,
                       (e.event_id, e.ticket_id, e.seq) = (u.id, u.t, u.s) AS changed
                FROM unnest(p_batches, p_tickets, p_seqs, p_ids, p_types, p_payloads, p_times)
                    AS u(b, t, s, id, typ, payload, at)
                JOIN ticket_events e
                  ON (e.ticket_id = u.t AND e.seq = u.s) OR e.event_id = u.id
                WHERE u.b <> ALL (refused)
                  AND (e.event_id, e.ticket_id, e.seq, e.event_type, e.payload, e.occurred_at)
                      IS DISTINCT FROM (u.id, u.t, u.s, u.typ, u.payload::jsonb, u.at)
                ORDER BY u.b, u.s
            LOOP
                batch_no := r.b;
                outcome := CASE WHEN r.changed THEN 'changed' ELSE 'conflict' END;
                inserted := 0; at_seq := r.s; existing_id := r.event_id;
                other_ticket := r.ticket_id; other_seq := r.seq;
                RETURN NEXT;
                refused := refused || r.b;
            END LOOP;
            IF (SELECT count(DISTINCT b) FROM unnest(p_batches) AS b) = cardinality(refused) THEN
                RETURN;
            END IF;
            -- Held from the first insert to the commit: positions in commit order.
            IF p_lock IS NOT NULL THEN
                PERFORM pg_advisory_xact_lock(p_lock);
            END IF;
            WITH ins AS (
                INSERT INTO ticket_events
                    (ticket_id, seq, event_id, event_type, payload, occurred_at)
                SELECT u.t, u.s, u.id, u.typ, u.payload::jsonb, u.at
                FROM unnest(p_batches, p_tickets, p_seqs, p_ids, p_types, p_payloads, p_times)
                    AS u(b, t, s, id, typ, payload, at)
                WHERE u.b <> ALL (refused)
                ORDER BY u.b, u.s
                ON CONFLICT DO NOTHING
                RETURNING ticket_events.ticket_id, ticket_events.seq
            )
            SELECT coalesce(array_agg(ins.ticket_id), '{}'), coalesce(array_agg(ins.seq), '{}')
            INTO ins_tickets, ins_seqs FROM ins;
            -- A row skipped must be ours already. A batch that lost a seq to another writer
            -- after its checks takes the rows it did insert back out and is told so ('raced');
            -- its retry's checks name the conflict. The other batches still commit.
            IF cardinality(ins_tickets) < (SELECT count(*) FROM unnest(p_batches) AS u(b)
                                           WHERE u.b <> ALL (refused)) THEN
                SELECT coalesce(array_agg(DISTINCT u.b), '{}') INTO raced
                FROM unnest(p_batches, p_tickets, p_seqs, p_ids) AS u(b, t, s, id)
                WHERE u.b <> ALL (refused) AND NOT EXISTS (
                    SELECT 1 FROM ticket_events e
                    WHERE e.ticket_id = u.t AND e.seq = u.s AND e.event_id = u.id
                );
            END IF;
            IF cardinality(raced) > 0 THEN
                DELETE FROM ticket_events e
                USING unnest(ins_tickets, ins_seqs) AS i(t, s),
                      unnest(p_batches, p_tickets) AS u(b, t)
                WHERE e.ticket_id = i.t AND e.seq = i.s AND u.t = i.t AND u.b = ANY (raced);
            END IF;
            RETURN QUERY
                SELECT g.b, CASE WHEN g.b = ANY (raced) THEN 'raced' ELSE 'ok' END,
                       CASE WHEN g.b = ANY (raced) THEN 0
                            ELSE (SELECT count(*)::integer FROM unnest(ins_tickets) AS i(t)
                                  WHERE i.t = g.t) END,
                       NULL::integer, NULL::uuid, NULL::text, NULL::integer
                FROM (SELECT DISTINCT u.b, u.t FROM unnest(p_batches, p_tickets) AS u(b, t)) g
                WHERE g.b <> ALL (refused);
        END
        $fn$;
        """,
    ),
]


def _check_ordered(migrations: list[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n in order, got {versions}")


_check_ordered(MIGRATIONS)


async def migrate(pool_or_conn: Executor, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the migrations not yet applied; returns the versions applied by this call."""
    todo = MIGRATIONS if migrations is None else migrations
    _check_ordered(todo)
    async with connection(pool_or_conn) as conn:
        # Session-level lock on this one connection, held across all migrations; a second
        # worker waits here and then finds everything applied.
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer     PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied: list[int] = []
            for m in todo:
                if m.version in done:
                    continue
                # One transaction per migration: its DDL and its bookkeeping row land together.
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", m.version
                    )
                applied.append(m.version)
            return applied
        finally:
            # If the connection broke, the server has released the lock with the session.
            if not conn.is_closed():
                try:
                    await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
                except asyncpg.PostgresError:
                    pass


async def applied_versions(pool_or_conn: Executor) -> list[int]:
    """Versions recorded in `schema_migrations` (empty if the table does not exist yet)."""
    async with connection(pool_or_conn) as conn:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            return []
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [r["version"] for r in rows]
