"""`tickets`: the agents' command line. Every action is an Update, so it answers at once whether
the ticket took it, and prints the ticket after it.

Exit codes: 0 ok, 1 rejected (the workflow refused the action, or the ticket is closed),
2 usage (bad arguments, invalid input), 3 ticket not found, 4 cannot connect to Temporal.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from temporalio.client import Client

from domain.durations import parse_duration
from domain.events import DomainEvent
from domain.policy import PRIORITIES
from domain.view import TicketView
from reports.printable import visible, visible_lines
from reports.timeline import render_timeline, timeline
from runtime.config import Settings
from runtime.process import exit_now
from tickets.api_client import ApiTicketClient
from tickets.client import TicketClient, TicketSummary
from tickets.errors import InvalidInput, TicketError

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CANNOT_CONNECT = 0, 1, 2, 3, 4
STATUSES = ("new", "open", "pending", "resolved", "closed")

MAIN_EPILOG = """\
Every command takes the ticket id as its first argument (except list). Actions need your agent
id: --agent ID or the env TICKETS_AGENT. Add --json to any command for machine-readable output.

working a ticket, start to finish:
  export TICKETS_AGENT=alice
  tickets open T-1001 --subject "Refund not received" --customer acme --priority high
  tickets list --mine                     # or: tickets list --tier L1 --status new
  tickets claim T-1001                    # assign it to yourself
  tickets respond T-1001 -m "Looking into it"
  tickets wait-customer T-1001 -m "Which card did you use?"   # SLA clocks pause
  tickets customer-replied T-1001 -m "The Visa one"           # clocks resume
  tickets escalate T-1001 --reason "needs payments engineering"
  tickets transfer T-1001 --path billing --reason "a refund dispute"   # another path
  tickets ack T-1001                      # you were auto-assigned: acknowledge it
  tickets show T-1001                     # status, tier, assignee, SLA countdowns
  tickets resolve T-1001 --resolution "refund re-issued"
  tickets close T-1001
  tickets history T-1001                  # everything that happened, in order

With an agent directory (ESCALATION_AGENTS_FILE on the worker) you may act only on tickets at
your tiers (managers anywhere); a refusal exits 1 and prints who may not act where.

exit codes: 0 ok, 1 rejected (the reason is printed), 2 usage or invalid input,
            3 ticket not found, 4 cannot connect to Temporal
environment: TICKETS_AGENT, TEMPORAL_ADDRESS (localhost:7233), TEMPORAL_NAMESPACE (default),
             ESCALATION_TASK_QUEUE (escalation); `tickets COMMAND --help` for each command

through the HTTP API instead of Temporal (agents without Temporal credentials):
  export TICKETS_API_URL=http://127.0.0.1:8000 TICKETS_TOKEN=<your token>
  tickets claim T-1001                    # you are the token's agent; no --agent needed
"""


# Where this invocation prints: tests pass buffers (the worker under test logs to sys.stdout).
_STDOUT: ContextVar[TextIO | None] = ContextVar("tickets_stdout", default=None)
_STDERR: ContextVar[TextIO | None] = ContextVar("tickets_stderr", default=None)


def out(text: str) -> None:
    try:
        print(visible_lines(text), file=_STDOUT.get() or sys.stdout)
    except BrokenPipeError:
        pass  # the reader closed the pipe (`tickets list | head`): the rest is not wanted


def err(text: str) -> None:
    print(visible_lines(text), file=_STDERR.get() or sys.stderr)


# --- time and formatting ------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def ago(delta: timedelta) -> str:
    """A short human duration: 45s, 12m, 3h05m, 2d4h."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def clock(at: datetime, now: datetime, zone: str = "UTC") -> str:
    """`14:05 UTC` today, else `2026-11-28 14:05 UTC`; in the ticket calendar's zone when it
    has one (`09:05 Europe/Berlin`), as the team reads its hours."""
    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    at = at.astimezone(tz)
    if at.date() == now.astimezone(tz).date():
        return at.strftime(f"%H:%M {zone}")
    return at.strftime(f"%Y-%m-%d %H:%M {zone}")


