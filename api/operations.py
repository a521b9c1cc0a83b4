"""What the API and the console do, once: each call goes through TicketClient (the same code
as `tickets`) with the caller signed in; the workflow decides every rule. Errors are Problems.

Lists come from Temporal visibility over the search attributes (docs/api.md says why).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel, ValidationError
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.auth import Authenticator, AuthError, Caller
from api.limits import RateLimiter
from api.principal_client import acting_as
from api.problems import Problem, invalid
from domain.commands import ACTIONS, OpenTicket
from domain.state import fold
from domain.view import TicketView, view
from store.event_store import StoredEvent, read_ticket
from tickets.client import TicketClient, TicketSummary
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

T = TypeVar("T")
MAX_PAGE = 200
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,4096}")


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_cursor: str | None


class ListFilters(BaseModel):
    status: str | None = None
    tier: str | None = None
    path: str | None = None
    assignee: str | None = None
    tag: str | None = None
    breached: bool | None = None
    due_before: datetime | None = None


@dataclass
class Api:
    """The API's parts; built by api/server.py (or a test) and shared by every request."""

    tickets: TicketClient
    auth: Authenticator
    rate: RateLimiter
    database: Callable[[], Awaitable[asyncpg.Pool]]

    async def caller(self, authorization: str | None) -> Caller:
        try:
            return await self.auth.caller(authorization)
        except AuthError as exc:
            raise Problem(
                401, str(exc), title="Unauthorized", headers={"WWW-Authenticate": "Bearer"}
            ) from None

    def count_action(self, caller: Caller) -> None:
        wait = self.rate.take(caller.key or caller.id)
        if wait is not None:
            raise Problem(
                429,
                f"{caller.kind} {caller.id} is over {self.rate.rate:g} actions per second",
                title="Too many requests",
                headers={"Retry-After": RateLimiter.retry_after(wait)},
            )

    # --- tickets ----------------------------------------------------------------------------

    async def open(self, caller: Caller, ticket: OpenTicket) -> tuple[int, TicketView]:
        """201 opened; 200 it existed with this input; 409 it exists with other input (the
        comparison is TicketClient.open_or_find's, the same as `tickets open`)."""
        if not caller.allows("open"):
            raise Problem(403, f"{caller.kind} {caller.id} may not open tickets")
        self.count_action(caller)
        with acting_as(caller):
            opened = await _call(self.tickets.open_or_find(ticket))
        return (201 if opened.created else 200), opened.view

    async def show(self, ticket_id: str) -> TicketView:
        try:
            return await self.tickets.show(ticket_id)
        except TicketNotFound:
            stored = await self._stored(ticket_id)
            if not stored:
                raise Problem(404, f"ticket {ticket_id} not found", title="Not found") from None
            # Its workflow is gone (retention, or never ran here): the store has its story.
            state = fold([e.to_domain() for e in stored])
            assert state is not None
            return view(state)
        except TicketError as exc:
            raise _problem(exc) from exc

    async def act(
        self,
        caller: Caller,
        ticket_id: str,
        action: str,
        body: dict[str, Any],
        idempotency_key: str | None,
    ) -> TicketView:
        model = ACTIONS.get(action)
        if model is None:
            raise Problem(
                404, f"unknown action {action!r}; known: {', '.join(ACTIONS)}", title="Not found"
            )
        payload = dict(body)
        takes_agent = "agent_id" in model.model_fields
        named = payload.get("agent_id")
        if caller.kind == "service":
            if named is not None or (takes_agent and model.model_fields["agent_id"].is_required()):
                raise Problem(
                    403,
                    f"service {caller.id} cannot {action} as an agent: an agent's own token must",
                    title="Forbidden",
                )
        elif takes_agent:
            if named is not None and named != caller.id:
                raise Problem(
                    403,
                    f"agent {caller.id} cannot act as agent {named!r}",
                    title="Forbidden",
                )
            payload["agent_id"] = caller.id
        if not caller.allows(action):
            raise Problem(403, f"{caller.kind} {caller.id} may not {action}", title="Forbidden")
        if idempotency_key is not None:
            given = payload.get("request_id")
            if given is not None and given != idempotency_key:
                raise Problem(
                    422,
                    "request_id and the Idempotency-Key header differ; send one of them",
                    title="Invalid request",
                )
            payload["request_id"] = idempotency_key
        try:
            validated = model.model_validate(payload)
        except ValidationError as exc:
            raise invalid(exc, action) from None
        self.count_action(caller)
        with acting_as(caller):
            return await _call(
                self.tickets.act(ticket_id, action, **validated.model_dump(exclude_none=True))
            )

    async def page(self, filters: ListFilters, limit: int, cursor: str | None) -> TicketPage:
        if not 1 <= limit <= MAX_PAGE:
            raise Problem(422, f"limit must be 1..{MAX_PAGE}", title="Invalid request")
        token = None
        if cursor:
            try:
                if not _CURSOR.fullmatch(cursor):
                    raise ValueError(cursor)
                token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            except (binascii.Error, ValueError):
                raise Problem(
                    422, "cursor is not one this API gave", title="Invalid request"
                ) from None
        rows, following = await _call(self.tickets.page(visibility_query(filters), limit, token))
        cursor = base64.urlsafe_b64encode(following).decode().rstrip("=") if following else None
        return TicketPage(items=rows, next_cursor=cursor)

    async def queue(self, caller: Caller, limit: int = 100) -> list[TicketSummary]:
        """Assigned to the caller, then the caller's teams' unassigned, each by nearest due."""
        running = "ExecutionStatus = 'Running' AND TicketStatus != 'closed'"
        mine = await _call(
            self.tickets.list(f"{running} AND TicketAssignee = {quote(caller.id)}", limit)
        )
        teams = ""
        if caller.tiers:
            teams = f" AND TicketTier IN ({', '.join(quote(t) for t in caller.tiers)})"
        unassigned = await _call(
            self.tickets.list(f"{running} AND TicketAssignee IS NULL{teams}", limit)
        )
        return _by_due(mine) + _by_due(unassigned)

    async def events(self, ticket_id: str) -> list[StoredEvent]:
        stored = await self._stored(ticket_id)
        if not stored:
            await self.show(ticket_id)  # 404 unless the ticket exists and simply has none yet
        return stored

    async def _stored(self, ticket_id: str) -> list[StoredEvent]:
        try:
            pool = await self.database()
            return await read_ticket(pool, ticket_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise Problem(503, f"the event store is unreachable: {exc}") from exc

    # --- health -----------------------------------------------------------------------------

    async def readiness(self) -> dict[str, str]:
        """`ok` or what is wrong, for Temporal and for PostgreSQL."""

        async def temporal() -> str:
            await self.tickets.client.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=2)
            )
            return "ok"

        async def postgres() -> str:
            pool = await self.database()
            async with pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
            return "ok"

        results = await asyncio.gather(
            _guarded(temporal()), _guarded(postgres()), return_exceptions=False
        )
        return {"temporal": results[0], "postgres": results[1]}


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def visibility_query(f: ListFilters) -> str:
    """The list filters as a visibility query (CONTRACT.md search attributes)."""
    clauses = []
    for value, attribute in (
        (f.status, "TicketStatus"),
        (f.tier, "TicketTier"),
        (f.path, "TicketPath"),
        (f.assignee, "TicketAssignee"),
        (f.tag, "TicketTags"),
    ):
        if value is not None:
            clauses.append(f"{attribute} = {quote(value)}")
    if f.breached is not None:
        clauses.append(f"SlaBreached = {'true' if f.breached else 'false'}")
    if f.due_before is not None:
        at = f.due_before if f.due_before.tzinfo else f.due_before.replace(tzinfo=UTC)
        clauses.append(f"TicketSlaDue < '{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'")
    return " AND ".join(clauses)


