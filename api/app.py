"""The HTTP API's routes (CONTRACT.md v2, The HTTP API; docs/api.md). `create_app(api)` builds
the ASGI app around an `Api` (api/operations.py); api/server.py serves it with uvicorn."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from api.auth import Caller
from api.limits import ASGIApp, EdgeLimits, Limits, Message, Receive, Scope, Send
from api.operations import Api, ListFilters, TicketPage
from api.problems import PROBLEM_RESPONSES, Problem, field_errors, invalid, problem_response
from domain.commands import ACTIONS, OpenTicket
from domain.view import TicketView
from store.event_store import StoredEvent

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_bearer = HTTPBearer(auto_error=False, description="a static token or an OIDC JWT")


def _api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


async def authenticated(
    request: Request,
    # Declares the bearer scheme in the OpenAPI document; the header is judged by Api.caller.
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return await _api(request).caller(request.headers.get("authorization"))


ApiDep = Annotated[Api, Depends(_api)]
CallerDep = Annotated[Caller, Depends(authenticated)]


def _action_body_schema() -> dict[str, Any]:
    return {
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": f"#/components/schemas/{model.__name__}"}
                            for model in ACTIONS.values()
                        ]
                    }
                }
            }
        }
    }


def create_app(api: Api, limits: Limits | None = None) -> Any:
    """The FastAPI app wrapped in the edge limits (an ASGI app)."""
    app = FastAPI(
        title="escalation-api",
        version="2",
        summary="Tickets, SLA clocks and escalations over HTTP (docs/api.md)",
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = api

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = field_errors(exc.errors(), skip=1)
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        return problem_response(422, detail, "Invalid request", errors)

    # By status: the router's own 404 and 405 (Starlette's HTTPException) come here too.
    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> Response:
        return problem_response(404, f"no such path {request.url.path!r}", "Not found")

    @app.exception_handler(405)
    async def _not_allowed(request: Request, exc: Exception) -> Response:
        headers = getattr(exc, "headers", None) or {}
        detail = f"{request.method} is not allowed on {request.url.path!r}"
        return problem_response(405, detail, "Method not allowed", headers=headers)

    @app.post(
        "/v1/tickets",
        status_code=201,
        response_model=TicketView,
        responses={
            200: {"model": TicketView, "description": "it existed with this input"},
            **PROBLEM_RESPONSES,
        },
        summary="Open a ticket (idempotent)",
    )
    async def open_ticket(
        ticket: Annotated[OpenTicket, Body()], caller: CallerDep, api: ApiDep
    ) -> Response:
        status, ticket_view = await api.open(caller, ticket)
        return JSONResponse(ticket_view.model_dump(mode="json"), status_code=status)

    @app.get(
        "/v1/tickets/{ticket_id}",
        response_model=TicketView,
        responses=PROBLEM_RESPONSES,
        summary="One ticket: the workflow's `state`",
    )
    async def get_ticket(ticket_id: str, caller: CallerDep, api: ApiDep) -> TicketView:
        return await api.show(ticket_id)

    @app.post(
        "/v1/tickets/{ticket_id}/actions/{action}",
        response_model=TicketView,
        responses=PROBLEM_RESPONSES,
        summary="Take an action (an Update); 409 carries the workflow's refusal",
        openapi_extra=_action_body_schema(),
    )
    async def act(
        ticket_id: str,
        action: str,
        request: Request,
        caller: CallerDep,
        api: ApiDep,
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> TicketView:
        body = await _json_object(request)
        return await api.act(caller, ticket_id, action, body, idempotency_key)

    @app.get(
        "/v1/tickets",
        response_model=TicketPage,
        responses=PROBLEM_RESPONSES,
        summary="List tickets (Temporal visibility), newest first, by cursor",
    )
    async def list_tickets(
        caller: CallerDep,
        api: ApiDep,
        status: str | None = None,
        tier: str | None = None,
        path: str | None = None,
        assignee: str | None = None,
        tag: str | None = None,
        breached: bool | None = None,
        due_before: Annotated[str | None, Query(description="ISO 8601 time")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> TicketPage:
        try:
            filters = ListFilters.model_validate(
                {
                    "status": status,
                    "tier": tier,
                    "path": path,
                    "assignee": assignee,
                    "tag": tag,
                    "breached": breached,
                    "due_before": due_before,
                }
            )
        except ValidationError as exc:
            raise invalid(exc, "list filters") from None
        return await api.page(filters, limit, cursor)

    @app.get(
        "/v1/tickets/{ticket_id}/events",
        response_model=list[StoredEvent],
        responses=PROBLEM_RESPONSES,
        summary="The ticket's domain events from the event store",
    )
    async def ticket_events(ticket_id: str, caller: CallerDep, api: ApiDep) -> list[StoredEvent]:
        return await api.events(ticket_id)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Temporal and PostgreSQL are reachable", responses={503: {}})
    async def readyz(api: ApiDep) -> Response:
        checks = await api.readiness()
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ok", **checks})
        failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        return problem_response(503, f"not ready: {failing}", "Not ready")

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the action payload models the actions route names."""
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in ACTIONS.values():
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs(request: Request) -> Response:
        from api.console import render_docs

        return render_docs(request, app.openapi())

    from api.console import install_console

    install_console(app)
    return _with_security_headers(EdgeLimits(app, limits or Limits()))


def _with_security_headers(app: ASGIApp) -> ASGIApp:
    """Every answer, errors from the edge limits too, carries the CSP and its companions."""
    extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in extra if k not in present),
                ]
            await send(message)

        await app(scope, receive, with_headers if scope["type"] == "http" else send)

    return wrapped


async def _json_object(request: Request) -> dict[str, Any]:
    """The action's body: an object, or nothing (every field then defaults)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, f"the body is not JSON: {exc}", title="Bad request") from None
    if not isinstance(body, dict):
        raise Problem(
            422,
            f"the body must be a JSON object, not {type(body).__name__}",
            title="Invalid request",
            errors=[],
        )
    return body