def countdown(label: str, due: datetime, now: datetime, zone: str = "UTC") -> str:
    """`first response due in 12m (14:05 UTC)`, or `... overdue by 3m (...)`."""
    delta = due - now
    if delta >= timedelta(0):
        return f"{label} due in {ago(delta)} ({clock(due, now, zone)})"
    return f"{label} OVERDUE by {ago(delta)} ({clock(due, now, zone)})"


def render_view(v: TicketView, now: datetime | None = None) -> str:
    now = now or utc_now()
    lines = [
        f"ticket {v.ticket_id}: {visible(v.subject)}",
        f"  status {v.status} · tier {v.tier} · assignee {v.assignee or '—'} · "
        f"priority {v.priority}",
        f"  customer {visible(v.customer_id)} · category {visible(v.category or '—')}"
        f" · policy {v.policy}"
        f" · opened {clock(v.opened_at, now, v.timezone)} ({ago(now - v.opened_at)} ago)",
        f"  path {v.path}: {' → '.join(v.tiers)}",
    ]
    if v.tags:
        lines.append(f"  tags {', '.join(v.tags)}")
    lines += render_assignment(v, now)
    sla = []
    if v.first_responded_at:
        sla.append(f"first response given {clock(v.first_responded_at, now, v.timezone)}")
    elif v.sla.first_response_due:
        sla.append(countdown("first response", v.sla.first_response_due, now, v.timezone))
    if v.sla.resolution_due:
        sla.append(countdown("resolution", v.sla.resolution_due, now, v.timezone))
    if v.sla.tier_due:
        sla.append(countdown(f"tier {v.tier} budget", v.sla.tier_due, now, v.timezone))
    if v.sla.next_reply_due:
        sla.append(countdown("next reply", v.sla.next_reply_due, now, v.timezone))
    if v.sla.paused:
        sla.append("SLA clocks paused: waiting for the customer")
    elif v.status == "resolved" and v.resolved_at:
        sla.append(f"resolved {clock(v.resolved_at, now, v.timezone)}; clocks stopped")
    elif v.status == "closed" and v.closed_at:
        sla.append(f"closed {clock(v.closed_at, now, v.timezone)}")
    lines += [f"  {s}" for s in sla]
    if v.sla.breaches:
        lines.append("  breaches:")
        lines += [
            f"    {b.metric.replace('_', ' ')} at {b.tier}: due {clock(b.due_at, now, v.timezone)},"
            f" breached {clock(b.at, now, v.timezone)}"
            for b in v.sla.breaches
        ]
    else:
        lines.append("  breaches: none")
    if v.escalations:
        lines.append("  escalations:")
        for e in v.escalations:
            who = f" by {e.agent_id}" if e.agent_id else ""
            why = f": {visible(e.reason)}" if e.reason else ""
            lines.append(
                f"    {e.from_tier} → {e.to_tier} {clock(e.at, now, v.timezone)}"
                f" ({e.trigger}{who}){why}"
            )
    else:
        lines.append("  escalations: none")
    lines += render_rules(v, now)
    return "\n".join(lines)


def render_rules(v: TicketView, now: datetime) -> list[str]:
    """The rules that fired and the next elapsed rule due; nothing for a ticket without."""
    out = []
    if v.rules.fired:
        out.append("  rules fired:")
        out += [
            f"    {visible(f.rule)} on {f.on} {clock(f.at, now, v.timezone)}"
            + (f" (since {clock(f.since, now, v.timezone)})" if f.since else "")
            for f in v.rules.fired
        ]
    if v.rules.next_elapsed is not None:
        nxt = v.rules.next_elapsed
        out.append(f"  next rule: {countdown(visible(nxt.rule), nxt.due, now, v.timezone)}")
    return out