def _by_due(rows: list[TicketSummary]) -> list[TicketSummary]:
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: (r.sla_due or far, r.ticket_id))


async def _call(call: Awaitable[T]) -> T:
    try:
        return await call
    except TicketError as exc:
        raise _problem(exc) from exc


def _problem(exc: TicketError) -> Problem:
    text = str(exc)
    if isinstance(exc, ActionRejected | TicketClosed):
        return Problem(409, text, title="Refused")
    if isinstance(exc, TicketConflict):
        return Problem(409, text, title="Conflict")
    if isinstance(exc, TicketNotFound):
        return Problem(404, text, title="Not found")
    if isinstance(exc, InvalidInput):
        return Problem(422, text, title="Invalid request")
    if isinstance(exc, CannotConnect | ServerBusy):
        return Problem(503, text, headers={"Retry-After": "1"})
    return Problem(502, text, title="Temporal call failed")


async def _guarded(check: Awaitable[str]) -> str:
    try:
        return await asyncio.wait_for(check, 3)
    except Exception as exc:  # whatever the failure, readiness reports it, never raises
        return f"unreachable: {exc or type(exc).__name__}"


def parse_ticket(raw: Any) -> OpenTicket:
    """An OpenTicket or 422 naming each bad field."""
    if not isinstance(raw, dict):
        raise Problem(422, "the body must be a JSON object (an OpenTicket)", title="Invalid")
    try:
        return OpenTicket.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc, "ticket") from None
