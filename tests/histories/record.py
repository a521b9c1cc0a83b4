"""Record the history of every workflow scenario of the suite, for the replay test.

    .venv/bin/python tests/histories/record.py [scenario ...]

Each scenario is a small driver of the same steps as a test in test_workflow_*.py; its
workflows' histories are saved as `tests/histories/<scenario>.json` (one file per workflow;
`<scenario>-<n>.json` when a scenario runs several). Timers run on the time-skipping server;
rejected Updates and the agent directory on the dev server (see test_workflow_ticket.py).
tests/test_replay.py replays every committed file: re-record after adding a scenario, and put
behaviour changes behind `workflow.patched("<id>")` so the histories already committed (and the
tickets running in production) still replay.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import asyncpg  # noqa: E402
from temporalio.api.common.v1 import Payload, WorkflowExecution  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest  # noqa: E402
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError  # noqa: E402
from temporalio.common import RawValue  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from activities.agents import AgentActivities  # noqa: E402
from api.auth import Caller  # noqa: E402
from api.principal_client import acting_as, signing_client  # noqa: E402
from domain.policy import BUILTIN_POLICIES, Policy  # noqa: E402
from domain.principal import parse_keys  # noqa: E402
from runtime.config_files import load_policies  # noqa: E402
from store.connection import create_pool  # noqa: E402
from store.schema import migrate  # noqa: E402
from tests.conftest import TicketRig, register_search_attributes, venv_binary  # noqa: E402
from tests.test_domain_teams import POLICY as TEAMS_POLICY  # noqa: E402
from tests.test_replay import CAN_BUDGET  # noqa: E402
from tests.test_workflow_authorization import DIRECTORY  # noqa: E402
from tests.test_workflow_business_hours import POLICIES as OFFICE  # noqa: E402
from tests.test_workflow_business_hours import (  # noqa: E402
    half_day_policies,
    skip_to_friday_evening,
    skip_to_half_day_eve,
)
from tests.test_workflow_rules import RULES_TOML  # noqa: E402
from tests.test_workflow_teams import OFFICE as TEAMS_OFFICE_POLICIES  # noqa: E402
from worker import build_worker  # noqa: E402
from workflows import history_budget  # noqa: E402
from workflows.search_attributes import ALL_KEYS  # noqa: E402

Driver = Callable[[TicketRig], Awaitable[None]]
# A scenario's policies, or a function of the server's clock making them (dates in a calendar)
Policies = dict[str, Policy] | Callable[[datetime], dict[str, Policy]]
TEAMS = {"default": TEAMS_POLICY}
TEAMS_OFFICE = {"default": TEAMS_OFFICE_POLICIES["default"]}


# --- drivers: the steps of the suite's workflow tests, without their assertions -------------


async def first_response_breach(rig: TicketRig) -> None:
    await rig.open(priority="urgent")
    await rig.sleep(timedelta(minutes=16))


async def tier_timeout_chain(rig: TicketRig) -> None:
    h = await rig.open(priority="urgent")
    await h.execute_update("respond", {"agent_id": "amy"})
    await rig.sleep(timedelta(hours=32))


async def agent_request(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "amy"})
    await h.execute_update(
        "request_escalation", {"agent_id": "amy", "reason": "needs DBA", "to_tier": "L3"}
    )


async def pause_resume(rig: TicketRig) -> None:
    h = await rig.open(priority="high")
    await rig.sleep(timedelta(minutes=10))
    await h.execute_update("await_customer", {"agent_id": "amy"})
    await rig.sleep(timedelta(days=3))
    await h.execute_update("customer_replied", {"message": "here you go"})


async def priority_change_breach(rig: TicketRig) -> None:
    h = await rig.open(priority="low")
    await rig.sleep(timedelta(minutes=30))
    await h.execute_update(
        "change_priority", {"agent_id": "lead", "priority": "urgent", "reason": "outage"}
    )


async def auto_close(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("respond", {"agent_id": "amy"})
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "restarted"})
    await h.result()


async def reopen(rig: TicketRig) -> None:
    h = await rig.open(priority="high")
    await h.execute_update("respond", {"agent_id": "amy"})
    await rig.sleep(timedelta(hours=1))
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    await rig.sleep(timedelta(hours=10))
    await h.execute_update("reopen", {"reason": "still broken"})
    await rig.sleep(timedelta(hours=63))
    h = await rig.open()
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    await h.execute_update("customer_replied", {"message": "not fixed"})


async def request_id(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "r-1"})
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "r-1"})  # a retry
    await h.signal("assign", {"agent_id": "amy", "request_id": "r-1"})
    await _refused(h, "assign", {"agent_id": "bob", "request_id": "r-1"})  # bound to amy
    await h.signal("assign", {"agent_id": "carl", "request_id": "r-1"})  # ActionRejected
    await h.query("state")


async def malformed_signals(rig: TicketRig) -> None:
    h = await rig.open()
    await h.signal("assign", "not an object")
    await h.signal("request_escalation", {"agent_id": "amy"})
    await h.signal("reopen", {"reason": "x"})
    await h.signal("no_such_action", {"x": 1})
    await h.signal("respond", {"agent_id": "amy", "message": "x" * 100_000})
    await h.execute_update("assign", {"agent_id": "amy"})


async def hostile_payloads(rig: TicketRig) -> None:
    """Refused where they enter: nested too deep, over the size limit, not JSON (issue 13)."""
    h = await rig.open()
    deep = '{"agent_id": "amy", "x": ' + "[" * 199 + "]" * 199 + "}"
    await h.signal(
        "respond", RawValue(Payload(metadata={"encoding": b"json/plain"}, data=deep.encode()))
    )
    await h.signal("respond", {"agent_id": "amy", "message": "x" * 300_000})
    await h.signal("respond", RawValue(Payload(metadata={"encoding": b"json/plain"}, data=b"{")))
    await h.execute_update("respond", {"agent_id": "amy", "message": "still here"})


def _json_text(text: str) -> RawValue:
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode()))


async def reset_resume(rig: TicketRig) -> None:
    """An operator's reset to the first workflow task: the new run resumes from the store."""
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "r-assign"})
    client = rig.client
    completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    done = [e.event_id async for e in h.fetch_history_events() if e.event_type == completed]
    reset = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=h.id),
            reason="operator reset",
            workflow_task_finish_event_id=done[0],
            request_id=str(uuid.uuid4()),
        )
    )
    again = client.get_workflow_handle(h.id, run_id=reset.run_id)
    await again.execute_update("respond", {"agent_id": "amy", "message": "back"})
    rig.handles.append(again)