def render_assignment(v: TicketView, now: datetime) -> list[str]:
    """The team's assignment: mode, assignee, and the acknowledgement countdown."""
    a = v.assignment
    if a is None or (a.mode == "manual" and not a.timeouts):
        return []
    line = f"  assignment ({a.mode}): "
    if a.assignee is None:
        line += "unassigned"
    else:
        line += (
            f"{a.assignee}, assigned {clock(a.assigned_at, now, v.timezone)}"
            if a.assigned_at
            else a.assignee
        )
        if a.acknowledged_at is not None:
            line += f", acknowledged {clock(a.acknowledged_at, now, v.timezone)}"
        elif a.ack_due is not None:
            line += f", {countdown('acknowledge', a.ack_due, now, v.timezone)}"
    if a.timeouts:
        line += f" · {a.timeouts} did not acknowledge at this tier"
    return [line]


def render_history(ticket_id: str, events: list[DomainEvent]) -> str:
    """The same timeline `readside.py history` prints from the event store."""
    text = render_timeline(ticket_id, timeline(events), "workflow").rstrip("\n")
    if events and events[0].seq > 1:
        # A long ticket continued as new and carries only its recent events.
        text += (
            f"\n(events 1-{events[0].seq - 1} are earlier: the ticket continued as new;"
            f" the event store has them all: escalation-readside history {ticket_id})"
        )
    return text


