"""The record of notifications sent: one row per notification_id, so a retry is recognised."""

from __future__ import annotations

from domain.notifications import Notification
from store.connection import Executor, connection


async def record_notification(pool: Executor, n: Notification) -> bool:
    """Record `n`; True if it is new, False if this notification_id was already recorded."""
    async with connection(pool) as conn:
        inserted = await conn.fetchval(
            """
            INSERT INTO notifications
                (notification_id, ticket_id, kind, tier, subject, message, at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (notification_id) DO NOTHING
            RETURNING true
            """,
            n.notification_id,
            n.ticket_id,
            n.kind,
            n.tier,
            n.subject,
            n.message,
            n.at,
        )
    return bool(inserted)
