"""Tags, next reply and rules through the real workflow, on the time-skipping server, with the
policies read from a policy file as the worker reads it (docs/rules.md).

The three rules of issue 16's first paragraph, end to end: "urgent tickets from VIP customers
skip L1", "two hours after the customer replied with no agent answer, escalate", "a priority
raised to urgent escalates at once"; then `escalation-readside rules explain` on those tickets.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

import readside
from domain.policy import Policy
from runtime.config import Settings
from runtime.config_files import load_policies
from tests.conftest import TicketRig
from tests.test_workflow_authorization import refused
from worker import build_worker

pytestmark = pytest.mark.asyncio

RULES_TOML = """
[policies.default]
tiers = ["L1", "L2", "L3"]

[policies.default.targets.urgent]
first_response = "15m"
resolution = "4h"
tier_budget = "1h"
next_reply = "30m"
[policies.default.targets.high]
first_response = "1h"
resolution = "8h"
tier_budget = "3h"
next_reply = "1h"
[policies.default.targets.normal]
first_response = "4h"
resolution = "24h"
tier_budget = "8h"
[policies.default.targets.low]
first_response = "8h"
resolution = "72h"
tier_budget = "24h"

[[policies.default.rules]]
name = "vip-urgent-skips-l1"
on = "opened"
if = { priority = ["urgent"], tags_any = ["vip"] }
then = { escalate_to = "L2" }

[[policies.default.rules]]
name = "stale-after-customer-reply"
on = "elapsed"
after = "2h"
since = "customer_replied"
if = { status = ["open"] }
then = { escalate_to = "next", notify = "stale" }

