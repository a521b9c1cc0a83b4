"""Store-side activities: append a ticket's events, record and announce a notification.

Both are idempotent, because Temporal may run an activity more than once. A refusal that no
retry can fix (conflict, gap, malformed batch) becomes a non-retryable ApplicationError whose
type the workflow names in its retry policy; database outages propagate so Temporal retries.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog
from pydantic import BaseModel
from structlog.typing import FilteringBoundLogger
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.delivery import DeliveryError, deliver
from domain.channels import NO_CHANNELS, Channel, ChannelConfig
from domain.events import DomainEvent
from domain.notifications import Notification
from domain.state import TicketState, fold
from runtime import metrics
from store.assignments import track_assignees, tracked
from store.deliveries import delivered_channels, record_attempt, record_dead_letter
from store.errors import EventConflict, SeqGap
from store.event_store import AppendResult, read_ticket
from store.group_commit import GroupCommitter
from store.notifications import record_notification
from store.ticket_facts import priority_before, ticket_policy

# When the activity cannot see its retry policy's maximum (or it is unlimited), the attempt
# that writes the dead letters: the workflow's NOTIFY_RETRY allows 10.
DEFAULT_NOTIFY_ATTEMPTS = 10
POLICY_CACHE_MAX = 10_000
RECENT_EVENTS = 100  # what a resumed run keeps for its `history` query, as after continue-as-new

logger = structlog.get_logger(__name__)


class AppendBatch(BaseModel):
    """The `append_events` activity's input: consecutive events of one ticket."""

    ticket_id: str
    events: list[DomainEvent]


def _log() -> FilteringBoundLogger:
    """The module logger bound with the running activity's identity."""
    info = activity.info()
    return logger.bind(
        workflow_id=info.workflow_id,
        workflow_run_id=info.workflow_run_id,
        activity_type=info.activity_type,
        activity_id=info.activity_id,
        attempt=info.attempt,
    )


class StoreLookup(BaseModel):
    """`stored_ticket`'s input: the ticket, and whether the asking run is a fresh start (not
    a reset). Passed in and echoed back, so a replay reads the answer from the recorded result:
    a replayer need not know the run ids the live run saw."""

    ticket_id: str
    fresh_start: bool


class StoredTicket(BaseModel):
    """What the event store holds of a ticket, folded: its state and its last few events."""

    state: TicketState
    recent: list[DomainEvent]
    fresh_start: bool


