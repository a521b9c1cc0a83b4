"""Teams through the real workflow: auto-assignment, ack timeouts, transfer (docs/teams.md).

Timers on the time-skipping server; the concurrent choice of two workers on the dev server.
Agent ids carry a per-test suffix: loads and team cursors live in the session's database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.agents import AgentActivities
from domain.policy import Policy, parse_policies
from store.connection import create_pool
from tests.conftest import TicketRig
from tests.test_domain_teams import TEAMS_TOML
from tests.test_workflow_authorization import refused
from tests.test_workflow_business_hours import skip_to_friday_evening
from worker import build_worker

pytestmark = pytest.mark.asyncio
BERLIN = ZoneInfo("Europe/Berlin")
POLICIES = parse_policies(TEAMS_TOML, "teams.toml")
OFFICE = parse_policies(
    TEAMS_TOML.replace(
        'tiers = ["L1", "L2", "L3"]\n', 'tiers = ["L1", "L2", "L3"]\ncalendar = "office"\n', 1
    )
    + '[calendars.office]\ntimezone = "Europe/Berlin"\n'
    + "".join(
        f'{day} = "09:00-17:00"\n'
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
    ),
    "office.toml",
)


def directory(tag: str, bea: str = "", carl: str = "") -> str:
    """ann (L1), bea and carl (billing), max (billing-manager); extra lines per agent."""
    return f"""
[agents.ann-{tag}]
name = "Ann"
tiers = ["L1"]

[agents.bea-{tag}]
name = "Bea"
tiers = ["billing"]
{bea}

[agents.carl-{tag}]
name = "Carl"
tiers = ["billing"]
{carl}

[agents.max-{tag}]
name = "Max"
tiers = ["billing-manager"]
"""


@dataclass
class Teams:
    rig: TicketRig
    tag: str
    path: Path

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"


async def _teams(
    env: WorkflowEnvironment, pool: asyncpg.Pool, tmp: Path, policies: dict[str, Policy], **kw: str
) -> AsyncIterator[Teams]:
    tag = uuid.uuid4().hex[:8]
    path = tmp / "agents.toml"
    path.write_text(directory(tag, **kw))
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, pool, policies, AgentActivities(path)):
        rig = TicketRig(env, pool, task_queue)
        yield Teams(rig, tag, path)
        await rig.finish()


@pytest_asyncio.fixture(loop_scope="session")
async def teams(
    time_env: WorkflowEnvironment, db_pool: Any, tmp_path: Path
) -> AsyncIterator[Teams]:
    async for t in _teams(time_env, db_pool, tmp_path, POLICIES):
        yield t


async def until(
    handle: WorkflowHandle[Any, Any], ok: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Poll the state query (no timer is due meanwhile, so no time needs to pass)."""
    view: dict[str, Any] = {}
    for _ in range(300):
        view = await handle.query("state")
        if view is not None and ok(view):
            return view
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: never happened; last view {view}")


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """What the Temporal UI shows as the workflow's current details."""
    from temporalio.api.sdk.v1 import WorkflowMetadata

    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


def assignee(view: dict[str, Any]) -> str | None:
    return view["assignment"]["assignee"]


