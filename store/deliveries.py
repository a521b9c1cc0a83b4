"""Delivery bookkeeping of notifications: which channel took a notice, and the dead letters."""

from __future__ import annotations

from store.connection import Executor, connection


async def delivered_channels(pool: Executor, notification_id: str) -> set[str]:
    """The channels that already accepted this notification (a retry skips them)."""
    async with connection(pool) as conn:
        rows = await conn.fetch(
            "SELECT channel FROM notification_deliveries"
            " WHERE notification_id = $1 AND delivered_at IS NOT NULL",
            notification_id,
        )
    return {r["channel"] for r in rows}


async def record_attempt(
    pool: Executor, notification_id: str, channel: str, error: str | None
) -> None:
    """One delivery attempt to one channel: delivered when `error` is None."""
    async with connection(pool) as conn:
        await conn.execute(
            """
            INSERT INTO notification_deliveries
                (notification_id, channel, attempts, delivered_at, last_error)
            VALUES ($1, $2, 1, CASE WHEN $3::text IS NULL THEN now() END, $3)
            ON CONFLICT (notification_id, channel) DO UPDATE SET
                attempts = notification_deliveries.attempts + 1,
                delivered_at = coalesce(
                    notification_deliveries.delivered_at, EXCLUDED.delivered_at),
                last_error = coalesce(EXCLUDED.last_error, notification_deliveries.last_error),
                updated_at = now()
            """,
            notification_id,
            channel,
            error,
        )


async def record_dead_letter(
    pool: Executor,
    *,
    notification_id: str,
    channel: str,
    ticket_id: str,
    kind: str,
    tier: str,
    attempts: int,
    last_error: str,
) -> bool:
    """Record that `channel` never took the notification; True if the row is new."""
    async with connection(pool) as conn:
        inserted = await conn.fetchval(
            """
            INSERT INTO notification_dead_letters
                (notification_id, channel, ticket_id, kind, tier, attempts, last_error)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (notification_id, channel) DO NOTHING
            RETURNING true
            """,
            notification_id,
            channel,
            ticket_id,
            kind,
            tier,
            attempts,
            last_error,
        )
    return bool(inserted)