[[policies.default.rules]]
name = "urgent-escalates-at-once"
on = "priority_changed"
if = { priority = ["urgent"] }
then = { escalate_to = "next" }
"""


def write_policy(tmp: Path, text: str = RULES_TOML) -> Path:
    path = tmp / "policies.toml"
    path.write_text(text)
    return path


@pytest_asyncio.fixture(loop_scope="session")
async def rules_rig(
    time_env: WorkflowEnvironment, db_pool: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[TicketRig]:
    policies: dict[str, Policy] = load_policies(write_policy(tmp_path))
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(time_env.client, task_queue, db_pool, policies):
        rig = TicketRig(time_env, db_pool, task_queue)
        yield rig
        await rig.finish()


async def stored(rig: TicketRig, ticket_id: str) -> list[dict[str, Any]]:
    rows = await rig.pool.fetch(
        "SELECT event_type, payload, occurred_at FROM ticket_events WHERE ticket_id = $1"
        " ORDER BY seq",
        ticket_id,
    )
    return [dict(r) for r in rows]


async def explain(
    pool: asyncpg.Pool, ticket_id: str, *extra: str, now: datetime
) -> tuple[int, str, str]:
    args = readside.build_parser().parse_args(["rules", "explain", ticket_id, *extra])
    out, err = io.StringIO(), io.StringIO()
    code = await readside.run(args, pool, settings=Settings(), out=out, err=err, now=lambda: now)
    return code, out.getvalue(), err.getvalue()


async def test_vip_urgent_tickets_skip_l1(rules_rig: TicketRig) -> None:
    h = await rules_rig.open(priority="urgent", tags=["vip", "eu"])
    view = await h.query("state")
    assert (view["tier"], view["tags"]) == ("L2", ["eu", "vip"])
    assert view["escalations"][0]["trigger"] == "rule"
    assert [f["rule"] for f in view["rules"]["fired"]] == ["vip-urgent-skips-l1"]
    plain = await rules_rig.open(priority="urgent")
    assert (await plain.query("state"))["tier"] == "L1"


async def test_a_priority_raised_to_urgent_escalates_at_once(rules_rig: TicketRig) -> None:
    h = await rules_rig.open(priority="normal")
    view = await h.execute_update(
        "change_priority", {"agent_id": "ann", "priority": "urgent", "reason": "outage"}
    )
    assert view["tier"] == "L2" and view["priority"] == "urgent"
    events = await stored_after_drain(rules_rig, h)
    caused = [
        e
        for e in events
        if e["payload"].get("rule") == "urgent-escalates-at-once" and e["event_type"] != "RuleFired"
    ]
    assert [e["event_type"] for e in caused] == ["TicketEscalated"]
    assert caused[0]["payload"]["trigger"] == "rule"


async def stored_after_drain(rig: TicketRig, h: Any) -> list[dict[str, Any]]:
    await h.execute_update("tag", {"agent_id": "ann", "add": ["checked"]})  # waits for the store
    return await stored(rig, h.id.removeprefix("ticket-"))


async def test_two_hours_after_an_unanswered_customer_reply_it_escalates_to_the_second(
    rules_rig: TicketRig,
) -> None:
    h = await rules_rig.open(priority="normal")
    await h.execute_update("respond", {"agent_id": "ann", "message": "looking"})
    view = await h.execute_update("customer_replied", {"message": "still broken"})
    assert view["rules"]["next_elapsed"]["rule"] == "stale-after-customer-reply"
    due = datetime.fromisoformat(view["rules"]["next_elapsed"]["due"])
    await rules_rig.sleep(timedelta(hours=2, seconds=5))
    view = await h.query("state")
    assert view["tier"] == "L2"
    [fired] = [f for f in view["rules"]["fired"]]
    # at since + after: the decider decides at the due instant; the timer that wakes the
    # workflow for it is late only by the milliseconds a workflow task takes to start
    late = datetime.fromisoformat(fired["at"]) - due
    assert timedelta(0) <= late < timedelta(seconds=1)
    tid = h.id.removeprefix("ticket-")
    assert "stale" in await rules_rig.notification_kinds(tid)


async def test_an_agent_answer_in_time_keeps_the_rule_quiet(rules_rig: TicketRig) -> None:
    h = await rules_rig.open(priority="normal")
    await h.execute_update("respond", {"agent_id": "ann"})
    await h.execute_update("customer_replied", {})
    await rules_rig.sleep(timedelta(hours=1))
    await h.execute_update("respond", {"agent_id": "ann"})
    await rules_rig.sleep(timedelta(hours=3))
    view = await h.query("state")
    assert (view["tier"], view["rules"]["fired"]) == ("L1", [])


async def test_tags_and_next_reply_through_the_workflow(rules_rig: TicketRig) -> None:
    h = await rules_rig.open(priority="high")
    view = await h.execute_update("tag", {"agent_id": "ann", "add": ["vip"], "remove": ["x"]})
    assert view["tags"] == ["vip"]
    reason = await refused(h, "tag", {"agent_id": "ann", "add": ["vip"]})
    assert "tags would not change" in reason
    reason = await refused(h, "tag", {"agent_id": "ann", "add": ["Not OK"]})
    assert "tag: add.0: String should match pattern" in reason
    await h.execute_update("respond", {"agent_id": "ann"})
    view = await h.execute_update("customer_replied", {})
    assert view["sla"]["next_reply_due"] is not None  # high: 1h
    await rules_rig.sleep(timedelta(hours=1, seconds=1))
    view = await h.query("state")
    assert [b["metric"] for b in view["sla"]["breaches"]] == ["next_reply"]
    assert view["tier"] == "L1"  # escalate_on is first_response only


async def test_rules_explain_answers_for_the_three_rules_on_real_tickets(
    rules_rig: TicketRig, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    h = await rules_rig.open(priority="high", tags=["vip"])
    await h.execute_update("respond", {"agent_id": "ann"})
    await h.execute_update("change_priority", {"agent_id": "ann", "priority": "urgent"})
    await h.execute_update("customer_replied", {"message": "any news?"})
    await rules_rig.sleep(timedelta(hours=2, seconds=5))
    await h.execute_update("tag", {"agent_id": "ann", "add": ["seen"]})  # all stored
    tid = h.id.removeprefix("ticket-")
    now = await rules_rig.env.get_current_time()
    code, out, err = await explain(db_pool, tid, now=now)
    assert (code, err) == (0, "")
    assert f"ticket {tid}: 3 rule(s) from the policy 'default' recorded at open" in out
    assert "  not on opened" in out and "priority is 'high', not 'urgent'" in out
    assert out.count("  fired ") == 2  # the priority rule and the elapsed rule
    assert "on elapsed: 2h after customer_replied" in out

    # Try a change before deploying it: VIPs of any priority skip L1, the stale rule waits 1h.
    tried = RULES_TOML.replace('priority = ["urgent"], tags_any', "tags_any").replace(
        'after = "2h"', 'after = "1h"'
    )
    code, out, err = await explain(
        db_pool, tid, "--policy-file", str(write_policy(tmp_path, tried)), now=now
    )
    assert (code, err) == (0, "")
    assert "would have fired" in out and "on opened" in out
    assert "on elapsed: 1h after customer_replied" in out

    bad = write_policy(tmp_path, tried.replace('escalate_to = "L2"', 'escalate_to = "L7"'))
    code, out, err = await explain(db_pool, tid, "--policy-file", str(bad), now=now)
    assert code == 2 and "rules[0] (vip-urgent-skips-l1).then.escalate_to: unknown tier" in err
    code, _, err = await explain(db_pool, "T-nope", now=now)
    assert code == 1 and "T-nope is not in the event store" in err
