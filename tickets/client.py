"""`TicketClient`: what an agent's tool or a backend service needs, over plain Temporal calls.

- `open` starts the ticket's workflow or returns the running one (tickets/opening.py: id
  conflict policy *use existing*), then returns its `TicketView` once the ticket exists; an
  existing ticket with other input is a `TicketConflict`.
- one method per action, each an Update: the caller learns at once whether the action was
  accepted, and gets the ticket's view after it.
- `show`, `history` (queries) and `list` (visibility, over the search attributes).

Errors are the typed ones of tickets.errors, never a raw RPC error.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.commands import ACTIONS, OpenTicket, parse_open_ticket
from domain.errors import InvalidTicket, describe_validation_error
from domain.events import DomainEvent
from domain.policy import Priority
from domain.view import TicketView
from runtime.config import Settings
from runtime.temporal import connect, connect_options
from tickets.errors import (
    ActionRejected,
    CannotConnect,
    InvalidInput,
    ServerBusy,
    TicketClosed,
    TicketConflict,
    TicketError,
    TicketNotFound,
)
from tickets.opening import TicketClosedError, input_differences, open_ticket
from workflows import search_attributes as sa
from workflows.ticket import WORKFLOW_TYPE, workflow_id_for

T = TypeVar("T")

OPEN_WAIT_SECONDS = 10.0  # the ticket exists once its policy is resolved: a few ms normally
# An action is sent again after a transport error or a handover, with the same request_id:
# up to ACT_ATTEMPTS times, ACT_BACKOFF seconds before the first retry, doubled up to
# ACT_BACKOFF_MAX: about half a minute in all when Temporal cannot be reached. A ticket that
# is busy (handing over to its next run, its workflow task retried, too many Updates in
# flight) gets BUSY_ATTEMPTS, about a minute and a half: under a flood it answers, in time.
ACT_ATTEMPTS = 10
BUSY_ATTEMPTS = 24
ACT_BACKOFF = 0.2
ACT_BACKOFF_MAX = 5.0


class Opened(BaseModel):
    """What an open found: the ticket's view, and whether this call started it."""

    view: TicketView
    created: bool


class TicketSummary(BaseModel):
    """One row of `list`: the ticket id and its search attributes (as visibility has them)."""

    ticket_id: str
    workflow_id: str
    execution_status: str  # running, completed, terminated, ...
    status: str | None
    priority: str | None
    tier: str | None
    assignee: str | None
    customer_id: str | None
    sla_breached: bool | None
    sla_due: datetime | None
    started_at: datetime | None
    closed_at: datetime | None
    path: str | None = None  # v2 (TicketPath); unset on tickets started before paths
    tags: list[str] = []  # v2 (TicketTags)


def _reason(exc: BaseException) -> str:
    """The gist of a connection error (the SDK's text nests transport details)."""
    text = str(exc)
    found = re.search(r'message: "([^"]+)"', text)
    if found:
        return found.group(1).lower()
    return text if len(text) <= 200 else text[:200] + "..."


def _task_retrying(text: str) -> bool:
    """The server refused an Update while the ticket's workflow task is being retried: the
    run continuing as new met Signals that arrived meanwhile (UnhandledCommand), which the
    next attempt takes in. Nothing was applied; sending it again is right."""
    lowered = text.lower()
    return (
        "workflow task in failed state" in lowered
        or "unexpected workflow task failure" in lowered
        # The run the Update was sent to handed over (continue-as-new) before it was accepted.
        or "workflow update was aborted" in lowered
    )


def ticket_id_of(workflow_id: str) -> str:
    return workflow_id.removeprefix("ticket-")


def _ticket_query(query: str) -> str:
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
    if query.strip():
        clauses.append(f"({query})")
    return " AND ".join(clauses)


def summary_of(wf: WorkflowExecution) -> TicketSummary:
    attrs = wf.typed_search_attributes
    return TicketSummary(
        ticket_id=ticket_id_of(wf.id),
        workflow_id=wf.id,
        execution_status=wf.status.name.lower() if wf.status else "unknown",
        status=attrs.get(sa.TICKET_STATUS),
        priority=attrs.get(sa.TICKET_PRIORITY),
        tier=attrs.get(sa.TICKET_TIER),
        assignee=attrs.get(sa.TICKET_ASSIGNEE),
        customer_id=attrs.get(sa.TICKET_CUSTOMER),
        sla_breached=attrs.get(sa.SLA_BREACHED),
        sla_due=attrs.get(sa.TICKET_SLA_DUE),
        path=attrs.get(sa.TICKET_PATH),
        tags=list(attrs.get(sa.TICKET_TAGS) or []),
        started_at=wf.start_time,
        closed_at=wf.close_time,
    )