class EventStoreActivities:
    """Activities sharing one asyncpg pool; register the bound methods with the worker, and
    `close()` this before the pool."""

    def __init__(self, pool: asyncpg.Pool, channels: ChannelConfig = NO_CHANNELS) -> None:
        self.pool = pool
        self.channels = channels
        self._policies: dict[str, str] = {}  # ticket -> policy name
        # Concurrent append_events activities share transactions (store/group_commit.py).
        self.appends = GroupCommitter(pool)

    async def close(self) -> None:
        """Wait for the appends already queued; refuse new ones."""
        await self.appends.close()

    @activity.defn(name="stored_ticket")
    async def stored_ticket(self, lookup: StoreLookup) -> StoredTicket | None:
        """The ticket as its stored events fold, or None when the store holds none: whether
        an id was used before, and where a reset run resumes from. Read-only."""
        events = [e.to_domain() for e in await read_ticket(self.pool, lookup.ticket_id)]
        state = fold(events)
        if state is None:
            return None
        return StoredTicket(
            state=state, recent=events[-RECENT_EVENTS:], fresh_start=lookup.fresh_start
        )

    @activity.defn(name="append_events")
    async def append_events(self, batch: AppendBatch) -> AppendResult:
        log = _log().bind(ticket_id=batch.ticket_id, events=len(batch.events))
        if batch.events:
            log = log.bind(first_seq=batch.events[0].seq, last_seq=batch.events[-1].seq)
        try:
            strays = {e.ticket_id for e in batch.events} - {batch.ticket_id}
            if strays:
                raise ValueError(
                    f"batch for ticket {batch.ticket_id} holds events of {sorted(strays)}"
                )
            started = time.perf_counter()
            outcome = "error"
            try:
                result = await self.appends.append(batch.events)
                outcome = "ok"
            except (EventConflict, SeqGap, ValueError, asyncpg.DataError):
                outcome = "refused"
                raise
            finally:
                metrics.record_append_latency(
                    activity.metric_meter(), time.perf_counter() - started, outcome
                )
        except EventConflict as exc:
            log.error("append refused: conflict", error=str(exc))
            raise ApplicationError(str(exc), type="EventConflict", non_retryable=True) from exc
        except SeqGap as exc:
            log.error("append refused: gap", error=str(exc))
            raise ApplicationError(str(exc), type="SeqGap", non_retryable=True) from exc
        except (ValueError, asyncpg.DataError) as exc:
            # Data PostgreSQL refuses (class 22, e.g. U+0000 in jsonb) fails the same way on
            # every retry: refuse for good rather than retry forever.
            log.error("append refused: invalid batch", error=str(exc))
            raise ApplicationError(str(exc), type="InvalidBatch", non_retryable=True) from exc
        # Anything else (connection lost, server restarting...) propagates: Temporal retries,
        # and the retry is recognised event by event.
        log.info(
            "events appended", inserted=result.inserted, already_present=result.already_present
        )
        if tracked(batch.events):
            # Every time, also when the events were already present: a crash may have come
            # between the append and this (it is idempotent; see store/assignments.py).
            await track_assignees(self.pool, batch.events)
        await self._count(batch, result, log)
        return result

    async def _count(
        self, batch: AppendBatch, result: AppendResult, log: FilteringBoundLogger
    ) -> None:
        """Metrics of the events this call inserted: a retry that finds them present adds none.

        Seqs are gapless per ticket, so the events already present are a prefix of the batch
        and the inserted ones are its last `inserted` events.
        """
        if not result.inserted:
            return
        new = batch.events[len(batch.events) - result.inserted :]
        try:
            prior = None
            if metrics.needs_prior_priority(new):
                prior = await priority_before(self.pool, batch.ticket_id, new[0].seq)
            metrics.record_counts(activity.metric_meter(), metrics.event_counts(new, prior))
        except Exception as exc:  # the events are stored: metrics must never fail the append
            log.warning("metrics not recorded", error=f"{type(exc).__name__}: {exc}")

    @activity.defn(name="notify")
    async def notify(self, n: Notification) -> bool:
        """Record the notification (once per notification_id), then deliver it to the
        channels routed for its ticket's policy, tier and kind; True if it was new."""
        log = _log().bind(
            ticket_id=n.ticket_id, kind=n.kind, tier=n.tier, notification_id=n.notification_id
        )
        new = await record_notification(self.pool, n)
        # Subject and message are customer text: only the ids go to the info log.
        if new:
            log.info("notification sent")
        else:
            log.info("notification already sent")
        if self.channels.configured:
            await self._deliver(n, log)
        return new

    async def _policy_of(self, ticket_id: str) -> str | None:
        """The ticket's policy name, cached: TicketOpened never changes once stored."""
        name = self._policies.get(ticket_id)
        if name is None:
            name = await ticket_policy(self.pool, ticket_id)
            if name is not None:
                if len(self._policies) >= POLICY_CACHE_MAX:
                    self._policies.clear()
                self._policies[ticket_id] = name
        return name

    async def _deliver(self, n: Notification, log: FilteringBoundLogger) -> None:
        """Deliver to the routed channels not yet delivered; raise so Temporal retries the
        rest, or, on the last attempt, write their dead letters and return."""
        policy = await self._policy_of(n.ticket_id)
        targets = self.channels.route_notice(policy, n.tier, n.kind, n.assignee)
        if not targets:
            return
        done = await delivered_channels(self.pool, n.notification_id)
        pending = [c for c in targets if c.name not in done]
        if not pending:
            return
        info = activity.info()
        link = self.channels.link(n.ticket_id)

        async def one(channel: Channel) -> str | None:
            try:
                await deliver(channel, n, policy, link, info.attempt)
            except DeliveryError as exc:
                return str(exc)
            return None

        errors = await asyncio.gather(*(one(c) for c in pending))
        meter = activity.metric_meter()
        failed: list[tuple[Channel, str]] = []
        for channel, error in zip(pending, errors, strict=True):
            await record_attempt(self.pool, n.notification_id, channel.name, error)
            if error is None:
                log.info("notification delivered", channel=channel.name)
                metrics.record_notification(meter, channel.name, n.kind, "delivered")
            else:
                log.warning("notification delivery failed", channel=channel.name, error=error)
                metrics.record_notification(meter, channel.name, n.kind, "failed")
                failed.append((channel, error))
        if not failed:
            return
        retry = info.retry_policy
        last = retry.maximum_attempts if retry and retry.maximum_attempts > 0 else 0
        last = last or DEFAULT_NOTIFY_ATTEMPTS  # 0: unlimited, or not known
        summary = "; ".join(f"{c.name}: {e}" for c, e in failed)
        if info.attempt < last:
            raise ApplicationError(
                f"notification {n.notification_id} not delivered (attempt {info.attempt}"
                f" of {last}): {summary}",
                type="DeliveryFailed",
            )
        for channel, error in failed:
            await record_dead_letter(
                self.pool,
                notification_id=n.notification_id,
                channel=channel.name,
                ticket_id=n.ticket_id,
                kind=n.kind,
                tier=n.tier,
                attempts=info.attempt,
                last_error=error,
            )
            log.error(
                "notification dead-lettered",
                channel=channel.name,
                attempts=info.attempt,
                error=error,
            )
            metrics.record_notification(meter, channel.name, n.kind, "dead_lettered")
