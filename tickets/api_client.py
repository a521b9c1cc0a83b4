"""`ApiTicketClient`: what `tickets --api URL` talks to instead of Temporal: the HTTP API
(docs/api.md) with a bearer token (TICKETS_TOKEN). The same methods and typed errors as
TicketClient, so the command line does not care which one it holds; the agent is the token's.

Plain stdlib HTTP (urllib in a thread): the command line stays free of an HTTP client library.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

from domain.commands import ACTIONS
from domain.events import DomainEvent
from domain.view import TicketView
from tickets.client import Opened, TicketSummary
from tickets.errors import (
    ActionRejected,
    CannotConnect,
    InvalidInput,
    TicketConflict,
    TicketError,
    TicketNotFound,
)

TIMEOUT_SECONDS = 30.0
RETRIES = 2  # a transport error is retried with the same request_id: never applied twice


class Unauthorized(TicketError):
    """401 or 403: the token is not known, or does not allow this."""

    exit_code = 1


class ApiTicketClient:
    def __init__(self, url: str, token: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"--api {url!r}: give the API's URL, e.g. http://127.0.0.1:8000")
        self.url = url.rstrip("/")
        self.token = token

    @property
    def address(self) -> str:
        return self.url

    # --- HTTP ---------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, body: Any | None, headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
                **headers,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None

    async def _call(
        self,
        method: str,
        path: str,
        body: Any | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        for attempt in range(RETRIES + 1):
            try:
                return await asyncio.to_thread(self._send, method, path, body, headers or {})
            except (urllib.error.URLError, OSError) as exc:
                if attempt == RETRIES:
                    reason = getattr(exc, "reason", exc)
                    raise CannotConnect(
                        f"cannot reach the API at {self.url}: {reason}."
                        " Is escalation-api running? (`python3 dev.py up` starts one)"
                    ) from exc
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    # --- the TicketClient methods the command line uses -------------------------------------

    async def open(self, ticket: Mapping[str, Any]) -> TicketView:
        return (await self.open_or_find(ticket)).view

    async def open_or_find(self, ticket: Mapping[str, Any]) -> Opened:
        """201: opened by this call; 200: it existed with the same input; 409: TicketConflict."""
        status, body = await self._call("POST", "/v1/tickets", dict(ticket))
        return Opened(view=TicketView.model_validate(body), created=status == 201)

    async def act(self, ticket_id: str, action: str, **fields: Any) -> TicketView:
        if action not in ACTIONS:
            raise InvalidInput(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        payload = {k: v for k, v in fields.items() if v not in (None, "")}
        # The key the action keeps across retries (a transport error never doubles it).
        key = payload.pop("request_id", None) or f"cli-{uuid.uuid4()}"
        path = f"/v1/tickets/{_segment(ticket_id)}/actions/{action}"
        _, result = await self._call("POST", path, payload, {"Idempotency-Key": key})
        return TicketView.model_validate(result)

    async def assign(self, ticket_id: str, agent_id: str, **kw: Any) -> TicketView:
        return await self.act(ticket_id, "assign", agent_id=agent_id, **kw)

    async def respond(self, ticket_id: str, agent_id: str, **kw: Any) -> TicketView:
        return await self.act(ticket_id, "respond", agent_id=agent_id, **kw)

    async def request_escalation(self, ticket_id: str, agent_id: str, **kw: Any) -> TicketView:
        return await self.act(ticket_id, "request_escalation", agent_id=agent_id, **kw)

    async def await_customer(self, ticket_id: str, agent_id: str, **kw: Any) -> TicketView:
        return await self.act(ticket_id, "await_customer", agent_id=agent_id, **kw)

    async def customer_replied(self, ticket_id: str, **kw: Any) -> TicketView:
        return await self.act(ticket_id, "customer_replied", **kw)

    async def change_priority(
        self, ticket_id: str, agent_id: str, priority: str, **kw: Any
    ) -> TicketView:
        return await self.act(
            ticket_id, "change_priority", agent_id=agent_id, priority=priority, **kw
        )

    async def resolve(
        self, ticket_id: str, agent_id: str, resolution: str, **kw: Any
    ) -> TicketView:
        return await self.act(ticket_id, "resolve", agent_id=agent_id, resolution=resolution, **kw)

    async def reopen(self, ticket_id: str, **kw: Any) -> TicketView:
        return await self.act(ticket_id, "reopen", **kw)

    async def close(self, ticket_id: str, agent_id: str, **kw: Any) -> TicketView:
        return await self.act(ticket_id, "close", agent_id=agent_id, **kw)

    async def transfer(
        self, ticket_id: str, agent_id: str, path: str, reason: str, **kw: Any
    ) -> TicketView:
        return await self.act(
            ticket_id, "transfer", agent_id=agent_id, path=path, reason=reason, **kw
        )

    async def acknowledge(self, ticket_id: str, agent_id: str, **kw: Any) -> TicketView:
        return await self.act(ticket_id, "acknowledge", agent_id=agent_id, **kw)

    async def tag(
        self,
        ticket_id: str,
        agent_id: str,
        add: list[str] | None = None,
        remove: list[str] | None = None,
        **kw: Any,
    ) -> TicketView:
        return await self.act(
            ticket_id, "tag", agent_id=agent_id, add=add or [], remove=remove or [], **kw
        )

    async def show(self, ticket_id: str) -> TicketView:
        _, body = await self._call("GET", f"/v1/tickets/{_segment(ticket_id)}")
        return TicketView.model_validate(body)

    async def history(self, ticket_id: str) -> builtins.list[DomainEvent]:
        _, rows = await self._call("GET", f"/v1/tickets/{_segment(ticket_id)}/events")
        fields = DomainEvent.model_fields
        return [DomainEvent.model_validate({k: r[k] for k in fields}) for r in rows]

    async def list_filtered(
        self, filters: Mapping[str, str], limit: int
    ) -> builtins.list[TicketSummary]:
        """Every page of GET /v1/tickets with these filters, up to `limit` rows."""
        rows: builtins.list[TicketSummary] = []
        cursor: str | None = None
        while len(rows) < limit:
            query = {**filters, "limit": str(min(200, limit - len(rows)))}
            if cursor:
                query["cursor"] = cursor
            _, page = await self._call("GET", "/v1/tickets?" + urllib.parse.urlencode(query))
            rows += [TicketSummary.model_validate(i) for i in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return rows


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _error(status: int, raw: bytes) -> TicketError:
    """A problem+json answer as the client's typed error, its detail as the message."""
    title = ""
    try:
        problem = json.loads(raw)
        detail, title = str(problem.get("detail") or ""), str(problem.get("title") or "")
    except (ValueError, AttributeError):
        detail = raw.decode("utf-8", "replace")[:300]
    detail = detail or f"HTTP {status}"
    if status == 409 and title == "Conflict":
        return TicketConflict(detail)
    if status == 409:
        return ActionRejected(detail)
    if status == 404:
        return TicketNotFound(detail)
    if status in (400, 413, 422):
        return InvalidInput(detail)
    if status in (401, 403):
        return Unauthorized(f"not allowed: {detail}")
    if status in (502, 503, 504):
        return CannotConnect(f"the API could not reach its backend: {detail}")
    return TicketError(f"HTTP {status}: {detail}")
