"""Open tickets: a library function for backend services and a small CLI, plus the demo.

Opening is idempotent: a ticket whose workflow is running is returned as it is, nothing starts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from temporalio.client import Client, WorkflowHandle

from domain.errors import InvalidTicket
from domain.policy import PRIORITIES
from runtime.config import Settings
from runtime.demo_teams import TEAMS_DEMO_POLICY
from runtime.process import exit_now
from runtime.temporal import connect
from tickets.opening import TicketClosedError, open_ticket

__all__ = ["TicketClosedError", "demo", "main", "open_ticket"]  # open_ticket: the library call

DEMO_SUBJECTS = {
    "urgent": ["Checkout down for all EU customers", "Payments double-charged"],
    "high": ["Refund not received", "Cannot log in after password reset"],
    "normal": ["Invoice shows wrong VAT", "Export to CSV times out"],
    "low": ["Typo on the pricing page", "Feature request: dark mode"],
}
DEMO_CUSTOMERS = ["acme", "globex", "initech", "umbrella"]


async def demo(client: Client, task_queue: str | None = None) -> list[str]:
    """Open two tickets per priority under the fast `demo` policy and act on a few of them."""
    stamp = time.strftime("%H%M%S")
    opened: list[str] = []
    handles: list[WorkflowHandle[Any, Any]] = []
    for p_index, priority in enumerate(PRIORITIES):
        for n, subject in enumerate(DEMO_SUBJECTS[priority]):
            ticket_id = f"DEMO-{stamp}-{priority[0].upper()}{n + 1}"
            handles.append(
                await open_ticket(
                    client,
                    {
                        "ticket_id": ticket_id,
                        "subject": subject,
                        "customer_id": DEMO_CUSTOMERS[(p_index + n) % len(DEMO_CUSTOMERS)],
                        "priority": priority,
                        "category": "demo",
                        "policy": "demo",
                    },
                    task_queue,
                )
            )
            opened.append(ticket_id)
    # A few agents at work, so the UI shows every kind of story.
    await handles[1].execute_update("assign", {"agent_id": "alice"})
    await handles[1].execute_update("respond", {"agent_id": "alice", "message": "Looking into it"})
    await handles[2].execute_update(
        "request_escalation", {"agent_id": "bob", "reason": "needs payments engineering"}
    )
    await handles[3].execute_update("await_customer", {"agent_id": "carol"})
    await handles[5].execute_update("resolve", {"agent_id": "dave", "resolution": "Fixed VAT"})
    teams = await teams_demo(client, stamp, task_queue)
    return opened + ([teams] if teams else [])


async def teams_demo(client: Client, stamp: str, task_queue: str | None = None) -> str | None:
    """A billing ticket that L1 escalates to the billing team (runtime/demo_teams.py): it is
    auto-assigned, not acknowledged, reassigned, then escalated to the billing manager."""
    ticket_id = f"DEMO-{stamp}-BILLING"
    try:
        handle = await open_ticket(
            client,
            {
                "ticket_id": ticket_id,
                "subject": "Refund disputed: charged twice, refund refused at L1",
                "customer_id": "acme",
                "priority": "high",
                "category": "billing",
                "policy": TEAMS_DEMO_POLICY,
            },
            task_queue,
        )
        await handle.execute_update(
            "request_escalation",
            {"agent_id": "ann", "reason": "L1 cannot approve a disputed refund"},
        )
    except Exception as exc:  # e.g. the worker runs with the caller's own policy file
        print(f"teams demo skipped ({TEAMS_DEMO_POLICY!r} policy not served?): {exc}")
        return None
    return ticket_id


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starter.py",
        description="Open support tickets as TicketWorkflow runs (idempotent).",
        epilog="examples:\n"
        "  python starter.py open --ticket-id T-1001 --subject 'Refund not received' "
        "--customer acme --priority high\n"
        "  python starter.py demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    op = sub.add_parser("open", help="open one ticket (returns the running one if it exists)")
    op.add_argument("--ticket-id", required=True)
    op.add_argument("--subject", required=True)
    op.add_argument("--customer", required=True, dest="customer_id")
    op.add_argument("--priority", choices=PRIORITIES, default="normal")
    op.add_argument("--category")
    op.add_argument("--description")
    op.add_argument("--policy", default="default")
    sub.add_parser("demo", help="open demo tickets under the fast demo policy")
    return parser


async def main(argv: list[str] | None = None, client: Client | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a bad variable, e.g. ESCALATION_CODEC_KEYS: no traceback
        print(f"starter: {exc}", file=sys.stderr)
        return 2
    try:
        client = client or await connect(settings)
        if args.command == "demo":
            ids = await demo(client, settings.task_queue)
            print(f"opened {len(ids)} demo tickets: {', '.join(ids)}")
            print("watch them escalate: http://localhost:8233 (namespace default)")
            return 0
        fields = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
        handle = await open_ticket(client, fields, settings.task_queue)
        print(f"ticket {args.ticket_id}: workflow {handle.id} run {handle.result_run_id}")
        return 0
    except InvalidTicket as exc:
        print(f"invalid ticket: {exc}", file=sys.stderr)
        return 2
    except TicketClosedError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except ConnectionError as exc:
        print(str(exc), file=sys.stderr)
        return 4


def cli() -> None:
    exit_now(asyncio.run(main()))


if __name__ == "__main__":
    cli()