async def event_types(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [e["event_type"] for e in await handle.query("history")]


async def test_ack_timeout_reassigns_then_escalates_to_the_manager(teams: Teams) -> None:
    rig = teams.rig
    h = await rig.open(category="billing")
    view = await h.query("state")
    assert (view["path"], view["tiers"], view["tier"]) == (
        "billing",
        ["L1", "billing", "billing-manager"],
        "L1",
    )
    await h.execute_update(
        "request_escalation", {"agent_id": teams.id("ann"), "reason": "billing dispute"}
    )
    view = await until(h, lambda v: assignee(v) is not None, "first auto-assignment")
    first = assignee(view)
    billing = {teams.id("bea"), teams.id("carl")}
    assert first in billing
    assert view["assignment"]["mode"] == "least_loaded"
    assert view["assignment"]["ack_due"] is not None

    await rig.sleep(timedelta(minutes=10, seconds=1))
    view = await until(h, lambda v: assignee(v) not in (None, first), "reassignment")
    assert assignee(view) == (billing - {first}).pop()
    assert view["assignment"]["timeouts"] == 1 and view["tier"] == "billing"

    await rig.sleep(timedelta(minutes=10, seconds=1))
    view = await until(h, lambda v: assignee(v) == teams.id("max"), "the manager assigned")
    assert view["tier"] == "billing-manager"
    assert view["escalations"][-1]["trigger"] == "ack_timeout"
    view = await h.execute_update("acknowledge", {"agent_id": teams.id("max")})
    assert view["assignment"]["acknowledged_at"] is not None
    assert view["assignment"]["ack_due"] is None

    assert [t for t in await event_types(h) if t != "SlaWarning"] == [
        "TicketOpened",
        "TicketEscalated",
        "TicketAssigned",
        "AssignmentTimedOut",
        "TicketAssigned",
        "AssignmentTimedOut",
        "TicketEscalated",
        "TicketAssigned",
        "AssignmentAcknowledged",
    ]
    await rig.finish()
    kinds = await rig.notification_kinds(rig.last_id)
    assert kinds.count("assigned") == 3 and kinds.count("escalated") == 2
    row = await rig.pool.fetchrow(
        "SELECT agent_id, open FROM ticket_assignees WHERE ticket_id = $1", rig.last_id
    )
    assert row is not None and (row["agent_id"], row["open"]) == (teams.id("max"), True)


async def test_at_the_top_the_last_timeout_tells_the_team_and_leaves_it_unassigned(
    teams: Teams,
) -> None:
    rig = teams.rig
    h = await rig.open(path="fast", priority="low")
    await until(h, lambda v: assignee(v) is not None, "billing assigned")
    await rig.sleep(timedelta(minutes=10, seconds=1))
    await until(h, lambda v: v["assignment"]["timeouts"] == 1, "reassigned")
    await rig.sleep(timedelta(minutes=10, seconds=1))
    await until(h, lambda v: assignee(v) == teams.id("max"), "manager assigned")
    await rig.sleep(timedelta(minutes=5, seconds=1))
    view = await until(
        h, lambda v: v["assignment"]["timeouts"] == 1 and assignee(v) is None, "left unassigned"
    )
    assert view["tier"] == "billing-manager" and view["assignment"]["ack_due"] is None
    await rig.finish()
    assert "unacknowledged" in await rig.notification_kinds(rig.last_id)


async def test_transfer_to_the_billing_path_assigns_and_any_action_acknowledges(
    teams: Teams,
) -> None:
    rig = teams.rig
    h = await rig.open(category="hardware")
    assert (await h.query("state"))["path"] == "default"
    view = await h.execute_update(
        "transfer",
        {"agent_id": teams.id("ann"), "path": "billing", "reason": "a refund, not hardware"},
    )
    assert (view["path"], view["tier"]) == ("billing", "L1")  # same position, L1 is manual
    view = await h.execute_update(
        "transfer",
        {
            "agent_id": teams.id("ann"),
            "path": "billing",
            "to_tier": "billing",
            "reason": "needs billing",
        },
    )
    assert view["tier"] == "billing"
    view = await until(h, lambda v: assignee(v) is not None, "assigned after transfer")
    who = assignee(view)
    assert who is not None
    view = await h.execute_update("respond", {"agent_id": who, "message": "on it"})
    assert view["assignment"]["acknowledged_at"] is not None
    types = await event_types(h)
    assert types[-2:] == ["AssignmentAcknowledged", "AgentResponded"]
    assert types.count("TicketTransferred") == 2
    # Refusals leave no trace.
    same = {"agent_id": who, "path": "billing", "to_tier": "billing", "reason": "x"}
    assert "nothing to transfer" in await refused(h, "transfer", same)
    nope = {"agent_id": who, "path": "nope", "reason": "x"}
    assert "unknown path 'nope'" in await refused(h, "transfer", nope)
    assert (await event_types(h)) == types


async def test_an_unknown_path_at_open_fails_the_workflow_naming_it(teams: Teams) -> None:
    h = await teams.rig.start_raw(
        {"ticket_id": f"T-{uuid.uuid4().hex[:8]}", "subject": "s", "customer_id": "c", "path": "x"}
    )
    with pytest.raises(Exception) as info:
        await h.result()
    assert "path: unknown path 'x'" in str(info.value.__cause__)


async def test_nobody_available_retries_every_ack_within(
    time_env: WorkflowEnvironment, db_pool: Any, tmp_path: Path
) -> None:
    async for teams in _teams(
        time_env, db_pool, tmp_path, POLICIES, bea="away = true", carl="away = true"
    ):
        rig = teams.rig
        h = await rig.open(path="fast")
        for _ in range(300):
            if "AssignmentUnavailable" in await event_types(h):
                break
            await asyncio.sleep(0.02)
        assert "AssignmentUnavailable" in await event_types(h)
        assert assignee(await h.query("state")) is None
        teams.path.write_text(directory(teams.tag, carl="away = true"))  # bea is back
        await rig.sleep(timedelta(minutes=10, seconds=1))
        view = await until(h, lambda v: assignee(v) is not None, "assigned on the retry")
        assert assignee(view) == teams.id("bea")
        await rig.finish()
        assert "unassigned" in await rig.notification_kinds(rig.last_id)


async def test_the_ack_clock_follows_business_hours(
    time_env: WorkflowEnvironment, db_pool: Any, tmp_path: Path
) -> None:
    async for teams in _teams(time_env, db_pool, tmp_path, OFFICE):
        rig = teams.rig
        friday = await skip_to_friday_evening(rig)  # 16:50 Berlin
        await rig.sleep(timedelta(minutes=5))
        h = await rig.open(path="fast")
        view = await until(h, lambda v: assignee(v) is not None, "assigned")
        first = assignee(view)
        monday_0905 = (friday + timedelta(days=3)).replace(hour=9, minute=5)
        ack_due = view["assignment"]["ack_due"]
        assert ack_due is not None
        # 5 minutes on Friday, 5 on Monday (to the second: the open takes a few ms).
        due = datetime.fromisoformat(ack_due).astimezone(BERLIN)
        assert abs(due - monday_0905) < timedelta(seconds=1)
        await rig.sleep(timedelta(days=2, hours=12))  # Monday 04:55: nothing timed out
        assert assignee(await h.query("state")) == first
        await rig.sleep(timedelta(hours=4, minutes=11))  # Monday 09:06
        view = await until(
            h,
            lambda v: v["assignment"]["timeouts"] == 1 and assignee(v) is not None,
            "timed out on Monday and reassigned",
        )
        assert assignee(view) not in (None, first)


async def test_two_workers_choosing_at_once_never_exceed_capacity(
    dev_env: WorkflowEnvironment, db_pool: Any, pg_dsn: str, tmp_path: Path
) -> None:
    """Six tickets enter billing at once on two workers (each with its own pool); bea takes
    two at most and carl one: exactly three are assigned, the rest find nobody available."""
    tag = uuid.uuid4().hex[:8]
    path = tmp_path / "agents.toml"
    path.write_text(directory(tag, bea="capacity = 2", carl="capacity = 1"))
    task_queue = f"tq-{uuid.uuid4()}"
    other_pool = await create_pool(pg_dsn, min_size=1, max_size=5)
    # A second client: the SDK allows one worker per task queue and client.
    other_client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        data_converter=pydantic_data_converter,
    )
    one = build_worker(dev_env.client, task_queue, db_pool, POLICIES, AgentActivities(path))
    two = build_worker(other_client, task_queue, other_pool, POLICIES, AgentActivities(path))
    try:
        async with one, two:
            rig = TicketRig(dev_env, db_pool, task_queue)
            handles = await asyncio.gather(*(rig.open(path="fast") for _ in range(6)))

            async def settled(h: WorkflowHandle[Any, Any]) -> str | None:
                for _ in range(500):
                    types = await event_types(h)
                    if "TicketAssigned" in types or "AssignmentUnavailable" in types:
                        return assignee(await h.query("state"))
                    await asyncio.sleep(0.02)
                raise AssertionError(f"{h.id}: no choice recorded")

            chosen = await asyncio.gather(*(settled(h) for h in handles))
            await rig.finish()
    finally:
        await other_pool.close()
    assert sorted(c for c in chosen if c is not None) == sorted(
        [f"bea-{tag}", f"bea-{tag}", f"carl-{tag}"]
    )
    loads = await db_pool.fetch(
        "SELECT agent_id, count(*) AS n FROM ticket_assignees WHERE open AND agent_id = ANY($1)"
        " GROUP BY agent_id",
        [f"bea-{tag}", f"carl-{tag}"],
    )
    assert {r["agent_id"]: r["n"] for r in loads} == {f"bea-{tag}": 2, f"carl-{tag}": 1}