def render_list(rows: list[TicketSummary], now: datetime | None = None) -> str:
    now = now or utc_now()
    if not rows:
        return "no tickets match"
    header = (
        "TICKET",
        "STATUS",
        "PRI",
        "PATH",
        "TIER",
        "ASSIGNEE",
        "CUSTOMER",
        "NEXT DUE",
        "BREACHED",
    )
    table = [header]
    for r in rows:
        due = "—"
        if r.sla_due is not None:
            delta = r.sla_due - now
            due = f"in {ago(delta)}" if delta >= timedelta(0) else f"{ago(delta)} ago"
        table.append(
            (
                r.ticket_id,
                r.status or r.execution_status,
                r.priority or "—",
                r.path or "—",
                r.tier or "—",
                r.assignee or "—",
                r.customer_id or "—",
                due,
                "yes" if r.sla_breached else "no",
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def to_json(value: BaseModel | list[Any]) -> str:
    if isinstance(value, list):
        return json.dumps([v.model_dump(mode="json") for v in value], indent=2)
    return value.model_dump_json(indent=2)


# --- arguments ----------------------------------------------------------------------------------


class UsageError(Exception):
    """Bad arguments that argparse cannot see (e.g. no agent id): exit 2."""


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so main() can return the exit code to a caller in-process."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            self._print_message(message, sys.stderr)
        raise _Exit(status)

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            stream = _STDERR.get() if file is sys.stderr else _STDOUT.get()
            (stream or file or sys.stderr).write(message)


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _common() -> _Parser:
    """Options every command accepts, before or after the command name."""
    common = _Parser(add_help=False)
    sup = argparse.SUPPRESS
    common.add_argument(
        "--agent", default=sup, help="your agent id (default: env TICKETS_AGENT)", metavar="ID"
    )
    common.add_argument("--json", action="store_true", default=sup, help="print JSON")
    common.add_argument(
        "--address", default=sup, help="Temporal host:port (default: env TEMPORAL_ADDRESS)"
    )
    common.add_argument(
        "--namespace", default=sup, help="Temporal namespace (default: env TEMPORAL_NAMESPACE)"
    )
    common.add_argument(
        "--api",
        default=sup,
        metavar="URL",
        help="talk to the HTTP API at URL with the token in env TICKETS_TOKEN, not to"
        " Temporal (default: env TICKETS_API_URL)",
    )
    return common


def _action_opts() -> _Parser:
    opts = _Parser(add_help=False)
    opts.add_argument(
        "--request-id",
        help="idempotency key: repeating an action with the same id is a no-op",
    )
    return opts


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    action = _action_opts()
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="tickets",
        description="Work support tickets: open, claim, respond, escalate, resolve, close; "
        "show a ticket's SLA countdowns and history; list queues.",
        epilog=MAIN_EPILOG,
        formatter_class=fmt,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str, examples: str, *, is_action: bool = True) -> Any:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog="examples:\n" + examples,
            formatter_class=fmt,
            parents=[common, action] if is_action else [common],
        )
        if name != "list":
            p.add_argument("ticket_id", metavar="TICKET", help="ticket id, e.g. T-1001")
        return p

    p = add(
        "open",
        "open a ticket, or return it if a ticket with this id is already open (idempotent)",
        "  tickets open T-1001 --subject 'Refund not received' --customer acme --priority high\n"
        "  tickets open T-1002 --subject 'Cannot log in' --customer globex --json\n",
        is_action=False,
    )
    p.add_argument("--subject", required=True, help="one line, up to 300 characters")
    p.add_argument("--customer", required=True, dest="customer_id", help="customer id")
    p.add_argument("--priority", choices=PRIORITIES, default="normal", help="default: normal")
    p.add_argument("--category", help="e.g. billing")
    p.add_argument("--description", help="longer text")
    p.add_argument("--policy", default="default", help="SLA policy name (default: default)")
    p.add_argument("--path", help="a path of the policy (default: by category, else default)")
    p.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="a tag (repeat for more)"
    )

    add(
        "claim",
        "assign the ticket to yourself (status new → open)",
        "  tickets claim T-1001 --agent alice\n  TICKETS_AGENT=alice tickets claim T-1001\n",
    )
    p = add(
        "assign",
        "assign the ticket to another agent (you are recorded as who assigned it)",
        "  tickets assign T-1001 bob --agent alice\n",
    )
    p.add_argument("assignee", metavar="AGENT", help="the agent who gets the ticket")
    p = add(
        "respond",
        "record a public reply to the customer (the first one meets the first-response SLA)",
        "  tickets respond T-1001 -m 'We are looking into it'\n",
    )
    p.add_argument("-m", "--message", help="the reply text (optional)")
    p = add(
        "escalate",
        "escalate to the next tier now (or to --to-tier); a reason is required",
        "  tickets escalate T-1001 --reason 'needs payments engineering'\n"
        "  tickets escalate T-1001 --reason 'outage' --to-tier L3\n",
    )
    p.add_argument("--reason", required=True, help="why (1..2000 characters)")
    p.add_argument("--to-tier", help="a tier above the current one (default: the next tier)")
    p = add(
        "transfer",
        "functional escalation: move the ticket to another path of its policy (a reason is"
        " required); it enters --to-tier, or the same position on that path",
        "  tickets transfer T-1001 --path billing --reason 'a refund dispute'\n"
        "  tickets transfer T-1001 --path billing --to-tier billing-manager --reason 'refund'\n",
    )
    p.add_argument("--path", required=True, help="the path, e.g. billing")
    p.add_argument("--reason", required=True, help="why (1..2000 characters)")
    p.add_argument("--to-tier", help="a tier on that path (default: the same position)")
    add(
        "ack",
        "acknowledge a ticket you were auto-assigned (any other action of yours does too)",
        "  tickets ack T-1001 --agent bea\n",
    )
    p = add(
        "tag",
        "add and remove tags (lower-case letters, digits, '_' and '-'; at most 20 a ticket)",
        "  tickets tag T-1001 --add vip --add eu --remove triage\n",
    )
    p.add_argument("--add", action="append", default=[], metavar="TAG", help="a tag to add")
    p.add_argument("--remove", action="append", default=[], metavar="TAG", help="a tag to remove")
    p = add(
        "wait-customer",
        "set the ticket pending: waiting for the customer; every SLA clock pauses",
        "  tickets wait-customer T-1001 -m 'Which card did you use?'\n",
    )
    p.add_argument("-m", "--message", help="what you asked the customer (optional)")
    p = add(
        "customer-replied",
        "record the customer's reply: clocks resume; a resolved ticket reopens",
        "  tickets customer-replied T-1001 -m 'The Visa one'\n",
    )
    p.add_argument("-m", "--message", help="the customer's reply (optional)")
    p = add(
        "priority",
        "change the priority; SLA due times are recomputed from the open time",
        "  tickets priority T-1001 urgent --reason 'VIP customer'\n",
    )
    p.add_argument("priority", choices=PRIORITIES, help="the new priority")
    p.add_argument("--reason", help="why (optional)")
    p = add(
        "resolve",
        "resolve the ticket: clocks stop; it closes itself after the policy's auto-close time",
        "  tickets resolve T-1001 --resolution 'refund re-issued'\n",
    )
    p.add_argument("--resolution", "-r", required=True, help="what fixed it")
    p = add(
        "reopen",
        "reopen a resolved ticket: clocks resume",
        "  tickets reopen T-1001 --reason 'customer says it still fails'\n",
    )
    p.add_argument("--reason", help="why (optional)")
    add(
        "close",
        "close the ticket for good (its id cannot be opened again)",
        "  tickets close T-1001\n",
    )
    add(
        "show",
        "show a ticket: status, tier, assignee, SLA countdowns, breaches, escalations",
        "  tickets show T-1001\n  tickets show T-1001 --json | jq .sla\n",
        is_action=False,
    )
    add(
        "history",
        "show everything that happened to a ticket, in order (its domain events)",
        "  tickets history T-1001\n  tickets history T-1001 --json\n",
        is_action=False,
    )
    p = add(
        "list",
        "list tickets (running ones unless --status closed or --all); filters combine with AND",
        "  tickets list --mine --agent alice      # my tickets\n"
        "  tickets list --tier L2 --status open   # the L2 queue\n"
        "  tickets list --path billing            # tickets on the billing path\n"
        "  tickets list --breaching-within 30m    # about to breach\n"
        "  tickets list --breached                # already breached\n"
        "  tickets list --query \"TicketCustomer='acme'\" --json\n",
        is_action=False,
    )
    p.add_argument("--mine", action="store_true", help="assigned to you (--agent/TICKETS_AGENT)")
    p.add_argument("--assignee", help="assigned to this agent")
    p.add_argument("--tier", help="at this tier, e.g. L2 (a tier's queue)")
    p.add_argument("--path", help="on this path, e.g. billing")
    p.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="with this tag (repeat: all)"
    )
    p.add_argument("--status", choices=STATUSES, help="in this status")
    p.add_argument("--priority", choices=PRIORITIES, help="of this priority")
    p.add_argument("--customer", help="of this customer id")
    p.add_argument(
        "--breaching-within",
        metavar="DURATION",
        help="next SLA due time within this duration from now, e.g. 30m, 2h",
    )
    p.add_argument("--breached", action="store_true", help="an SLA has been breached")
    p.add_argument("--all", action="store_true", help="include closed and terminated tickets")
    p.add_argument("--query", help="an extra visibility query clause (Temporal list syntax)")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    return parser


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def list_query(args: argparse.Namespace, agent: str | None, now: datetime) -> str:
    """The visibility query for `list`'s filters."""
    clauses: list[str] = []
    if args.mine:
        if not agent:
            raise UsageError("--mine needs your agent id: --agent ID or env TICKETS_AGENT")
        clauses.append(f"TicketAssignee = {_quote(agent)}")
    if args.assignee:
        clauses.append(f"TicketAssignee = {_quote(args.assignee)}")
    if args.tier:
        clauses.append(f"TicketTier = {_quote(args.tier)}")
    if args.path:
        clauses.append(f"TicketPath = {_quote(args.path)}")
    for tag in getattr(args, "tag", []):
        clauses.append(f"TicketTags = {_quote(tag)}")
    if args.status:
        clauses.append(f"TicketStatus = {_quote(args.status)}")
    if args.priority:
        clauses.append(f"TicketPriority = {_quote(args.priority)}")
    if args.customer:
        clauses.append(f"TicketCustomer = {_quote(args.customer)}")
    if args.breaching_within:
        try:
            within = parse_duration(args.breaching_within)
        except ValueError as exc:
            raise UsageError(f"--breaching-within: {exc}") from None
        limit = (now + within).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        clauses.append(f"TicketSlaDue < '{limit}'")
    if args.breached:
        clauses.append("SlaBreached = true")
    if not args.all and args.status != "closed":
        clauses.append("ExecutionStatus = 'Running'")
    if args.query:
        clauses.append(f"({args.query})")
    return " AND ".join(clauses)


