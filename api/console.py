"""The agent console at `/`: server-rendered pages (Jinja2, autoescaped) over the same `Api`
operations as the JSON routes, one small script for the countdowns and the queue's refresh.

Sessions live in this process (a restart signs everyone out): the cookie holds only a random
id, HttpOnly and SameSite=Strict (Secure behind https). Every form carries the session's CSRF
token and is refused without it. Ticket text is escaped, its control characters made visible.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
import typing
import unicodedata
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from api.auth import AuthError, Caller
from api.operations import Api
from api.problems import Problem
from domain.commands import ACTIONS
from domain.policy import PRIORITIES
from domain.view import TicketView
from reports.timeline import timeline
from tickets.client import TicketSummary

HERE = Path(__file__).resolve().parent
COOKIE = "escalation_session"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000
LONG_TEXT = {"message", "resolution", "reason", "description"}
ACTION_TITLES = {
    "assign": "Assign",
    "respond": "Respond to the customer",
    "request_escalation": "Escalate",
    "await_customer": "Wait for the customer",
    "customer_replied": "Record the customer's reply",
    "change_priority": "Change priority",
    "resolve": "Resolve",
    "reopen": "Reopen",
    "close": "Close",
    "transfer": "Transfer to another path",
    "acknowledge": "Acknowledge",
    "tag": "Tags",
}


def visible(value: Any) -> str:
    """Text with control and bidi-override characters shown as their escape (`\\x1b`,
    `<U+202E>`), never interpreted. Newlines and tabs stay (the page wraps them)."""
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t":
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif unicodedata.category(ch) == "Cf" and ch != "\u200d":
            out.append(f"<U+{code:04X}>")
        else:
            out.append(ch)
    return "".join(out)


def until(due: datetime | None, now: datetime) -> str:
    """The countdown's first text (the script keeps it ticking): `in 1h 02m 03s`, `overdue 5s`."""
    if due is None:
        return "—"
    seconds = int((due - now).total_seconds())
    sign = "in " if seconds >= 0 else "overdue "
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["visible"] = visible
_templates.filters["iso"] = iso


@dataclass
class Session:
    csrf: str
    caller: Caller | None = None
    expires_at: float = field(default_factory=lambda: time.time() + SESSION_SECONDS)
    flash: tuple[str, str] | None = None  # (kind, text) shown once on the next page


class Sessions:
    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def get(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        if session is None:
            return None
        if session.expires_at < time.time():
            del self._by_id[sid or ""]
            return None
        return session

    def new(self, caller: Caller | None = None) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), caller=caller)
        if caller is not None and caller.expires_at is not None:
            session.expires_at = min(session.expires_at, caller.expires_at)
        self._by_id[sid] = session
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return sid, session

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)


class FieldSpec(BaseModel):
    name: str
    label: str
    required: bool
    kind: str  # text | textarea | priority | list (comma-separated)


class FormSpec(BaseModel):
    action: str
    title: str
    fields: list[FieldSpec]


def action_forms() -> list[FormSpec]:
    """One form per action, from the action's payload model (the caller is the agent)."""
    forms = []
    for name, model in ACTIONS.items():
        specs = []
        for field_name, info in model.model_fields.items():
            if field_name in ("agent_id", "request_id"):
                continue
            kind = "textarea" if field_name in LONG_TEXT else "text"
            if field_name == "priority":
                kind = "priority"
            elif _is_sequence(info.annotation):
                kind = "list"
            specs.append(
                FieldSpec(
                    name=field_name,
                    label=field_name.replace("_", " "),
                    required=info.is_required(),
                    kind=kind,
                )
            )
        forms.append(FormSpec(action=name, title=ACTION_TITLES.get(name, name), fields=specs))
    return forms