class TicketClient:
    """A thin client for tickets on one namespace and task queue."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> TicketClient:
        """Connect as configured by the environment (TEMPORAL_ADDRESS, ...); CannotConnect."""
        settings = settings or Settings.from_env()
        try:
            client = await connect(settings)
        except ConnectionError as exc:
            target = connect_options(settings)["target_host"]
            raise CannotConnect(
                f"cannot connect to Temporal at {target} ({_reason(exc.__cause__ or exc)})."
                " Is the server running? `python3 dev.py up` starts one;"
                " TEMPORAL_ADDRESS (or --address) points elsewhere"
            ) from exc
        return cls(client, settings.task_queue)

    @property
    def address(self) -> str:
        return self.client.service_client.config.target_host

    def handle(self, ticket_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(workflow_id_for(ticket_id))

    # --- opening ------------------------------------------------------------------------------

    async def open(self, ticket: OpenTicket | dict[str, Any]) -> TicketView:
        """Open the ticket, or return the running one with this id (idempotent)."""
        return (await self.open_or_find(ticket)).view

    async def open_or_find(self, ticket: OpenTicket | dict[str, Any]) -> Opened:
        """Open the ticket, or find the running one with this id and the same input; an
        existing ticket with other input raises TicketConflict naming each difference."""
        try:
            parsed = parse_open_ticket(ticket)
        except InvalidTicket as exc:
            raise InvalidInput(f"invalid ticket: {exc}") from exc
        existed = await self._running(parsed.ticket_id)
        try:
            handle = await self._call(
                parsed.ticket_id, open_ticket(self.client, parsed, self.task_queue)
            )
        except TicketClosedError as exc:
            raise TicketClosed(
                f"ticket {parsed.ticket_id} is closed (ticket ids are not reused;"
                " open a new ticket id)"
            ) from exc
        view = await self._wait_opened(parsed.ticket_id, handle)
        differences = input_differences(view, parsed)
        if differences:
            raise TicketConflict(
                f"ticket {parsed.ticket_id} already exists with other input; nothing was"
                " changed: " + "; ".join(differences)
            )
        return Opened(view=view, created=not existed)

    async def _running(self, ticket_id: str) -> bool:
        """Whether the ticket's workflow runs now (a race with another open only makes a
        ticket this call found look created: the input comparison still holds)."""
        try:
            description = await self.handle(ticket_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise self._rpc_error(ticket_id, exc) from exc
        return description.status == WorkflowExecutionStatus.RUNNING

    async def _wait_opened(self, ticket_id: str, handle: WorkflowHandle[Any, Any]) -> TicketView:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OPEN_WAIT_SECONDS
        delay = 0.005
        while True:
            state = await self._call(ticket_id, handle.query("state"))
            if state is not None:
                return TicketView.model_validate(state)
            status = (await self._call(ticket_id, handle.describe())).status
            if status != WorkflowExecutionStatus.RUNNING:
                await self._raise_start_failure(ticket_id, handle, status)
            if loop.time() > deadline:
                raise TicketError(
                    f"ticket {ticket_id} was started but did not open within "
                    f"{OPEN_WAIT_SECONDS:.0f}s: is a worker polling task queue "
                    f"{self.task_queue!r}?"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _raise_start_failure(
        self, ticket_id: str, handle: WorkflowHandle[Any, Any], status: Any
    ) -> None:
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == "InvalidTicket":
                raise InvalidInput(f"invalid ticket: {cause.message}") from exc
            raise TicketError(f"ticket {ticket_id} failed to open: {cause}") from exc
        name = status.name.lower() if status is not None else "gone"
        raise TicketClosed(f"ticket {ticket_id} is no longer running ({name})")

    # --- actions ------------------------------------------------------------------------------

    async def act(self, ticket_id: str, action: str, **fields: Any) -> TicketView:
        """Run one action (an Update by that name); fields that are None are left out.

        Without a `request_id` the action gets a new one, and every retry after a transport
        error (server unavailable, overloaded, the Update's RPC timing out) sends the same:
        an action whose first attempt was applied is then a no-op, never applied twice."""
        model = ACTIONS.get(action)
        if model is None:
            raise InvalidInput(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        payload = {k: v for k, v in fields.items() if v is not None}
        payload.setdefault("request_id", f"tc-{uuid.uuid4()}")
        try:
            validated = model.model_validate(payload)
        except ValidationError as exc:
            raise InvalidInput(f"{action}: {describe_validation_error(exc)}") from exc
        body = validated.model_dump(mode="json", exclude_none=True)
        handle = self.handle(ticket_id)
        try:
            for attempt in range(1, BUSY_ATTEMPTS + 1):
                try:
                    result = await self._call(ticket_id, handle.execute_update(action, body))
                    break
                except (CannotConnect, WorkflowUpdateRPCTimeoutOrCancelledError):
                    if attempt >= ACT_ATTEMPTS:
                        raise
                except ServerBusy:
                    if attempt == BUSY_ATTEMPTS:
                        raise
                except WorkflowUpdateFailedError as exc:
                    # The ticket is moving to its next run (continue-as-new): send it again.
                    moving = isinstance(exc.cause, ApplicationError) and (
                        exc.cause.type == "TicketBusy"
                    )
                    if not moving or attempt == BUSY_ATTEMPTS:
                        raise
                await asyncio.sleep(min(ACT_BACKOFF * 2 ** (attempt - 1), ACT_BACKOFF_MAX))
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == "ActionRejected":
                raise ActionRejected(cause.message) from exc
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise TicketError(f"ticket {ticket_id}: {action} failed: {message}") from exc
        except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
            raise TicketError(
                f"ticket {ticket_id}: {action} timed out waiting for the worker"
                f" (is a worker polling task queue {self.task_queue!r}?)"
            ) from exc
        return TicketView.model_validate(result)

    async def assign(
        self,
        ticket_id: str,
        agent_id: str,
        assignee: str | None = None,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id, "assign", agent_id=agent_id, assignee=assignee, request_id=request_id
        )

    async def respond(
        self,
        ticket_id: str,
        agent_id: str,
        message: str | None = None,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id, "respond", agent_id=agent_id, message=message, request_id=request_id
        )

    async def request_escalation(
        self,
        ticket_id: str,
        agent_id: str,
        reason: str,
        to_tier: str | None = None,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id,
            "request_escalation",
            agent_id=agent_id,
            reason=reason,
            to_tier=to_tier,
            request_id=request_id,
        )

    escalate = request_escalation

    async def await_customer(
        self,
        ticket_id: str,
        agent_id: str,
        message: str | None = None,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id, "await_customer", agent_id=agent_id, message=message, request_id=request_id
        )

    async def customer_replied(
        self, ticket_id: str, message: str | None = None, request_id: str | None = None
    ) -> TicketView:
        return await self.act(ticket_id, "customer_replied", message=message, request_id=request_id)

    async def change_priority(
        self,
        ticket_id: str,
        agent_id: str,
        priority: Priority,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id,
            "change_priority",
            agent_id=agent_id,
            priority=priority,
            reason=reason,
            request_id=request_id,
        )

    async def resolve(
        self,
        ticket_id: str,
        agent_id: str,
        resolution: str,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id, "resolve", agent_id=agent_id, resolution=resolution, request_id=request_id
        )

    async def reopen(
        self,
        ticket_id: str,
        agent_id: str | None = None,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id, "reopen", agent_id=agent_id, reason=reason, request_id=request_id
        )

    async def close(
        self, ticket_id: str, agent_id: str, request_id: str | None = None
    ) -> TicketView:
        return await self.act(ticket_id, "close", agent_id=agent_id, request_id=request_id)

    async def transfer(
        self,
        ticket_id: str,
        agent_id: str,
        path: str,
        reason: str,
        to_tier: str | None = None,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id,
            "transfer",
            agent_id=agent_id,
            path=path,
            reason=reason,
            to_tier=to_tier,
            request_id=request_id,
        )

    async def acknowledge(
        self, ticket_id: str, agent_id: str, request_id: str | None = None
    ) -> TicketView:
        return await self.act(ticket_id, "acknowledge", agent_id=agent_id, request_id=request_id)

    async def tag(
        self,
        ticket_id: str,
        agent_id: str,
        add: list[str] | None = None,
        remove: list[str] | None = None,
        request_id: str | None = None,
    ) -> TicketView:
        return await self.act(
            ticket_id,
            "tag",
            agent_id=agent_id,
            add=add or [],
            remove=remove or [],
            request_id=request_id,
        )

    # --- reading ------------------------------------------------------------------------------

    async def show(self, ticket_id: str) -> TicketView:
        """The ticket's current view (the `state` query); closed tickets too. When the latest
        run never opened it (a refused start of an id already used), the run that did."""
        state = await self._call(ticket_id, self.handle(ticket_id).query("state"))
        if state is None:
            state = await self._state_of_an_earlier_run(ticket_id)
        if state is None:
            raise TicketNotFound(f"ticket {ticket_id} not found (its workflow never opened it)")
        return TicketView.model_validate(state)

    async def _state_of_an_earlier_run(self, ticket_id: str) -> Any:
        query = f"WorkflowId = '{workflow_id_for(ticket_id)}'"
        async for run in self.client.list_workflows(query, limit=20):  # newest first
            handle = self.client.get_workflow_handle(run.id, run_id=run.run_id)
            try:
                state = await handle.query("state")
            except (RPCError, WorkflowQueryFailedError):
                continue
            if state is not None:
                return state
        return None

    async def history(self, ticket_id: str) -> builtins.list[DomainEvent]:
        """The ticket's domain events in order, as stored (the `history` query)."""
        events = await self._call(ticket_id, self.handle(ticket_id).query("history"))
        return [DomainEvent.model_validate(e) for e in events or []]

    async def list(self, query: str = "", limit: int | None = 100) -> builtins.list[TicketSummary]:
        """Tickets matching a visibility query over the search attributes
        (docs/contract.md#search-attributes), e.g. `TicketTier='L2' AND TicketStatus='open'`.
        Only TicketWorkflow runs are returned."""
        full = _ticket_query(query)
        try:
            return [summary_of(wf) async for wf in self.client.list_workflows(full, limit=limit)]
        except RPCError as exc:
            raise self._list_error(full, exc) from exc

    async def page(
        self, query: str = "", size: int = 50, token: bytes | None = None
    ) -> tuple[builtins.list[TicketSummary], bytes | None]:
        """One page of `list`, and the token of the next page (None: this was the last)."""
        full = _ticket_query(query)
        pages = self.client.list_workflows(full, page_size=size, next_page_token=token)
        try:
            await pages.fetch_next_page()
        except RPCError as exc:
            raise self._list_error(full, exc) from exc
        return [summary_of(wf) for wf in pages.current_page or []], pages.next_page_token or None

    def _list_error(self, full: str, exc: RPCError) -> TicketError:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            return InvalidInput(f"invalid list query {full!r}: {exc.message}")
        return self._rpc_error(None, exc)

    # --- errors -------------------------------------------------------------------------------

    async def _call(self, ticket_id: str, call: Awaitable[T]) -> T:
        """Await a Temporal call, turning RPC-level failures into the client's typed errors."""
        try:
            return await call
        except RPCError as exc:
            raise self._rpc_error(ticket_id, exc) from exc
        except WorkflowQueryFailedError as exc:
            text = str(exc)
            if "not found" in text.lower():
                raise TicketNotFound(f"ticket {ticket_id} not found") from exc
            raise TicketError(f"ticket {ticket_id}: query failed: {text}") from exc

    def _rpc_error(self, ticket_id: str | None, exc: RPCError) -> TicketError:
        text = exc.message or str(exc)
        if exc.status == RPCStatusCode.NOT_FOUND:
            if "already completed" in text.lower():
                return TicketClosed(f"ticket {ticket_id} is closed")
            return TicketNotFound(f"ticket {ticket_id} not found")
        if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED or _task_retrying(text):
            return ServerBusy(f"Temporal is busy ({text}); try again shortly")
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return CannotConnect(
                f"cannot reach Temporal at {self.address}: {text}. Is the server running?"
                " (`python3 dev.py up` starts one; TEMPORAL_ADDRESS or --address sets it)"
            )
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            return InvalidInput(text)
        where = f"ticket {ticket_id}: " if ticket_id else ""
        return TicketError(f"{where}{text}")