# --- running ------------------------------------------------------------------------------------

ACTION_VERBS = {
    "claim": "claimed",
    "assign": "assigned",
    "respond": "response recorded",
    "escalate": "escalated",
    "transfer": "transferred",
    "ack": "acknowledged",
    "wait-customer": "waiting for the customer",
    "customer-replied": "customer reply recorded",
    "priority": "priority changed",
    "resolve": "resolved",
    "reopen": "reopened",
    "close": "closed",
    "tag": "tags changed",
}
NEEDS_AGENT = set(ACTION_VERBS) - {"customer-replied", "reopen"}


AnyClient = TicketClient | ApiTicketClient


async def _act(tc: AnyClient, args: argparse.Namespace, agent: str | None) -> TicketView:
    t, rid, cmd = args.ticket_id, args.request_id, args.command
    # Through the API the agent is the token's (the API fills it in and refuses another).
    if cmd in NEEDS_AGENT and not agent and not isinstance(tc, ApiTicketClient):
        raise UsageError(f"{cmd} needs your agent id: --agent ID or env TICKETS_AGENT")
    match cmd:
        case "claim":
            return await tc.assign(t, agent or "", request_id=rid)
        case "assign":
            return await tc.assign(t, agent or "", assignee=args.assignee, request_id=rid)
        case "respond":
            return await tc.respond(t, agent or "", message=args.message, request_id=rid)
        case "escalate":
            return await tc.request_escalation(
                t, agent or "", reason=args.reason, to_tier=args.to_tier, request_id=rid
            )
        case "wait-customer":
            return await tc.await_customer(t, agent or "", message=args.message, request_id=rid)
        case "customer-replied":
            return await tc.customer_replied(t, message=args.message, request_id=rid)
        case "priority":
            return await tc.change_priority(
                t, agent or "", args.priority, reason=args.reason, request_id=rid
            )
        case "resolve":
            return await tc.resolve(t, agent or "", args.resolution, request_id=rid)
        case "reopen":
            return await tc.reopen(t, agent_id=agent, reason=args.reason, request_id=rid)
        case "close":
            return await tc.close(t, agent or "", request_id=rid)
        case "transfer":
            return await tc.transfer(
                t, agent or "", args.path, args.reason, to_tier=args.to_tier, request_id=rid
            )
        case "ack":
            return await tc.acknowledge(t, agent or "", request_id=rid)
        case "tag":
            return await tc.tag(t, agent or "", add=args.add, remove=args.remove, request_id=rid)
    raise UsageError(f"unknown command {cmd!r}")


