"""Errors the event store raises when it refuses an append for good (retrying cannot help)."""

from __future__ import annotations

from uuid import UUID


class StoreError(Exception):
    """Base of every refusal by the event store."""


class EventConflict(StoreError):
    """Another event already holds this (ticket_id, seq), or this event_id is stored elsewhere."""

    def __init__(
        self,
        ticket_id: str,
        seq: int,
        existing_event_id: UUID,
        event_id: UUID,
        message: str | None = None,
    ) -> None:
        self.ticket_id = ticket_id
        self.seq = seq
        self.existing_event_id = existing_event_id
        self.event_id = event_id
        super().__init__(
            message
            or (
                f"ticket {ticket_id} seq {seq} is already held by event {existing_event_id};"
                f" refusing event {event_id}"
            )
        )


class SeqGap(StoreError):
    """The batch starts beyond the ticket's next seq: appending it would leave a hole."""

    def __init__(self, ticket_id: str, expected: int, got: int) -> None:
        self.ticket_id = ticket_id
        self.expected = expected
        self.got = got
        super().__init__(
            f"ticket {ticket_id}: expected seq {expected} or lower, got {got} (would leave a gap)"
        )


class AppendRaced(Exception):
    """Another writer took one of the batch's seqs between its checks and its insert; nothing of
    the batch is stored. Not a refusal: the retry's checks find the conflict and name it."""