def _is_sequence(annotation: Any) -> bool:
    """A list or tuple field, optional or not (the tag action's add / remove)."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return True
    return any(_is_sequence(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def form_payload(action: str, fields: dict[str, str]) -> dict[str, Any]:
    """A posted form as the action's payload: empty fields left out, list fields split on
    commas and spaces (`vip, refund`)."""
    model = ACTIONS.get(action)
    payload: dict[str, Any] = {}
    for name, value in fields.items():
        if not value.strip() or name == "request_id":
            continue
        info = model.model_fields.get(name) if model is not None else None
        if info is not None and _is_sequence(info.annotation):
            payload[name] = [part for part in re.split(r"[,\s]+", value) if part]
        else:
            payload[name] = value
    return payload


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def render_docs(request: Request, openapi: dict[str, Any]) -> Response:
    """/docs: the OpenAPI document as a page, served by the app (no CDN, no inline script)."""
    operations = []
    for path, methods in openapi.get("paths", {}).items():
        for method, op in methods.items():
            params = [p.get("name", "") for p in op.get("parameters", [])]
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "params": params,
                    "responses": sorted(op.get("responses", {})),
                }
            )
    return _page("docs.html", operations=operations, title=openapi["info"]["title"])


def install_console(app: FastAPI) -> None:
    sessions = Sessions()
    app.state.sessions = sessions
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    forms = action_forms()

    def api_of(request: Request) -> Api:
        api: Api = request.app.state.api
        return api

    def session_of(request: Request) -> tuple[str | None, Session | None]:
        sid = request.cookies.get(COOKIE)
        return sid, sessions.get(sid)

    def with_cookie(response: Response, request: Request, sid: str) -> Response:
        response.set_cookie(
            COOKIE,
            sid,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def form_of(request: Request, session: Session | None) -> dict[str, str]:
        """The posted form, after its CSRF token matched the session's (else 403)."""
        fields = {
            k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()
        }
        token = fields.pop("csrf", "")
        if session is None or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise Problem(403, "the form's CSRF token is missing or wrong", title="Forbidden")
        return fields

    def signed_in(request: Request) -> tuple[Session, Caller] | None:
        _, session = session_of(request)
        if session is None or session.caller is None:
            return None
        return session, session.caller

    def to_signin() -> Response:
        return RedirectResponse("/signin", status_code=303)

    @app.get("/signin", include_in_schema=False)
    async def signin_page(request: Request) -> Response:
        sid, session = session_of(request)
        if session is None:
            sid, session = sessions.new()
        assert sid is not None
        flash, session.flash = session.flash, None
        page = _page("signin.html", csrf=session.csrf, flash=flash)
        return with_cookie(page, request, sid)

    @app.post("/signin", include_in_schema=False)
    async def signin(request: Request) -> Response:
        sid, session = session_of(request)
        fields = await form_of(request, session)
        assert session is not None
        api = api_of(request)
        client = request.client.host if request.client else "?"
        if api.rate.take(f"signin:{client}") is not None:
            session.flash = ("error", "too many sign-in attempts; wait a second")
            return to_signin()
        try:
            caller = await api.auth.token(fields.get("token", "").strip())
        except AuthError as exc:
            session.flash = ("error", f"not signed in: {exc}")
            return to_signin()
        sessions.drop(sid)  # a new id once signed in: a planted cookie never becomes a login
        new_sid, _ = sessions.new(caller)
        return with_cookie(RedirectResponse("/", status_code=303), request, new_sid)

    @app.post("/signout", include_in_schema=False)
    async def signout(request: Request) -> Response:
        sid, session = session_of(request)
        await form_of(request, session)
        sessions.drop(sid)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", include_in_schema=False)
    async def queue(request: Request) -> Response:
        found = signed_in(request)
        if found is None:
            return to_signin()
        session, caller = found
        flash, session.flash = session.flash, None
        now = datetime.now(UTC)
        error = None
        rows: list[TicketSummary] = []
        try:
            rows = await api_of(request).queue(caller)
        except Problem as exc:
            error = exc.detail
        return _page(
            "queue.html",
            caller=caller,
            csrf=session.csrf,
            rows=rows,
            now=now,
            until=until,
            flash=flash,
            error=error,
        )

    @app.get("/t/{ticket_id}", include_in_schema=False)
    async def ticket_page(request: Request, ticket_id: str) -> Response:
        found = signed_in(request)
        if found is None:
            return to_signin()
        session, caller = found
        api = api_of(request)
        flash, session.flash = session.flash, None
        try:
            ticket = await api.show(ticket_id)
        except Problem as exc:
            return _page(
                "error.html", status=exc.status, caller=caller, csrf=session.csrf, error=exc.detail
            )
        try:
            events = [e.to_domain() for e in await api.events(ticket_id)]
        except Problem:
            events = await api.tickets.history(ticket_id)  # the store is down: the workflow's
        now = datetime.now(UTC)
        return _page(
            "ticket.html",
            caller=caller,
            csrf=session.csrf,
            t=ticket,
            clocks=_clocks(ticket),
            entries=list(reversed(timeline(events))),
            forms=forms,
            priorities=PRIORITIES,
            request_id=lambda: uuid.uuid4().hex,
            now=now,
            until=until,
            flash=flash,
        )

    @app.post("/t/{ticket_id}/{action}", include_in_schema=False)
    async def ticket_action(request: Request, ticket_id: str, action: str) -> Response:
        found = signed_in(request)
        _, session = session_of(request)
        fields = await form_of(request, session)
        if found is None:
            return to_signin()
        session, caller = found
        body = form_payload(action, fields)
        key = fields.get("request_id") or None
        back = RedirectResponse(f"/t/{quote(ticket_id, safe='')}", status_code=303)
        try:
            await api_of(request).act(caller, ticket_id, action, body, key)
        except Problem as exc:
            session.flash = ("error", exc.detail)  # the workflow's refusal, verbatim
            return back
        session.flash = ("ok", f"{ACTION_TITLES.get(action, action)}: done")
        return back


def _clocks(t: TicketView) -> list[tuple[str, datetime | None, str]]:
    """(label, due, note) for the ticket page's SLA clocks."""
    rows: list[tuple[str, datetime | None, str]] = []
    if t.first_responded_at:
        rows.append(("first response", None, f"met {iso(t.first_responded_at)}"))
    else:
        rows.append(("first response", t.sla.first_response_due, ""))
    if t.sla.next_reply_due is not None:
        rows.append(("next reply", t.sla.next_reply_due, ""))
    rows.append(("resolution", t.sla.resolution_due, ""))
    rows.append((f"tier {t.tier} budget", t.sla.tier_due, ""))
    if t.assignment is not None and t.assignment.ack_due is not None:
        rows.append((f"{t.assignment.assignee} to acknowledge", t.assignment.ack_due, ""))
    if t.sla.paused:
        rows = [(label, None, "paused: waiting for the customer") for label, _, _ in rows]
    return rows