def api_filters(args: argparse.Namespace, agent: str | None, now: datetime) -> dict[str, str]:
    """`list`'s filters as the API's query parameters (it has no free-form query)."""
    unsupported = [f"--{n}" for n in ("priority", "customer", "query") if getattr(args, n)]
    if args.all:
        unsupported.append("--all")
    if unsupported:
        raise UsageError(f"{', '.join(unsupported)}: not available through --api")
    filters: dict[str, str] = {}
    if args.mine:
        if not agent:
            raise UsageError("--mine needs your agent id: --agent ID or env TICKETS_AGENT")
        filters["assignee"] = agent
    if args.assignee:
        filters["assignee"] = args.assignee
    if args.tier:
        filters["tier"] = args.tier
    if args.status:
        filters["status"] = args.status
    if getattr(args, "path", None):
        filters["path"] = args.path
    tags = getattr(args, "tag", None) or []
    if len(tags) > 1:
        raise UsageError("--tag: one tag at a time through --api")
    if tags:
        filters["tag"] = tags[0]
    if args.breached:
        filters["breached"] = "true"
    if args.breaching_within:
        try:
            within = parse_duration(args.breaching_within)
        except ValueError as exc:
            raise UsageError(f"--breaching-within: {exc}") from None
        filters["due_before"] = (now + within).astimezone(UTC).isoformat()
    return filters


