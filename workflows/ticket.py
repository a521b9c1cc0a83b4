"""`TicketWorkflow`: one durable workflow per ticket, a thin shell around the domain decider.

It owns time (`workflow.now()` and timers) and side effects (activities); every rule is in
`domain/`. Events are recorded in memory at once (so queries and later actions see them) and
appended to the event store, in order, by one appender task; notifications go out only after
the events that caused them are stored.

Behaviour changes go behind `workflow.patched` so tickets started by an earlier release replay
unchanged (tests/histories). `RELEASE_0_2`: the policy lookup is a local activity; decisions use
a replay-stable clock (`_clock`); the one SLA timer is re-armed only when its due time moves;
notifications no longer hold up the next append; a long ticket continues as new on our own
budget (workflows/history_budget.py) carrying its folded state, not its events.

Appends stay ordinary activities. As local activities they halved the history, but a local
activity runs before the workflow task that decided its events is committed: when a worker died
mid-task, the retried task decided the same seqs again at a later time, and the store kept the
first attempt's events while the workflow went on with the second's (bench/faults.py found it).
An ordinary activity is scheduled by the committed task, so the store gets what history holds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue, RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # By full name: `from workflows import ...` would make the sandbox a copy of the module.
    import workflows.history_budget as history_budget
    from activities.agents import AgentActivities
    from activities.assignment import AssignmentActivities
    from activities.event_store import AppendBatch, EventStoreActivities, StoreLookup
    from activities.policy import PolicyActivities
    from domain import events as ev
    from domain.agents import AuthorizationRequest, Decision
    from domain.assignment import Choice, choice_request
    from domain.calendar import local_time
    from domain.commands import (
        MAX_PAYLOAD_DEPTH,
        Action,
        Assign,
        parse_action,
        parse_open_ticket,
        payload_depth,
        request_use,
    )
    from domain.decider import Assigned, Open, Tick, decide, reject
    from domain.errors import ActionRejected, DomainError, InvalidTicket
    from domain.notifications import Notification, notifications_for, reminder
    from domain.policy import Policy
    from domain.principal import payload_digest
    from domain.state import (
        TicketState,
        choice_due,
        deadlines,
        evolve,
        fold,
        reminded,
        renotify_due,
        request_used,
    )
    from domain.view import TicketView, view
    from runtime.codec import UNDECRYPTABLE
    from workflows import search_attributes as sa
    from workflows.carried import Carried, Pending
    from workflows.principal import current_principal

WORKFLOW_TYPE = "TicketWorkflow"
RELEASE_0_2 = "release-0.2"
# Since 0.2.1: the event store is asked at open whether it holds the ticket already.
STORE_AT_OPEN = "store-at-open"
# Since 0.2.1: Signals and Updates are taken into an inbox that the main loop decides from, so
# the run can continue as new at any moment, carrying what it has not decided yet.
INBOX = "inbox"
# Paths and teams: the path recorded at open, auto-assignment (a local activity), TicketPath.
TEAMS = "teams-assignment"
# Tags, next reply and rules (docs/rules.md): the one new command is the TicketTags upsert; the
# rest is domain behaviour keyed on the policy the ticket recorded.
RULES = "tags-rules"
# Since 0.3: one marker for the whole release in a new run, where each patch above cost a marker
# and a TemporalChangeVersion upsert (two history events each). It implies every patch above,
# and the inbox's actions are authorized in batches (one local activity for many).
RELEASE_0_3 = "release-0.3"
AUTHORIZE_BATCH_MAX = 200  # actions per authorize_batch call
APPEND_BATCH_MAX = 100
REJECTED_PAYLOAD_MAX = 4096  # bytes of a refused signal's payload kept in its ActionRejected
MAX_PAYLOAD_BYTES = 256 * 1024  # an action's payload, as the HTTP API's body limit

APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["EventConflict", "SeqGap", "InvalidBatch"],
)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=10,
)


# What a handler sees when the caller sent no payload at all (`temporal workflow signal` bare).
NO_PAYLOAD = RawValue(Payload(metadata={"encoding": b"binary/null"}))


def workflow_id_for(ticket_id: str) -> str:
    return f"ticket-{ticket_id}"


class PayloadRefused(ValueError):
    """A Signal's or Update's payload that is refused before it is read as an action; `kept`
    is what its ActionRejected may record of it."""

    def __init__(self, reason: str, kept: Any = None) -> None:
        super().__init__(reason)
        self.kept = kept


class EventStoreFailed(Exception):
    """The store refused an append for good (conflict or gap): the ticket cannot go on."""


@workflow.defn(name=WORKFLOW_TYPE)
class TicketWorkflow:
    @workflow.init
    def __init__(self, input: RawValue = NO_PAYLOAD, carried: Carried | None = None) -> None:
        self._state: TicketState | None = None
        self._events: list[ev.DomainEvent] = []
        self._outbox: list[ev.DomainEvent] = []
        self._notices: list[Notification] = []
        self._appended_seq = 0
        self._changed = False
        # One action at a time, in arrival order: authorization awaits an activity.
        self._action_lock = asyncio.Lock()
        self._search_attributes: dict[str, Any] = {}
        self._fatal: ApplicationError | None = None
        self._sending = 0  # notify activities in flight (first release: awaited by the appender)
        self._notifying: set[asyncio.Task[None]] = set()  # since 0.2: sent beside the appender
        self._v2 = False  # RELEASE_0_2 in effect (decided once, at the start of run)
        self._teams = False  # TEAMS in effect (likewise)
        self._rules = False  # RULES in effect (likewise)
        self._timer: asyncio.Task[None] | None = None
        self._timer_due: datetime | None = None
        self._clock_at: datetime | None = None  # see _clock
        self._inbox_on: bool | None = None  # INBOX in effect: decided when first needed
        self._v3: bool | None = None  # RELEASE_0_3 in effect: decided when first needed
        # Answers of authorize_batch by inbox entry (id of the Pending), each with the tier and
        # path it was given for: a tier or path change asks again.
        self._authorized: dict[int, tuple[tuple[str, tuple[str, ...]], Decision]] = {}
        self._inbox: list[Pending] = []
        # Kept as the inbox changes (a handover under a flood asks after every action).
        self._inbox_updates = 0  # Updates waiting in the inbox
        self._inbox_bytes = 0  # payload bytes waiting in the inbox
        # Update id -> (refusal, None when applied; the version its events reach)
        self._answers: dict[str, tuple[str | None, int]] = {}
        self._messages = 0  # Signals and Updates taken in by this run
        self._handing_over = False  # continuing as new: new Updates are asked to retry
        if carried is not None:
            self._inbox = list(carried.inbox)
            self._inbox_updates = sum(p.update is not None for p in self._inbox)
            self._inbox_bytes = sum(p.size for p in self._inbox)
            if carried.state is not None:
                self._state = carried.state
                self._events = list(carried.recent)
            else:
                self._events = list(carried.events)
                self._state = fold(self._events)
            self._appended_seq = self._state.version if self._state is not None else 0
            if self._state is not None and carried.reminders_sent:
                # Runs of 0.2.0 carried the reminder count beside the state; now it is inside.
                self._state = replace(
                    self._state,
                    reminders_sent=carried.reminders_sent,
                    last_reminder_at=carried.last_reminder_at,
                )

    # --- run ----------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RawValue = NO_PAYLOAD, carried: Carried | None = None) -> TicketView:
        if self._release_0_3():
            self._v2 = self._teams = self._rules = True
        else:
            self._v2 = workflow.patched(RELEASE_0_2)
            self._teams = workflow.patched(TEAMS)
            self._uses_inbox()
            self._rules = workflow.patched(RULES)
        self._advance(workflow.now())
        appender = asyncio.create_task(self._append_loop())
        if self._state is None:
            await self._open(input)
        self._publish()
        while self._state is not None and not self._state.is_terminal:
            if not self._inbox:
                await self._wait_for_next_deadline()
            self._raise_if_fatal()
            await self._decide_inbox()
            self._record(decide(self._state, Tick(), self._clock()))
            await self._assign_if_due()
            if self._history_full():
                await self._hand_over()
                workflow.continue_as_new(
                    args=[
                        NO_PAYLOAD,
                        Carried(
                            state=self._state,
                            recent=self._recent(),
                            inbox=self._inbox,
                        ),
                    ]
                )
        await self._decide_inbox()  # what came with or after the close: refused, answered
        await self._drain()
        appender.cancel()
        assert self._state is not None
        return view(self._state)

    def _clock(self) -> datetime:
        """The time decisions use.

        `workflow.now()` right after a local activity resolves is not the same on replay when
        the workflow task was split meanwhile (a query arrived): live it is the new task's
        start, on replay the activity's completion. So (since RELEASE_0_2) decisions use
        the time of the last activation known to replay the same: the run's start, a signal or
        Update arriving, a timer firing.
        """
        if not self._v2 or self._clock_at is None:
            return workflow.now()
        return self._clock_at

    def _advance(self, now: datetime) -> datetime:
        """Move the decision clock forward to `now` (never back); returns the clock."""
        if self._clock_at is None or now > self._clock_at:
            self._clock_at = now
        return self._clock_at

    async def _open(self, input: RawValue) -> None:
        info = workflow.info()
        try:
            try:
                decoded = self._decode(input)
            except ValueError as exc:
                if isinstance(input, RawValue) and (
                    input.payload.metadata.get("encoding") == UNDECRYPTABLE
                ):
                    # Most likely this worker lacks a key its peers have: fail the task, so
                    # it is retried (by a worker that has the key), and say so.
                    raise RuntimeError(f"ticket input {exc}") from None
                raise InvalidTicket(f"input: {exc}") from None
            ticket = parse_open_ticket(decoded)
            if workflow_id_for(ticket.ticket_id) != info.workflow_id:
                raise InvalidTicket(
                    f"ticket_id: {ticket.ticket_id!r} does not match workflow id"
                    f" {info.workflow_id!r} (expected {workflow_id_for(ticket.ticket_id)!r})"
                )
        except InvalidTicket as exc:
            raise ApplicationError(str(exc), type="InvalidTicket", non_retryable=True) from None
        at_open = self._v3 or workflow.patched(STORE_AT_OPEN)
        if at_open and await self._resumed_from_store(ticket.ticket_id):
            return
        try:
            execute = (
                workflow.execute_local_activity_method
                if self._v2
                else workflow.execute_activity_method
            )
            policy = await execute(
                PolicyActivities.resolve_policy,
                ticket.policy,
                start_to_close_timeout=timedelta(seconds=10),
                summary=f"resolve policy {ticket.policy}",
            )
        except (ActivityError, ApplicationError) as exc:
            cause = _application_failure(exc)
            if cause is not None and cause.type == "UnknownPolicy":
                raise ApplicationError(
                    cause.message, type="InvalidTicket", non_retryable=True
                ) from None
            raise
        at = self._clock()
        try:
            opened = decide(None, Open(ticket=ticket, policy=policy, record_path=self._teams), at)
        except InvalidTicket as exc:  # a path its policy does not have
            raise ApplicationError(str(exc), type="InvalidTicket", non_retryable=True) from None
        self._record(opened, at)

    # --- teams: automatic assignment ------------------------------------------------------------

    async def _assign_if_due(self) -> None:
        """A team that assigns automatically has a choice due (entered, an ack timeout, the
        retry after nobody was available): a local activity chooses, the decider records it."""
        if not self._teams or self._state is None:
            return
        async with self._action_lock:
            due = choice_due(self._state)
            if due is None or due > self._clock():
                return
            request = choice_request(self._state)
            try:
                choice = await workflow.execute_local_activity_method(
                    AssignmentActivities.choose_assignee,
                    request,
                    start_to_close_timeout=timedelta(seconds=10),
                    schedule_to_close_timeout=timedelta(minutes=2),
                    summary=f"choose assignee at {request.team}",
                )
            except (ActivityError, ApplicationError) as exc:
                # Never stuck on the database: recorded as nobody available, tried again
                # after ack_within like any other.
                cause = _application_failure(exc)
                why = cause.message if cause is not None else str(exc.cause or exc)
                choice = Choice(agent_id=None, reason=f"the choice failed: {why}")
            self._record(
                decide(self._state, Assigned(request=request, choice=choice), self._clock())
            )

    @staticmethod
    def _teams_details(current: TicketView, policy: Policy) -> str:
        """The path and the assignee's acknowledgement, for the UI's current details."""
        a = current.assignment
        ack = "—"
        if a is not None and a.acknowledged_at is not None:
            ack = "acknowledged"
        elif a is not None and a.ack_due is not None:
            ack = f"ack due {local_time(a.ack_due, policy)}"
        elif a is not None and a.mode != "manual" and a.assignee is None:
            ack = f"{a.mode}: unassigned"
        return f" · path {current.path} · {ack}"

    async def _resumed_from_store(self, ticket_id: str) -> bool:
        """A ticket id the store already holds is never opened again. A fresh start for it is
        refused (the id was closed, or its workflow ended otherwise); a run that an operator's
        `temporal workflow reset` began takes up the ticket where the store has it, so the
        store's seq 1..n goes on and its stored events are never decided anew."""
        info = workflow.info()
        stored = await workflow.execute_local_activity_method(
            EventStoreActivities.stored_ticket,
            StoreLookup(
                ticket_id=ticket_id, fresh_start=info.run_id == info.first_execution_run_id
            ),
            start_to_close_timeout=timedelta(seconds=30),
            summary=f"look up ticket {ticket_id} in the event store",
        )
        if stored is None:
            return False
        if stored.fresh_start:
            raise ApplicationError(
                f"ticket_id: ticket {ticket_id} already exists in the event store"
                f" ({stored.state.version} events, status {stored.state.status}); ticket ids"
                " are not reused: open a new ticket id",
                type="InvalidTicket",
                non_retryable=True,
            )
        self._state = stored.state
        self._events = list(stored.recent)
        self._appended_seq = stored.state.version
        workflow.logger.info(
            "ticket %s resumed from the event store at seq %d", ticket_id, stored.state.version
        )
        return True

    def _history_full(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        if self._inbox_on and self._messages >= history_budget.CONTINUE_AS_NEW_MESSAGES:
            return True
        return self._v2 and (
            info.get_current_history_length() >= history_budget.CONTINUE_AS_NEW_EVENTS
            or info.get_current_history_size() >= history_budget.CONTINUE_AS_NEW_BYTES
        )

    # --- the inbox (patch INBOX) ------------------------------------------------------------------

    def _uses_inbox(self) -> bool:
        """Whether this run takes actions into the inbox: decided once, by whichever comes
        first (the run, or a Signal or Update sent with the start), so replay decides alike."""
        if self._inbox_on is None:
            self._inbox_on = self._release_0_3() or workflow.patched(INBOX)
        return self._inbox_on

    def _release_0_3(self) -> bool:
        """Asked first, by the run or a handler sent with the start; runs of earlier releases
        then ask for their own patches in their own order, as they recorded them."""
        if self._v3 is None:
            self._v3 = workflow.patched(RELEASE_0_3)
        return self._v3

    def _take_in(self, name: str, raw: RawValue, update: str | None = None) -> None:
        """O(1) for the run: the payload is read (or refused) now, decided by the main loop."""
        self._messages += 1
        size = len(raw.payload.data) if isinstance(raw, RawValue) else 0
        try:
            pending = Pending(name=name, value=self._decode(raw), update=update, size=size)
        except PayloadRefused as exc:
            pending = Pending(
                name=name, refused=f"{name}: {exc}", kept=exc.kept, update=update, size=size
            )
        # The handler's principal header travels with the action to the loop that decides it.
        pending.principal = current_principal()
        self._inbox.append(pending)
        self._inbox_updates += pending.update is not None
        self._inbox_bytes += pending.size
        self._changed = True

    async def _decide_inbox(self) -> None:
        """Decide every action taken in, in arrival order; each Update gets its answer."""
        while self._inbox and self._state is not None:
            await self._decide_next()

    async def _authorize_ahead(self) -> None:
        """When the next action needs the directory's answer, ask once for it and for the
        inbox's other actions that need one (a flood costs a local activity per batch)."""
        assert self._state is not None
        key = (self._state.tier, self._state.tiers)
        batch: list[tuple[Pending, AuthorizationRequest]] = []
        for n, pending in enumerate(itertools.islice(self._inbox, AUTHORIZE_BATCH_MAX)):
            known = self._authorized.get(id(pending))
            request = None if known and known[0] == key else self._request_for(pending)
            if n == 0 and request is None:
                return  # the next action needs no (new) answer
            if request is not None:
                batch.append((pending, request))
        decisions = await workflow.execute_local_activity_method(
            AgentActivities.authorize_batch,
            [request for _, request in batch],
            start_to_close_timeout=timedelta(seconds=10),
            summary=f"authorize {len(batch)} action(s)",
        )
        for (pending, _), decision in zip(batch, decisions, strict=True):
            self._authorized[id(pending)] = (key, decision)

    def _request_for(self, pending: Pending) -> AuthorizationRequest | None:
        """The authorization request of an inbox entry; None when it needs none (refused on
        arrival, does not parse, or the customer's own action)."""
        if pending.refused is not None:
            return None
        try:
            action = parse_action(pending.name, pending.value)
        except DomainError:
            return None
        return self._authorization_request(pending.name, action, pending.principal)

    async def _decide_next(self) -> None:
        if self._v3:
            await self._authorize_ahead()
        pending = self._inbox.pop(0)
        self._inbox_updates -= pending.update is not None
        self._inbox_bytes -= pending.size
        refusal = await self._decide_pending(pending)
        self._authorized.pop(id(pending), None)
        if pending.update is not None:
            assert self._state is not None
            self._answers[pending.update] = (refusal, self._state.version)

    async def _decide_pending(self, pending: Pending) -> str | None:
        """Record the action's events, or its refusal (a Signal's as ActionRejected); returns
        the refusal's reason, None when applied."""
        assert self._state is not None
        name = pending.name
        if pending.refused is not None:
            if pending.update is None:
                self._record([reject(name, pending.refused, pending.kept)])
            return pending.refused
        try:
            action = parse_action(name, pending.value)
            # Authorized every time: a request id already used never skips the directory.
            decision = self._authorized_ahead(pending) or await self._authorize(
                name, action, pending.principal
            )
            if not decision.allowed:
                raise ActionRejected(decision.reason or f"{name}: not authorized")
            fresh = bool(action.request_id) and action.request_id not in self._state.request_ids
            payloads = decide(self._state, action, self._clock())
        except DomainError as exc:
            if pending.update is None:
                self._record([reject(name, str(exc), _bounded(pending.value))])
            return str(exc)
        self._record(payloads)
        if fresh and action.request_id in self._state.request_ids:
            assert action.request_id is not None
            self._state = request_used(self._state, action.request_id, request_use(action))
        return None

    async def _hand_over(self) -> None:
        """Before continuing as new: answer every Update taken in (new ones are asked to retry,
        see _validate) and store every event; Signals still arriving are carried."""
        self._handing_over = True
        while True:
            while self._inbox_blocks_handover():
                await self._decide_next()
            await self._drain()
            # Signals kept arriving while the events were stored: decide them too, until
            # what is left to carry fits (no await between this check and the handover).
            if not self._inbox_blocks_handover():
                return

    def _inbox_blocks_handover(self) -> bool:
        """An Update still waits for its answer, or the inbox is too big to carry."""
        return self._inbox_updates > 0 or self._inbox_bytes > history_budget.CARRIED_INBOX_BYTES

    def _recent(self) -> list[ev.DomainEvent]:
        """The last events a continued run keeps for its `history` query: at most
        CARRIED_EVENTS and (patch INBOX) CARRIED_EVENT_BYTES of payloads, so the handover's
        input stays well under the server's blob limit whatever the tickets' texts."""
        recent = self._events[-history_budget.CARRIED_EVENTS :]
        if not self._inbox_on:
            return recent
        size, keep = 0, 0
        for event in reversed(recent):
            size += len(json.dumps(event.payload, default=str))
            if size > history_budget.CARRIED_EVENT_BYTES:
                break
            keep += 1
        return recent[len(recent) - keep :]

    async def _wait_for_next_deadline(self) -> None:
        """Sleep until the next SLA deadline or reminder, or until anything changes."""
        assert self._state is not None
        self._changed = False
        upcoming = deadlines(self._state)
        reminder_at = renotify_due(self._state)
        if reminder_at is not None:
            upcoming.append(("resolution breach reminder", reminder_at))
            upcoming.sort(key=lambda d: d[1])

        def woken() -> bool:
            return self._changed or self._fatal is not None or self._history_full()

        if self._v2:
            await self._sleep_until(upcoming[0] if upcoming else None, woken)
        elif upcoming:
            name, due = upcoming[0]
            delay = due - workflow.now()
            if delay > timedelta(0):
                summary = f"{name} · {self._state.tier} · due {local_time(due, self._state.policy)}"
                try:
                    await workflow.wait_condition(woken, timeout=delay, timeout_summary=summary)
                except TimeoutError:
                    pass  # the deadline came: the caller decides what is due
        else:
            await workflow.wait_condition(woken)
        if reminder_at is not None and self._clock() >= reminder_at:
            self._state = reminded(self._state, reminder_at)
            self._notices.append(reminder(self._state, reminder_at))

    async def _sleep_until(
        self, deadline: tuple[str, datetime] | None, woken: Callable[[], bool]
    ) -> None:
        """Wait for `deadline` or a change. The one timer outlives changes that leave the next
        due time where it was (an assign, a refused action): re-arming costs history events."""
        assert self._state is not None
        due = deadline[1] if deadline else None
        if due is not None and due <= self._clock():
            return
        if due != self._timer_due:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_due = None, due
            if deadline is not None and due is not None:
                summary = f"{deadline[0]} · {self._state.tier} · due"
                summary += f" {local_time(due, self._state.policy)}"
                self._timer = asyncio.create_task(self._alarm(due, summary))
        timer = self._timer
        await workflow.wait_condition(lambda: woken() or (timer is not None and timer.done()))
        if timer is not None and timer.done():
            self._timer, self._timer_due = None, None

    async def _alarm(self, due: datetime, summary: str) -> None:
        # A duration that differs on replay is harmless (timers are matched by sequence); a
        # due time already past still gets a real timer, so the clock moves in a new task.
        delay = max(due - workflow.now(), timedelta(milliseconds=1))
        await workflow.sleep(delay, summary=summary)
        self._advance(max(workflow.now(), due))

    async def _drain(self) -> None:
        """Wait until every event is stored, notices sent and handlers done."""
        await workflow.wait_condition(
            lambda: (
                self._fatal is not None
                or (
                    not self._outbox
                    and not self._notices
                    and not self._sending
                    and not self._notifying
                    and workflow.all_handlers_finished()
                )
            )
        )
        self._raise_if_fatal()

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # --- recording and storing ------------------------------------------------------------------

    def _record(self, payloads: list[ev.EventPayload], at: datetime | None = None) -> None:
        if not payloads:
            return
        now = at or self._clock()
        ticket_id = self._ticket_id()
        for data in payloads:
            event = ev.DomainEvent(
                ticket_id=ticket_id,
                seq=(self._state.version if self._state is not None else 0) + 1,
                event_id=workflow.uuid4(),
                event_type=data.event_type,
                payload=ev.recorded_payload(data),  # a TicketOpened's policy shared
                occurred_at=now,
            )
            self._state = evolve(self._state, event)
            self._events.append(event)
            self._outbox.append(event)
            self._notices.extend(notifications_for(self._state, event))
        self._changed = True
        self._publish()

    def _ticket_id(self) -> str:
        if self._state is not None:
            return self._state.ticket_id
        return workflow.info().workflow_id.removeprefix("ticket-")

    def _next_batch(self) -> list[ev.DomainEvent]:
        """The next events to append, in seq order: at most APPEND_BATCH_MAX and (patch INBOX)
        APPEND_BATCH_BYTES of payloads, at least one."""
        batch = self._outbox[:APPEND_BATCH_MAX]
        if not self._inbox_on:
            return batch
        size = 0
        for n, event in enumerate(batch):
            size += len(json.dumps(event.payload, default=str))
            if n and size > history_budget.APPEND_BATCH_BYTES:
                return batch[:n]
        return batch

    async def _append_loop(self) -> None:
        """The one writer: batches in seq order, then the notices those events caused."""
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox) or bool(self._notices))
            if self._outbox:
                batch = self._next_batch()
                try:
                    await workflow.execute_activity_method(
                        EventStoreActivities.append_events,
                        AppendBatch(ticket_id=batch[0].ticket_id, events=batch),
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=APPEND_RETRY,
                        summary=_append_summary(batch),
                    )
                except (ActivityError, ApplicationError) as exc:
                    cause = _application_failure(exc)
                    message = cause.message if cause is not None else str(exc)
                    self._fatal = ApplicationError(
                        f"event store refused events of ticket {batch[0].ticket_id}: {message}",
                        type="EventStoreFailed",
                        non_retryable=True,
                    )
                    return
                del self._outbox[: len(batch)]
                self._appended_seq = batch[-1].seq
                continue
            notices, self._notices = self._notices, []
            if self._v2:
                # Sent alongside later appends: a notify stuck on a dead worker (until its
                # timeout) must not hold up the ticket's next events.
                for notice in notices:
                    task = asyncio.create_task(self._notify(notice))
                    self._notifying.add(task)  # drain waits on it; the loop holds weak refs
                    task.add_done_callback(self._notifying.discard)
                continue
            self._sending = len(notices)
            await asyncio.gather(*(self._notify(n) for n in notices))
            self._sending = 0

    async def _notify(self, notice: Notification) -> None:
        try:
            await workflow.execute_activity_method(
                EventStoreActivities.notify,
                notice,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=NOTIFY_RETRY,
                summary=f"notify {notice.tier}: {notice.kind}",
            )
        except ActivityError as exc:
            # A notice that cannot be delivered must never stop the ticket's clocks.
            workflow.logger.warning(
                "notification %s for %s dropped: %s", notice.kind, notice.ticket_id, exc
            )

    # --- search attributes and UI ---------------------------------------------------------------

    def _publish(self) -> None:
        """Keep search attributes and the UI's current details in step with the state."""
        if self._state is None:
            return
        current = view(self._state)
        wanted: dict[str, Any] = {
            sa.TICKET_STATUS.name: current.status,
            sa.TICKET_PRIORITY.name: current.priority,
            sa.TICKET_TIER.name: current.tier,
            sa.TICKET_ASSIGNEE.name: current.assignee,
            sa.TICKET_CUSTOMER.name: current.customer_id,
            sa.SLA_BREACHED.name: bool(current.sla.breaches),
            sa.TICKET_SLA_DUE.name: current.sla.nearest_due(),
        }
        if self._teams:
            wanted[sa.TICKET_PATH.name] = current.path
        if self._rules:
            wanted[sa.TICKET_TAGS.name] = list(current.tags) or None
        updates: list[SearchAttributeUpdate[Any]] = []
        for key in sa.ALL_KEYS:
            if key.name not in wanted:
                continue
            value = wanted[key.name]
            if key.name in self._search_attributes and self._search_attributes[key.name] == value:
                continue
            self._search_attributes[key.name] = value
            updates.append(key.value_unset() if value is None else key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)
        due = current.sla.nearest_due()
        workflow.set_current_details(
            f"**{current.status}** · tier {current.tier} · "
            f"assignee {current.assignee or '—'} · "
            f"next due {local_time(due, self._state.policy) if due else '—'}"
            + (self._teams_details(current, self._state.policy) if self._teams else "")
        )

    # --- actions --------------------------------------------------------------------------------

    def _decode(self, raw: RawValue | Any) -> Any:
        """A payload as JSON values; ValueError, naming why, for one that is too large, does
        not decrypt (the worker's codec marked it) or does not parse."""
        # The SDK hands over RawValue only when the argument count matches the signature
        # (a one-argument start of the two-parameter run gets the decoded value itself).
        if not isinstance(raw, RawValue):
            return raw
        payload = raw.payload
        if payload.metadata.get("encoding") == UNDECRYPTABLE:
            raise PayloadRefused(
                f"payload does not decrypt ({payload.data.decode('utf-8', 'replace')})"
            )
        if len(payload.data) > MAX_PAYLOAD_BYTES:
            raise PayloadRefused(
                f"payload of {len(payload.data)} bytes is over the {MAX_PAYLOAD_BYTES} allowed",
                {"truncated": payload.data[:REJECTED_PAYLOAD_MAX].decode("utf-8", "replace")},
            )
        try:
            return workflow.payload_converter().from_payload(payload)
        except Exception as exc:  # what the converter raises for bad JSON varies
            raise PayloadRefused(f"payload does not decode: {exc}") from None

    async def _opened(self) -> TicketState:
        """Actions sent with the start (signal- or update-with-start) wait for the ticket."""
        await workflow.wait_condition(lambda: self._state is not None or self._fatal is not None)
        self._raise_if_fatal()
        assert self._state is not None
        return self._state

    async def _authorize(self, name: str, action: Action, principal: str | None = None) -> Decision:
        """Ask the agent directory, and check the signed principal the caller's header
        carried (workflows/principal.py; taken in with the action under the inbox, else the
        handler's own); the answer is recorded in history, so replay is exact and never
        needs a key."""
        request = self._authorization_request(name, action, principal)
        if request is None:
            return Decision(allowed=True, directory=False)
        return await workflow.execute_local_activity_method(
            AgentActivities.authorize,
            request,
            start_to_close_timeout=timedelta(seconds=10),
            summary=f"authorize {request.agent_id}: {name}",
        )

    def _authorized_ahead(self, pending: Pending) -> Decision | None:
        """authorize_batch's answer for this entry, if given for the ticket's tier and path."""
        assert self._state is not None
        known = self._authorized.get(id(pending))
        if known is None or known[0] != (self._state.tier, self._state.tiers):
            return None
        return known[1]

    def _authorization_request(
        self, name: str, action: Action, principal: str | None
    ) -> AuthorizationRequest | None:
        """None for the customer's own actions (customer_replied, reopen by them)."""
        agent_id = getattr(action, "agent_id", None)
        if agent_id is None:
            return None
        assert self._state is not None
        return AuthorizationRequest(
            ticket_id=self._state.ticket_id,
            action=name,
            agent_id=agent_id,
            assignee=action.assignee if isinstance(action, Assign) else None,
            tier=self._state.tier,
            tiers=self._state.tiers,
            workflow_id=workflow.info().workflow_id,
            principal=principal or current_principal(),
            digest=payload_digest(action.model_dump(mode="json", exclude_none=True)),
        )

    async def _apply_signal(self, name: str, raw: RawValue) -> None:
        self._advance(workflow.now())  # the arrival: a time replay reproduces
        if self._uses_inbox():
            self._take_in(name, raw)
            return
        await self._opened()
        async with self._action_lock:
            assert self._state is not None
            try:
                decoded = self._decode(raw)
            except PayloadRefused as exc:  # refused, never fatal
                self._record([reject(name, f"{name}: {exc}", exc.kept)])
                return
            try:
                action = parse_action(name, decoded)
                if not self._already_applied(action):
                    decision = await self._authorize(name, action)
                    if not decision.allowed:
                        raise ActionRejected(decision.reason or f"{name}: not authorized")
                payloads = decide(self._state, action, self._clock())
            except DomainError as exc:
                payloads = [reject(name, str(exc), _bounded(decoded))]
            self._record(payloads)

    def _already_applied(self, action: Action) -> bool:
        assert self._state is not None
        return bool(action.request_id) and action.request_id in self._state.request_ids

    def _validate(self, name: str, raw: RawValue) -> None:
        """Update validator: refuse before anything is written to history."""
        if self._handing_over:
            # A retry reaches the continued run (the client keeps the request_id).
            raise ApplicationError(
                f"ticket is moving to a new run (continue-as-new); send {name} again",
                type="TicketBusy",
                non_retryable=True,
            )
        try:
            action = parse_action(name, self._decode(raw))
            if self._state is not None:
                decide(self._state, action, workflow.now())
        except DomainError as exc:
            raise ApplicationError(str(exc), type="ActionRejected", non_retryable=True) from None
        except PayloadRefused as exc:
            raise ApplicationError(
                f"{name}: {exc}", type="ActionRejected", non_retryable=True
            ) from None
        except Exception as exc:
            raise ApplicationError(
                f"{name}: payload does not decode: {exc}", type="ActionRejected", non_retryable=True
            ) from None

    async def _apply_update(self, name: str, raw: RawValue) -> TicketView:
        self._advance(workflow.now())  # the arrival: a time replay reproduces
        if self._uses_inbox():
            return await self._update_through_inbox(name, raw)
        await self._opened()
        async with self._action_lock:
            assert self._state is not None
            try:
                action = parse_action(name, self._decode(raw))
                if not self._already_applied(action):
                    decision = await self._authorize(name, action)
                    if not decision.allowed:
                        raise ActionRejected(decision.reason or f"{name}: not authorized")
                payloads = decide(self._state, action, self._clock())
            except ActionRejected as exc:
                raise ApplicationError(
                    str(exc), type="ActionRejected", non_retryable=True
                ) from None
            self._record(payloads)
            version = self._state.version
        await workflow.wait_condition(
            lambda: self._appended_seq >= version or self._fatal is not None
        )
        self._raise_if_fatal()
        return view(self._state)

    async def _update_through_inbox(self, name: str, raw: RawValue) -> TicketView:
        """Take the Update in, wait for the main loop's answer, then for its events stored."""
        info = workflow.current_update_info()
        assert info is not None  # inside an Update handler
        key = info.id
        self._take_in(name, raw, update=key)
        await workflow.wait_condition(lambda: key in self._answers or self._fatal is not None)
        self._raise_if_fatal()
        refusal, version = self._answers.pop(key)
        if refusal is not None:
            raise ApplicationError(refusal, type="ActionRejected", non_retryable=True)
        assert self._state is not None
        await workflow.wait_condition(
            lambda: self._appended_seq >= version or self._fatal is not None
        )
        self._raise_if_fatal()
        return view(self._state)

    # Every action is a Signal (fire and forget; refusals become ActionRejected events) and an
    # Update (validated first; returns the TicketView once the events are stored).

    @workflow.signal(name="assign")
    async def assign_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("assign", payload)

    @workflow.update(name="assign")
    async def assign(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("assign", payload)

    @assign.validator
    def _assign_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("assign", payload)

    @workflow.signal(name="respond")
    async def respond_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("respond", payload)

    @workflow.update(name="respond")
    async def respond(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("respond", payload)

    @respond.validator
    def _respond_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("respond", payload)

    @workflow.signal(name="request_escalation")
    async def request_escalation_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("request_escalation", payload)

    @workflow.update(name="request_escalation")
    async def request_escalation(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("request_escalation", payload)

    @request_escalation.validator
    def _request_escalation_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("request_escalation", payload)

    @workflow.signal(name="await_customer")
    async def await_customer_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("await_customer", payload)

    @workflow.update(name="await_customer")
    async def await_customer(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("await_customer", payload)

    @await_customer.validator
    def _await_customer_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("await_customer", payload)

    @workflow.signal(name="customer_replied")
    async def customer_replied_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("customer_replied", payload)

    @workflow.update(name="customer_replied")
    async def customer_replied(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("customer_replied", payload)

    @customer_replied.validator
    def _customer_replied_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("customer_replied", payload)

    @workflow.signal(name="change_priority")
    async def change_priority_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("change_priority", payload)

    @workflow.update(name="change_priority")
    async def change_priority(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("change_priority", payload)

    @change_priority.validator
    def _change_priority_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("change_priority", payload)

    @workflow.signal(name="resolve")
    async def resolve_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("resolve", payload)

    @workflow.update(name="resolve")
    async def resolve(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("resolve", payload)

    @resolve.validator
    def _resolve_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("resolve", payload)

    @workflow.signal(name="reopen")
    async def reopen_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("reopen", payload)

    @workflow.update(name="reopen")
    async def reopen(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("reopen", payload)

    @reopen.validator
    def _reopen_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("reopen", payload)

    @workflow.signal(name="close")
    async def close_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("close", payload)

    @workflow.update(name="close")
    async def close(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("close", payload)

    @close.validator
    def _close_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("close", payload)

    @workflow.signal(name="transfer")
    async def transfer_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("transfer", payload)

    @workflow.update(name="transfer")
    async def transfer(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("transfer", payload)

    @transfer.validator
    def _transfer_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("transfer", payload)

    @workflow.signal(name="acknowledge")
    async def acknowledge_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("acknowledge", payload)

    @workflow.update(name="acknowledge")
    async def acknowledge(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("acknowledge", payload)

    @acknowledge.validator
    def _acknowledge_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("acknowledge", payload)

    @workflow.signal(name="tag")
    async def tag_signal(self, payload: RawValue = NO_PAYLOAD) -> None:
        await self._apply_signal("tag", payload)

    @workflow.update(name="tag")
    async def tag(self, payload: RawValue = NO_PAYLOAD) -> TicketView:
        return await self._apply_update("tag", payload)

    @tag.validator
    def _tag_ok(self, payload: RawValue = NO_PAYLOAD) -> None:
        self._validate("tag", payload)

    # --- queries --------------------------------------------------------------------------------

    @workflow.query(name="state")
    def state(self) -> TicketView | None:
        return view(self._state) if self._state is not None else None

    @workflow.query(name="history")
    def history(self) -> list[ev.DomainEvent]:
        """Every event, unless the ticket continued as new: then the last few before it
        (history_budget.CARRIED_EVENTS) and this run's; the event store has every one."""
        return list(self._events)


def _application_failure(exc: ActivityError | ApplicationError) -> ApplicationError | None:
    """The activity's own error: a failed activity raises ActivityError with it as the cause,
    a failed local activity raises it directly."""
    if isinstance(exc, ApplicationError):
        return exc
    return exc.cause if isinstance(exc.cause, ApplicationError) else None


def _append_summary(batch: list[ev.DomainEvent]) -> str:
    """`append 1 event (seq 4)`, `append 3 events (seq 5-7)`: readable in the UI's timeline."""
    if len(batch) == 1:
        return f"append 1 event (seq {batch[0].seq})"
    return f"append {len(batch)} events (seq {batch[0].seq}-{batch[-1].seq})"


def _bounded(raw: Any) -> Any:
    """A refused payload as recorded: whole if small and shallow, else a truncated JSON
    string, which the store can always hold and give back."""
    if payload_depth(raw) > MAX_PAYLOAD_DEPTH:
        return {"truncated": json.dumps(raw, default=str)[:REJECTED_PAYLOAD_MAX]}
    text = json.dumps(raw, default=str)
    if len(text) <= REJECTED_PAYLOAD_MAX:
        return raw
    return {"truncated": text[:REJECTED_PAYLOAD_MAX]}