async def test_the_worker_refuses_to_start_when_a_team_has_no_agent(tmp_path: Path) -> None:
    import worker
    from domain.agents import DirectoryError
    from runtime.config import Settings

    (tmp_path / "policy.toml").write_text(TEAMS_TOML)
    (tmp_path / "agents.toml").write_text('[agents.ann]\nname = "Ann"\ntiers = ["L1", "billing"]\n')
    settings = Settings.from_env(
        {
            "ESCALATION_POLICY_FILE": str(tmp_path / "policy.toml"),
            "ESCALATION_AGENTS_FILE": str(tmp_path / "agents.toml"),
        }
    )
    with pytest.raises(DirectoryError) as info:
        await worker.run(settings, asyncio.Event())
    assert "policies.default.paths.billing.tiers: team 'billing-manager' has no agent" in str(
        info.value
    )


async def test_the_seed_case_from_the_command_line(teams: Teams) -> None:
    """A billing ticket; L1 cannot resolve it and escalates to the billing manager, who is
    assigned, sees the acknowledgement countdown and acknowledges; another is transferred."""
    from tests.test_tickets_cli import ok, run

    rig = teams.rig
    tid = f"CLI-{uuid.uuid4().hex[:8]}"
    out = await ok(
        rig, "open", tid, "--subject", "Refund", "--customer", "acme", "--category", "billing"
    )
    rig.handles.append(rig.client.get_workflow_handle(f"ticket-{tid}"))
    assert "path billing: L1 → billing → billing-manager" in out
    ann, max_ = teams.id("ann"), teams.id("max")
    await ok(
        rig,
        "escalate",
        tid,
        "--agent",
        ann,
        "--reason",
        "cannot refund",
        "--to-tier",
        "billing-manager",
    )
    handle = rig.client.get_workflow_handle(f"ticket-{tid}")
    await until(handle, lambda v: assignee(v) == max_, "the manager assigned")
    out = await ok(rig, "show", tid)
    assert f"assignment (round_robin): {max_}, assigned" in out
    assert "acknowledge due in " in out  # the countdown (the server's clock is the wall's)
    code, _, err = await run(rig, "ack", tid, "--agent", ann)
    assert code == 1 and f"assigned to {max_}; only they can acknowledge it" in err
    details = await current_details(handle)
    assert "· path billing · ack due " in details
    out = await ok(rig, "ack", tid, "--agent", max_)
    assert out.startswith("acknowledged") and ", acknowledged " in out
    assert (await current_details(handle)).endswith("· path billing · acknowledged")
    await rig.finish()
    assert "assigned" in await rig.notification_kinds(tid)

    other = f"CLI-{uuid.uuid4().hex[:8]}"
    await ok(rig, "open", other, "--subject", "Broken", "--customer", "acme")
    rig.handles.append(rig.client.get_workflow_handle(f"ticket-{other}"))
    out = await ok(
        rig,
        "transfer",
        other,
        "--agent",
        ann,
        "--path",
        "billing",
        "--to-tier",
        "billing",
        "--reason",
        "it is a refund",
    )
    assert out.startswith("transferred") and "path billing: L1 → billing → billing-manager" in out
    code, _, err = await run(
        rig, "transfer", other, "--agent", ann, "--path", "nope", "--reason", "x"
    )
    assert code == 1 and "unknown path 'nope'" in err