async def invalid_input(rig: TicketRig) -> None:
    bad: list[dict[str, Any]] = [
        {"ticket_id": "T 1", "subject": "", "customer_id": "c", "extra": 1},
        {"ticket_id": "T-nope", "subject": "s", "customer_id": "c", "policy": "nope"},
    ]
    for ticket in bad:
        h = await rig.start_raw(ticket)
        with contextlib.suppress(WorkflowFailureError):
            await h.result()


async def top_tier_reminders(rig: TicketRig) -> None:
    h = await rig.open(priority="urgent")
    await h.execute_update("respond", {"agent_id": "amy"})
    await h.execute_update(
        "request_escalation", {"agent_id": "amy", "reason": "x", "to_tier": "L3"}
    )
    await rig.sleep(timedelta(hours=7, minutes=1))
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    await rig.sleep(timedelta(hours=5))


async def close_by_agent(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "amy"})
    await h.signal("respond", {"agent_id": "amy", "message": "hello"})
    await h.execute_update("close", {"agent_id": "amy"})
    await h.result()


async def business_hours(rig: TicketRig) -> None:
    await skip_to_friday_evening(rig)
    await rig.open(priority="urgent", policy="office")
    await rig.sleep(timedelta(days=3))
    h = await rig.open(priority="urgent", policy="office")
    await h.execute_update("respond", {"agent_id": "amy"})
    await h.execute_update(
        "request_escalation", {"agent_id": "amy", "reason": "x", "to_tier": "L3"}
    )
    await rig.sleep(timedelta(days=10))


async def business_hours_dates(rig: TicketRig) -> None:
    await skip_to_half_day_eve(rig)
    h = await rig.open(priority="high", policy="office")
    await h.execute_update("respond", {"agent_id": "amy"})
    await rig.sleep(timedelta(days=3))


async def continue_as_new(rig: TicketRig) -> None:
    """A ticket busy enough to continue as new twice (budget lowered to CAN_BUDGET events),
    a request id repeated across runs, then its clocks firing on the last run."""
    h = await rig.open(priority="urgent")
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "a-1"})
    for i in range(8):
        await h.execute_update("await_customer", {"agent_id": "amy", "request_id": f"w-{i}"})
        await h.execute_update("customer_replied", {"message": f"reply {i}"})
    await h.execute_update("assign", {"agent_id": "amy", "request_id": "a-1"})  # a no-op
    await h.signal("respond", {"agent_id": "amy", "message": "on it"})
    await rig.sleep(timedelta(hours=5))