async def _run(tc: AnyClient, args: argparse.Namespace, agent: str | None, as_json: bool) -> int:
    cmd = args.command
    if cmd == "open":
        fields = {
            k: getattr(args, k)
            for k in (
                "ticket_id",
                "subject",
                "customer_id",
                "priority",
                "category",
                "description",
                "policy",
                "path",
            )
            if getattr(args, k) is not None
        }
        if args.tag:
            fields["tags"] = args.tag
        opened = await tc.open_or_find(fields)
        v = opened.view
        said = "opened" if opened.created else f"ticket {v.ticket_id} already exists (same input)"
        out(to_json(v) if as_json else f"{said}\n{render_view(v)}")
    elif cmd == "show":
        v = await tc.show(args.ticket_id)
        out(to_json(v) if as_json else render_view(v))
    elif cmd == "history":
        events = await tc.history(args.ticket_id)
        out(to_json(events) if as_json else render_history(args.ticket_id, events))
    elif cmd == "list":
        now = utc_now()
        if isinstance(tc, ApiTicketClient):
            rows = await tc.list_filtered(api_filters(args, agent, now), args.limit)
        else:
            rows = await tc.list(list_query(args, agent, now), limit=args.limit)
        out(to_json(rows) if as_json else render_list(rows, now))
    else:
        v = await _act(tc, args, agent)
        out(to_json(v) if as_json else f"{ACTION_VERBS[cmd]}\n{render_view(v)}")
    return EXIT_OK


async def main(
    argv: Sequence[str] | None = None,
    client: TicketClient | Client | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The command line; returns the exit code. Tests pass a connected client (and buffers)."""
    tokens = _STDOUT.set(stdout), _STDERR.set(stderr)
    try:
        return await _main(argv, client)
    finally:
        _STDOUT.reset(tokens[0])
        _STDERR.reset(tokens[1])


async def _main(argv: Sequence[str] | None, client: TicketClient | Client | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        err(str(exc))
        return EXIT_USAGE
    except _Exit as exc:  # --help
        return exc.status
    agent = getattr(args, "agent", None) or os.environ.get("TICKETS_AGENT") or None
    as_json = bool(getattr(args, "json", False))
    api_url = getattr(args, "api", None) or os.environ.get("TICKETS_API_URL") or None
    try:
        tc: AnyClient
        if isinstance(client, TicketClient):
            tc = client
        elif api_url and client is None:
            token = os.environ.get("TICKETS_TOKEN", "").strip()
            if not token:
                raise UsageError("--api needs your token in env TICKETS_TOKEN")
            tc = ApiTicketClient(api_url, token)
        else:
            try:
                settings = Settings.from_env()
            except ValueError as exc:  # a bad variable, e.g. ESCALATION_CODEC_KEYS: no traceback
                err(f"tickets: {exc}")
                return EXIT_USAGE
            if client is not None:
                tc = TicketClient(client, settings.task_queue)
            else:
                if getattr(args, "address", None):
                    settings = dataclasses.replace(settings, temporal_address=args.address)
                if getattr(args, "namespace", None):
                    settings = dataclasses.replace(settings, namespace=args.namespace)
                tc = await TicketClient.connect(settings)
        return await _run(tc, args, agent, as_json)
    except UsageError as exc:
        err(f"tickets: error: {exc}")
        return EXIT_USAGE
    except InvalidInput as exc:
        err(f"tickets: invalid input: {exc}")
        return EXIT_USAGE
    except TicketError as exc:
        err(f"tickets: {exc}")
        return exc.exit_code


def cli() -> None:
    """Console script entry (`tickets`)."""
    exit_now(asyncio.run(main()))


if __name__ == "__main__":
    cli()
