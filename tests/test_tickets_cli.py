"""The `tickets` command line on the dev server: every command's output and exit code, --json,
--help, and every error path. The CLI runs in-process (`main(argv, client)`), since the worker
under test shares this event loop."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.view import view
from tests.conftest import TicketRig
from tests.test_domain_decider import Story
from tests.test_workflow_business_hours import POLICIES
from tickets import cli
from tickets.client import TicketClient

COMMANDS = [
    "open",
    "claim",
    "assign",
    "respond",
    "escalate",
    "wait-customer",
    "customer-replied",
    "priority",
    "resolve",
    "reopen",
    "close",
    "show",
    "history",
    "list",
]


async def run(rig: TicketRig | None, *argv: str) -> tuple[int, str, str]:
    """Run `tickets ARGV...` against the rig's server and worker: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    client = TicketClient(rig.client, rig.task_queue) if rig is not None else None
    code = await cli.main(list(argv), client, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


async def ok(rig: TicketRig, *argv: str) -> str:
    code, out, err = await run(rig, *argv)
    assert code == 0, f"tickets {' '.join(argv)} -> {code}: {err}"
    return out


async def open_ticket(rig: TicketRig, *extra: str) -> str:
    tid = f"CLI-{uuid.uuid4().hex[:10]}"
    out = await ok(
        rig, "open", tid, "--subject", "Refund not received", "--customer", "acme", *extra
    )
    rig.handles.append(rig.client.get_workflow_handle(f"ticket-{tid}"))
    assert f"ticket {tid}: Refund not received" in out
    return tid


async def poll_list(rig: TicketRig, ticket_id: str, *argv: str) -> list[dict[str, Any]]:
    """`tickets list ... --json` until the ticket shows up (visibility lags, bounded)."""
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        rows = json.loads(await ok(rig, "list", *argv, "--json"))
        if any(r["ticket_id"] == ticket_id for r in rows):
            break
        await asyncio.sleep(0.1)
    return rows


async def test_help_everywhere_has_examples() -> None:
    code, out, _ = await run(None, "--help")
    assert code == 0
    assert "working a ticket, start to finish:" in out and "exit codes:" in out
    for command in COMMANDS:
        assert command in out
        code, out_cmd, _ = await run(None, command, "--help")
        assert code == 0, command
        assert "examples:" in out_cmd and f"tickets {command}" in out_cmd, command


async def test_working_a_ticket_from_open_to_close(dev_rig: TicketRig) -> None:
    agent = f"alice-{uuid.uuid4().hex[:6]}"
    tid = await open_ticket(dev_rig, "--priority", "high", "--category", "billing")
    out = await ok(dev_rig, "show", tid)
    assert "status new · tier L1 · assignee — · priority high" in out
    assert "first response due in 59m" in out or "first response due in 1h" in out
    assert "resolution due in 7h59m" in out or "resolution due in 8h" in out
    assert "breaches: none" in out and "escalations: none" in out

    out = await ok(dev_rig, "claim", tid, "--agent", agent)
    assert out.startswith("claimed\n") and f"status open · tier L1 · assignee {agent}" in out
    out = await ok(dev_rig, "assign", tid, "bob", "--agent", agent)
    assert "assignee bob" in out
    out = await ok(dev_rig, "respond", tid, "-m", "Looking into it", "--agent", "bob")
    assert "first response given" in out
    out = await ok(dev_rig, "wait-customer", tid, "-m", "Which card?", "--agent", "bob")
    assert "status pending" in out and "SLA clocks paused" in out
    out = await ok(dev_rig, "customer-replied", tid, "-m", "Visa")
    assert "status open" in out and "resolution due in" in out
    out = await ok(dev_rig, "priority", tid, "urgent", "--reason", "vip", "--agent", "bob")
    assert "priority urgent" in out
    out = await ok(dev_rig, "escalate", tid, "--reason", "needs payments", "--agent", "bob")
    assert "tier L2" in out and "assignee —" in out
    assert "L1 → L2" in out and "(agent_request by bob): needs payments" in out
    out = await ok(dev_rig, "resolve", tid, "--resolution", "refunded", "--agent", "bob")
    assert "status resolved" in out and "clocks stopped" in out
    out = await ok(dev_rig, "reopen", tid, "--reason", "still missing")
    assert "status open" in out
    await ok(dev_rig, "resolve", tid, "-r", "refunded again", "--agent", "bob")
    out = await ok(dev_rig, "close", tid, "--agent", "bob")
    assert out.startswith("closed\n") and "status closed" in out

    out = await ok(dev_rig, "history", tid)
    lines = out.splitlines()
    assert lines[0] == f"ticket {tid}: 12 events (workflow)"
    opened = next(line for line in lines if "TicketOpened" in line)
    assert "ticket at L1, policy default: Refund not received" in opened
    assert any(f"assigned to {agent}" in line for line in lines)
    assert any("bob" in line and "first response: Looking into it" in line for line in lines)
    assert any("L1 -> L2 (agent_request): needs payments" in ln for ln in lines)
    assert "TicketClosed" in lines[-1] and "closed (agent)" in lines[-1]


async def test_json_output_parses_for_reads_and_actions(dev_rig: TicketRig) -> None:
    tid = f"CLI-{uuid.uuid4().hex[:10]}"
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    opened = json.loads(
        await ok(dev_rig, "open", tid, "--subject", "s", "--customer", customer, "--json")
    )
    dev_rig.handles.append(dev_rig.client.get_workflow_handle(f"ticket-{tid}"))
    assert opened["ticket_id"] == tid and opened["status"] == "new"
    view = json.loads(await ok(dev_rig, "claim", tid, "--agent", "amy", "--json"))
    assert view["assignee"] == "amy" and view["sla"]["first_response_due"] is not None
    shown = json.loads(await ok(dev_rig, "show", tid, "--json"))
    assert shown == view
    events = json.loads(await ok(dev_rig, "history", tid, "--json"))
    assert [e["event_type"] for e in events] == ["TicketOpened", "TicketAssigned"]
    assert events[1]["payload"]["assignee"] == "amy"
    rows = await poll_list(dev_rig, tid, "--customer", customer)
    assert [(r["ticket_id"], r["assignee"], r["status"]) for r in rows] == [(tid, "amy", "open")]


async def test_request_id_makes_an_action_idempotent(dev_rig: TicketRig) -> None:
    tid = await open_ticket(dev_rig)
    first = json.loads(
        await ok(dev_rig, "respond", tid, "--agent", "amy", "--request-id", "r-1", "--json")
    )
    again = json.loads(
        await ok(dev_rig, "respond", tid, "--agent", "amy", "--request-id", "r-1", "--json")
    )
    assert again["version"] == first["version"]


async def test_list_queries(dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    agent = f"lia-{uuid.uuid4().hex[:6]}"
    tid = await open_ticket(dev_rig, "--customer", customer)
    monkeypatch.setenv("TICKETS_AGENT", agent)
    await ok(dev_rig, "claim", tid)  # the agent from the environment
    mine = await poll_list(dev_rig, tid, "--mine")
    assert [r["ticket_id"] for r in mine] == [tid]
    await ok(dev_rig, "escalate", tid, "--reason", "needs L2")
    queue = await poll_list(
        dev_rig, tid, "--tier", "L2", "--status", "open", "--customer", customer
    )
    assert [r["ticket_id"] for r in queue] == [tid]
    soon = await poll_list(dev_rig, tid, "--breaching-within", "5h", "--customer", customer)
    assert [r["ticket_id"] for r in soon] == [tid]
    code, out, _ = await run(dev_rig, "list", "--customer", customer, "--tier", "L2")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == [
        "TICKET",
        "STATUS",
        "PRI",
        "PATH",
        "TIER",
        "ASSIGNEE",
        "CUSTOMER",
        "NEXT",
        "DUE",
        "BREACHED",
    ]
    assert row.split()[:7] == [tid, "open", "normal", "default", "L2", "—", customer]
    paths = await poll_list(dev_rig, tid, "--path", "default", "--customer", customer)
    assert [r["ticket_id"] for r in paths] == [tid]
    assert "in " in row and row.endswith("no")
    await ok(dev_rig, "close", tid)
    closed = await poll_list(dev_rig, tid, "--status", "closed", "--customer", customer)
    assert [(r["ticket_id"], r["execution_status"]) for r in closed] == [(tid, "completed")]
    code, out, _ = await run(dev_rig, "list", "--customer", f"none-{customer}")
    assert (code, out) == (0, "no tickets match\n")


async def test_breached_list(dev_rig: TicketRig) -> None:
    """--breached is the SlaBreached attribute; a breach needs time, so this reads the query."""
    args = cli.build_parser().parse_args(["list", "--breached", "--tier", "L3"])
    query = cli.list_query(args, None, cli.utc_now())
    assert query == "TicketTier = 'L3' AND SlaBreached = true AND ExecutionStatus = 'Running'"
    args = cli.build_parser().parse_args(["list", "--all", "--assignee", "o'neil"])
    assert cli.list_query(args, None, cli.utc_now()) == "TicketAssignee = 'o\\'neil'"


async def test_opening_an_existing_id_says_so_and_refuses_other_input(dev_rig: TicketRig) -> None:
    tid = await open_ticket(dev_rig)
    again = await ok(dev_rig, "open", tid, "--subject", "Refund not received", "--customer", "acme")
    assert again.startswith(f"ticket {tid} already exists (same input)\n")

    code, out, err = await run(dev_rig, "open", tid, "--subject", "Login fails", "--customer", "x")
    assert code == 1 and out == ""
    assert f"ticket {tid} already exists with other input; nothing was changed" in err
    assert f"subject: 'Login fails' given, 'Refund not received' in ticket {tid}" in err
    assert f"customer_id: 'x' given, 'acme' in ticket {tid}" in err
    shown = await ok(dev_rig, "show", tid)
    assert f"ticket {tid}: Refund not received" in shown


async def test_not_found_exits_3(dev_rig: TicketRig) -> None:
    for argv in (["show", "T-nope-9"], ["history", "T-nope-9"], ["claim", "T-nope-9"]):
        code, out, err = await run(dev_rig, *argv, "--agent", "amy")
        assert (code, out) == (3, ""), argv
        assert err == "tickets: ticket T-nope-9 not found\n"


async def test_rejected_exits_1_with_the_workflows_reason(dev_rig: TicketRig) -> None:
    tid = await open_ticket(dev_rig)
    await ok(dev_rig, "resolve", tid, "--resolution", "done", "--agent", "amy")
    code, out, err = await run(dev_rig, "escalate", tid, "--reason", "why", "--agent", "amy")
    assert (code, out) == (1, "")
    assert err == f"tickets: ticket {tid} is resolved; cannot escalate\n"


async def test_closed_ticket_exits_1(dev_rig: TicketRig) -> None:
    tid = await open_ticket(dev_rig)
    await ok(dev_rig, "close", tid, "--agent", "amy")
    code, _, err = await run(dev_rig, "respond", tid, "--agent", "amy")
    assert (code, err) == (1, f"tickets: ticket {tid} is closed\n")
    code, _, err = await run(dev_rig, "open", tid, "--subject", "again", "--customer", "acme")
    assert code == 1 and f"ticket {tid} is closed" in err
    assert "status closed" in await ok(dev_rig, "show", tid)


async def test_cannot_connect_exits_4() -> None:
    code, out, err = await run(None, "show", "T-1", "--address", "127.0.0.1:1")
    assert (code, out) == (4, "")
    assert "cannot connect to Temporal at 127.0.0.1:1" in err and "python3 dev.py up" in err


async def test_usage_and_invalid_input_exit_2(
    dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICKETS_AGENT", raising=False)
    code, _, err = await run(dev_rig)
    assert code == 2 and "required: COMMAND" in err
    code, _, err = await run(dev_rig, "explode")
    assert code == 2 and "invalid choice: 'explode'" in err
    code, _, err = await run(dev_rig, "escalate", "T-nope-3", "--agent", "amy")
    assert code == 2 and "--reason" in err
    code, _, err = await run(dev_rig, "claim", "T-nope-3")
    assert code == 2 and "claim needs your agent id: --agent ID or env TICKETS_AGENT" in err
    code, _, err = await run(dev_rig, "list", "--mine")
    assert code == 2 and "--mine needs your agent id" in err
    code, _, err = await run(dev_rig, "list", "--breaching-within", "soon")
    assert code == 2 and "invalid duration 'soon'" in err
    # Validated before sending: the ticket does not exist, yet the answer is "invalid input".
    code, _, err = await run(dev_rig, "escalate", "T-nope-3", "--reason", "", "--agent", "amy")
    assert code == 2
    assert err.startswith("tickets: invalid input: request_escalation: reason")
    code, _, err = await run(dev_rig, "open", "bad id!", "--subject", "s", "--customer", "c")
    assert code == 2 and "invalid input: invalid ticket: ticket_id" in err
    code, _, err = await run(dev_rig, "priority", "T-nope-3", "p0", "--agent", "amy")
    assert code == 2 and "invalid choice: 'p0'" in err


async def test_output_into_a_closed_pipe_is_not_an_error() -> None:
    """`tickets list | head -1`: the reader leaves early; the command must not traceback."""

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    token = cli._STDOUT.set(ClosedPipe())
    try:
        cli.out("ticket T-1: Refund not received")
    finally:
        cli._STDOUT.reset(token)


def test_show_names_times_in_the_calendar_s_zone() -> None:
    """Business hours are read in their zone; so are the ticket's times (issue 19: tickets show
    and the UI name due times in the calendar's zone). A 24x7 ticket reads UTC."""
    monday = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
    office = view(Story("urgent", policy=POLICIES["office"], opened_at=monday).s)
    assert office.timezone == "Europe/Berlin"
    text = cli.render_view(office, now=monday)
    assert "opened 10:00 Europe/Berlin" in text and "UTC" not in text
    always = view(Story("urgent", opened_at=monday).s)
    assert always.timezone == "UTC"
    assert "opened 09:00 UTC" in cli.render_view(always, now=monday)