async def _refused(h: Any, action: str, payload: dict[str, Any]) -> None:
    with contextlib.suppress(WorkflowUpdateFailedError):
        await h.execute_update(action, payload)


async def rejected_updates(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    await _refused(h, "request_escalation", {"agent_id": "amy", "reason": "why"})
    await _refused(h, "respond", {"agent": "typo"})
    h = await rig.open(priority="high", customer_id="globex")
    await h.execute_update("request_escalation", {"agent_id": "amy", "reason": "needs L2"})
    await h.execute_update("assign", {"agent_id": "bob"})
    await h.execute_update("await_customer", {"agent_id": "bob"})
    await h.signal("customer_replied")
    await h.execute_update("request_escalation", {"agent_id": "a", "reason": "x", "to_tier": "L3"})
    await _refused(h, "request_escalation", {"agent_id": "a", "reason": "more"})
    await h.execute_update("change_priority", {"agent_id": "bob", "priority": "urgent"})
    await h.execute_update("resolve", {"agent_id": "bob", "resolution": "done"})
    await h.execute_update("reopen", {"reason": "smoking again"})
    await h.execute_update("resolve", {"agent_id": "bob", "resolution": "replaced"})
    await h.execute_update("close", {"agent_id": "bob"})
    await h.result()


async def authorization(rig: TicketRig) -> None:
    h = await rig.open()
    await h.execute_update("assign", {"agent_id": "ann"})
    await h.execute_update("request_escalation", {"agent_id": "ann", "reason": "db"})
    await _refused(h, "respond", {"agent_id": "ann"})
    await h.execute_update("respond", {"agent_id": "ben"})
    await h.execute_update("change_priority", {"agent_id": "max", "priority": "urgent"})
    h = await rig.open()
    await _refused(h, "resolve", {"agent_id": "zed", "resolution": "x"})
    await h.signal("resolve", {"agent_id": "zed", "resolution": "x"})
    await h.execute_update("assign", {"agent_id": "ann"})
    await _refused(h, "assign", {"agent_id": "ann", "assignee": "ben"})
    await h.execute_update("resolve", {"agent_id": "ann", "resolution": "done"})
    await h.execute_update("customer_replied", {"message": "not fixed"})
    await h.execute_update("close", {"agent_id": "max"})
    await h.result()


# Signs the `principals` scenario's callers; replay needs no key (the decisions are recorded).
PRINCIPAL_KEYS = parse_keys("rec1:" + base64.b64encode(secrets.token_bytes(32)).decode())


async def principals(rig: TicketRig) -> None:
    """ESCALATION_REQUIRE_PRINCIPAL on: unsigned actions refused, signed ones applied."""
    h = await rig.open()
    await _refused(h, "assign", {"agent_id": "ann"})
    await h.signal("respond", {"agent_id": "ann"})
    signed = signing_client(rig.client, PRINCIPAL_KEYS).get_workflow_handle(h.id)
    with acting_as(Caller("agent", "ann", None)):
        await signed.execute_update("assign", {"agent_id": "ann"})
        await signed.signal("respond", {"agent_id": "ann", "message": "on it"})
    await h.execute_update("customer_replied", {"message": "thanks"})
    with acting_as(Caller("agent", "max", None)):
        await signed.execute_update("close", {"agent_id": "max"})
    await h.result()


TEAMS_DIRECTORY = """
[agents.ann]
name = "Ann"
tiers = ["L1"]
[agents.bea]
name = "Bea"
tiers = ["billing"]
[agents.carl]
name = "Carl"
tiers = ["billing"]
[agents.max]
name = "Max"
tiers = ["billing-manager"]
"""


async def teams_ack_chain(rig: TicketRig) -> None:
    """Escalated to billing: auto-assigned, not acknowledged, reassigned, not acknowledged,
    escalated to the manager (ack_timeout), who acknowledges."""
    h = await rig.open(category="billing")
    await h.execute_update("request_escalation", {"agent_id": "ann", "reason": "dispute"})
    await _until_assigned(h)
    await rig.sleep(timedelta(minutes=10, seconds=1))
    await _until_assigned(h)
    await rig.sleep(timedelta(minutes=10, seconds=1))
    await _until_assigned(h, "max")
    await h.execute_update("acknowledge", {"agent_id": "max"})
    await rig.sleep(timedelta(minutes=30))


async def teams_transfer(rig: TicketRig) -> None:
    """Transferred from the default path to billing, assigned, acknowledged by a reply, a
    refused transfer signal, resolved and closed by the timer."""
    h = await rig.open(category="hardware")
    await h.execute_update(
        "transfer", {"agent_id": "ann", "path": "billing", "to_tier": "billing", "reason": "r"}
    )
    who = await _until_assigned(h)
    await h.execute_update("respond", {"agent_id": who, "message": "on it"})
    await h.signal("transfer", {"agent_id": who, "path": "nope", "reason": "x"})
    await h.execute_update("resolve", {"agent_id": who, "resolution": "refunded"})
    await h.result()


async def teams_unavailable(rig: TicketRig) -> None:
    """Opened at billing where everyone is away: nobody available, tried again after
    ack_within (a timer), assigned by hand, resolved."""
    h = await rig.open(path="fast")
    await rig.sleep(timedelta(minutes=10, seconds=1))
    await rig.sleep(timedelta(minutes=5))
    await h.execute_update("assign", {"agent_id": "bea"})  # away, yet she may take it
    await h.execute_update("resolve", {"agent_id": "bea", "resolution": "refunded"})


async def teams_business_hours(rig: TicketRig) -> None:
    """Auto-assigned at 16:55 on a Friday in Berlin: the ack clock waits for Monday 09:05."""
    await skip_to_friday_evening(rig)
    await rig.sleep(timedelta(minutes=5))
    h = await rig.open(path="fast", policy="default")
    await _until_assigned(h)
    await rig.sleep(timedelta(days=2, hours=16, minutes=11))
    await _until_assigned(h)


async def rules_elapsed(rig: TicketRig) -> None:
    """Tagged, answered, the customer replies: two hours later the elapsed rule escalates and
    notifies; a refused tag signal; the next reply breaches (high: 1h) without escalating."""
    h = await rig.open(priority="high", tags=["eu"])
    await h.execute_update("tag", {"agent_id": "ann", "add": ["vip"], "remove": ["eu"]})
    await h.signal("tag", {"agent_id": "ann", "add": ["vip"]})
    await h.execute_update("respond", {"agent_id": "ann", "message": "looking"})
    await h.execute_update("customer_replied", {"message": "still broken"})
    await rig.sleep(timedelta(hours=2, seconds=5))
    await h.execute_update("respond", {"agent_id": "ann"})


async def rules_priority(rig: TicketRig) -> None:
    """A VIP urgent ticket skips L1 at open; a normal one raised to urgent escalates at once."""
    await rig.open(priority="urgent", tags=["vip"])
    h = await rig.open(priority="normal")
    await h.execute_update("change_priority", {"agent_id": "ann", "priority": "urgent"})
    await h.execute_update("resolve", {"agent_id": "ann", "resolution": "fixed"})


def _rules_policies() -> dict[str, Policy]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policies.toml"
        path.write_text(RULES_TOML)
        return load_policies(path)


RULES = _rules_policies()


async def _until_assigned(h: Any, who: str | None = None) -> str:
    for _ in range(500):
        view = await h.query("state")
        assignee = view["assignment"]["assignee"] if view else None
        if assignee is not None and (who is None or assignee == who):
            return str(assignee)
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{h.id}: not assigned")


# name -> (driver, server, policies, agent directory)
SCENARIOS: dict[str, tuple[Driver, str, Policies | None, str | None]] = {
    "first_response_breach": (first_response_breach, "time", None, None),
    "tier_timeout_chain": (tier_timeout_chain, "time", None, None),
    "agent_request": (agent_request, "time", None, None),
    "pause_resume": (pause_resume, "time", None, None),
    "priority_change_breach": (priority_change_breach, "time", None, None),
    "auto_close": (auto_close, "time", None, None),
    "reopen": (reopen, "time", None, None),
    "request_id": (request_id, "time", None, None),
    "malformed_signals": (malformed_signals, "time", None, None),
    "invalid_input": (invalid_input, "time", None, None),
    "top_tier_reminders": (top_tier_reminders, "time", None, None),
    "close_by_agent": (close_by_agent, "time", None, None),
    "business_hours": (business_hours, "time", OFFICE, None),
    "business_hours_dates": (business_hours_dates, "time", half_day_policies, None),
    "rejected_updates": (rejected_updates, "dev", None, None),
    "hostile_payloads": (hostile_payloads, "time", None, None),
    "reset_resume": (reset_resume, "dev", None, None),
    "authorization": (authorization, "dev", None, DIRECTORY),
    "continue_as_new": (continue_as_new, "time", None, None),
    "principals": (principals, "dev", None, DIRECTORY),
    "teams_ack_chain": (teams_ack_chain, "time", TEAMS, TEAMS_DIRECTORY),
    "teams_transfer": (teams_transfer, "time", TEAMS, TEAMS_DIRECTORY),
    "teams_unavailable": (
        teams_unavailable,
        "time",
        TEAMS,
        TEAMS_DIRECTORY.replace('tiers = ["billing"]', 'tiers = ["billing"]\naway = true'),
    ),
    "teams_business_hours": (teams_business_hours, "time", TEAMS_OFFICE, TEAMS_DIRECTORY),
    "rules_elapsed": (rules_elapsed, "time", RULES, None),
    "rules_priority": (rules_priority, "time", RULES, None),
}


# --- recording ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    async with env:
        await register_search_attributes(env.client)
        yield env


async def record(name: str, pool: asyncpg.Pool, dev: WorkflowEnvironment) -> list[Path]:
    driver, server, policies, directory = SCENARIOS[name]
    async with contextlib.AsyncExitStack() as stack:
        env = dev if server == "dev" else await stack.enter_async_context(_time_env())
        agents = None
        if directory is not None:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "agents.toml"
            path.write_text(directory)
            agents = AgentActivities(path)
            if name == "principals":
                agents = AgentActivities(
                    path, principal_keys=PRINCIPAL_KEYS, require_principal=True
                )
        task_queue = f"record-{uuid.uuid4()}"
        if callable(policies):
            chosen = policies(await env.get_current_time())
        else:
            chosen = dict(policies if policies is not None else BUILTIN_POLICIES)
        budget = history_budget.CONTINUE_AS_NEW_EVENTS
        if name == "continue_as_new":
            history_budget.CONTINUE_AS_NEW_EVENTS = CAN_BUDGET
        try:
            async with build_worker(env.client, task_queue, pool, chosen, agents):
                rig = TicketRig(env, pool, task_queue)
                await driver(rig)
                await rig.finish()
                histories = [run for h in rig.handles for run in await _runs(env, h)]
        finally:
            history_budget.CONTINUE_AS_NEW_EVENTS = budget
    for old in HERE.glob(f"{name}*.json"):
        if old.stem == name or old.stem.removeprefix(f"{name}-").isdigit():
            old.unlink()
    paths = []
    for n, history in enumerate(histories, 1):
        path = HERE / (f"{name}.json" if len(histories) == 1 else f"{name}-{n}.json")
        path.write_text(history.to_json() + "\n")
        paths.append(path)
    return paths


async def _runs(env: WorkflowEnvironment, handle: Any) -> list[Any]:
    """Every run of the workflow, following continue-as-new from the first."""
    runs = []
    run_id = handle.first_execution_run_id or handle.run_id
    while run_id:
        history = await env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs


async def record_all(dsn: str, names: list[str]) -> None:
    pool = await create_pool(dsn, min_size=1, max_size=10)
    try:
        await migrate(pool)
        dev = await WorkflowEnvironment.start_local(
            dev_server_existing_path=venv_binary("temporal"),
            data_converter=pydantic_data_converter,
            search_attributes=list(ALL_KEYS),
            ui=False,
        )
        async with dev:
            for name in names:
                paths = await record(name, pool, dev)
                print(f"{name}: {', '.join(p.name for p in paths)}", flush=True)
    finally:
        await pool.close()


def main(names: list[str]) -> None:
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        known = ", ".join(SCENARIOS)
        sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}; known: {known}")
    from runtime.database import embedded_postgres

    # A throwaway embedded PostgreSQL, as the suite's (root runs it as another user: 0755).
    root = Path(tempfile.mkdtemp(prefix="escalation-record-", dir="/tmp"))
    root.chmod(0o755)
    server = embedded_postgres().get_server(root / "pgdata", cleanup_mode="delete")
    try:
        asyncio.run(record_all(server.get_uri(), names or list(SCENARIOS)))
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
