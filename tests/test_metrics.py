"""Metrics: counts derived from appended events (never twice for a retried append), and the
worker's Prometheus endpoint scraped with a ticket driven through an escalation."""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.event_store import AppendBatch, EventStoreActivities
from domain import events as ev
from domain.policy import BUILTIN_POLICIES, PRIORITIES, Policy
from runtime import metrics
from runtime.config import Settings
from runtime.temporal import connect

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Scrape:
    """A parsed Prometheus text exposition."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for line in text.splitlines():
            match = _LINE.match(line)
            if match:
                labels = dict(_LABEL.findall(match[2] or ""))
                self.samples.append((match[1], labels, float(match[3])))

    def value(self, name: str, **labels: str) -> float:
        """The sum over the series of `name` whose labels include `labels`."""
        return sum(
            v
            for n, ls, v in self.samples
            if n == name and all(ls.get(k) == want for k, want in labels.items())
        )

    def names(self) -> set[str]:
        return {n for n, _, _ in self.samples}


def scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return Scrape(response.read().decode())


def prometheus(port: int) -> Runtime:
    return metrics.prometheus_runtime(metrics.bind_address(port, "127.0.0.1"))


# --- counts from events -------------------------------------------------------------------------


def event(ticket_id: str, seq: int, data: ev.EventPayload) -> ev.DomainEvent:
    return ev.DomainEvent(
        ticket_id=ticket_id,
        seq=seq,
        event_id=uuid.uuid4(),
        event_type=data.event_type,
        payload=data.model_dump(mode="json"),
        occurred_at=datetime.now(UTC),
    )


def lifecycle(ticket_id: str) -> list[ev.DomainEvent]:
    """Opened (high), warned, breached and escalated, then a priority change, a rejected and
    some applied actions, an agent escalation, and a close."""
    due = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    payloads: list[ev.EventPayload] = [
        ev.TicketOpened(
            subject="s",
            customer_id="c",
            priority="high",
            tier="L1",
            policy=BUILTIN_POLICIES["default"],
        ),
        ev.SlaWarning(metric="first_response", tier="L1", due_at=due),
        ev.SlaBreached(metric="first_response", tier="L1", due_at=due),
        ev.TicketEscalated(from_tier="L1", to_tier="L2", trigger="first_response_breach"),
        ev.TicketAssigned(agent_id="a", assignee="a"),
        ev.PriorityChanged(agent_id="a", from_priority="high", to_priority="urgent"),
        ev.SlaBreached(metric="resolution", tier="L2", due_at=due),
        ev.ActionRejected(action="resolve", reason="no resolution"),
        ev.ActionRejected(action="fly", reason="unknown"),
        ev.TicketEscalated(from_tier="L2", to_tier="L3", trigger="agent_request", reason="x"),
        ev.AgentResponded(agent_id="a", first_response=True),
        ev.TicketResolved(agent_id="a", resolution="done"),
        ev.TicketClosed(trigger="auto"),
    ]
    return [event(ticket_id, i, p) for i, p in enumerate(payloads, start=1)]


def test_event_counts_by_label() -> None:
    got = metrics.event_counts(lifecycle("T-1"))

    def n(name: str, **labels: str) -> int:
        return sum(
            v
            for (m, ls), v in got.items()
            if m == name and all(dict(ls).get(k) == want for k, want in labels.items())
        )

    assert n(metrics.ESCALATIONS) == 2
    assert n(metrics.ESCALATIONS, tier="L2", from_tier="L1", trigger="first_response_breach") == 1
    assert n(metrics.ESCALATIONS, tier="L3", trigger="agent_request") == 1
    assert n(metrics.SLA_WARNINGS, metric="first_response", priority="high", tier="L1") == 1
    assert n(metrics.SLA_BREACHES, metric="first_response", priority="high", tier="L1") == 1
    # After the priority change, breaches count under the new priority.
    assert n(metrics.SLA_BREACHES, metric="resolution", priority="urgent", tier="L2") == 1
    assert n(metrics.ACTIONS, outcome="applied") == 5
    for action in ("assign", "change_priority", "request_escalation", "respond", "resolve"):
        assert n(metrics.ACTIONS, action=action, outcome="applied") == 1
    assert n(metrics.ACTIONS, action="resolve", outcome="rejected") == 1
    assert n(metrics.ACTIONS, action="other", outcome="rejected") == 1  # bounded label values
    assert n(metrics.ACTIONS, action="close") == 0  # closed by the timer, not an action
    assert n(metrics.EVENTS_APPENDED) == 13
    assert n(metrics.EVENTS_APPENDED, event_type="TicketEscalated") == 2


def test_sla_events_before_any_priority_use_the_prior_priority() -> None:
    due = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    batch = [event("T-1", 5, ev.SlaWarning(metric="resolution", tier="L2", due_at=due))]
    assert metrics.needs_prior_priority(batch)
    assert not metrics.needs_prior_priority(lifecycle("T-1"))
    got = metrics.event_counts(batch, "low")
    assert (
        got[(metrics.SLA_WARNINGS, (("metric", "resolution"), ("priority", "low"), ("tier", "L2")))]
        == 1
    )


# --- the append activity: counts once, however often it runs -----------------------------------


async def test_append_activity_counts_only_what_it_inserted(db_pool: asyncpg.Pool) -> None:
    port = free_port()
    runtime = prometheus(port)
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    acts = EventStoreActivities(db_pool)
    tid = f"T-{uuid.uuid4().hex[:12]}"
    events = lifecycle(tid)

    def batch(part: list[ev.DomainEvent]) -> AppendBatch:
        return AppendBatch(ticket_id=tid, events=part)

    await env.run(acts.append_events, batch(events[:2]))  # opened (high), warning
    await env.run(acts.append_events, batch(events[:2]))  # a retry: all present, counts nothing
    # A batch whose first event is already stored: only the rest count, and its breach comes
    # before any priority in the batch, so the stored priority is looked up.
    await env.run(acts.append_events, batch(events[1:4]))  # breach, escalation
    await env.run(acts.append_events, batch(events[4:6]))  # assigned, priority -> urgent
    await env.run(acts.append_events, batch([events[6]]))  # resolution breach
    s = scrape(port)

    assert s.value("escalation_events_appended_total") == 7
    assert s.value("escalation_sla_warnings_total", metric="first_response", priority="high") == 1
    assert s.value("escalation_sla_breaches_total", metric="first_response", priority="high") == 1
    assert s.value("escalation_sla_breaches_total", metric="resolution", priority="urgent") == 1
    assert s.value("escalation_sla_breaches_total") == 2
    assert s.value("escalation_escalations_total", tier="L2", trigger="first_response_breach") == 1
    assert s.value("escalation_actions_total", action="assign", outcome="applied") == 1
    assert s.value("escalation_event_store_append_seconds_count", outcome="ok") == 5
    assert s.value("escalation_event_store_append_seconds_bucket", le="+Inf") == 5
    assert 'le="0.001"' in s.text  # our own, finer buckets


# --- the worker's endpoint ----------------------------------------------------------------------


FAST = Policy.model_validate(
    {
        "name": "fast",
        "tiers": ["L1", "L2", "L3"],
        "warn_at": 0.5,
        "targets": {
            p: {"first_response": "1h", "resolution": "8h", "tier_budget": "8h"} for p in PRIORITIES
        },
    }
)


def test_connect_passes_the_runtime() -> None:
    import inspect

    assert "runtime" in inspect.signature(connect).parameters
    assert Settings.from_env({"METRICS_PORT": "9464"}).metrics_port == 9464
    assert Settings.from_env({}).metrics_port is None
    assert Settings.from_env({}).metrics_host == "0.0.0.0"
    with pytest.raises(ValueError, match="METRICS_PORT='x' is not a TCP port"):
        Settings.from_env({"METRICS_PORT": "x"})
    assert metrics.bind_address(9464) == "0.0.0.0:9464"
    assert metrics.bind_address(9464, "::") == "[::]:9464"


async def test_worker_serves_prometheus_metrics(
    time_env: WorkflowEnvironment, db_pool: asyncpg.Pool
) -> None:
    """On the time-skipping server: the SLA clocks run on its clock, not the wall clock."""
    from tests.conftest import TicketRig
    from worker import build_worker

    port = free_port()
    runtime = prometheus(port)
    target = time_env.client.service_client.config.target_host
    settings = Settings(temporal_address=target, namespace=time_env.client.namespace)
    client = await connect(settings, env={}, runtime=runtime)
    assert isinstance(client, Client)
    assert client.data_converter is pydantic_data_converter
    task_queue = f"tq-{uuid.uuid4()}"
    policies = {**BUILTIN_POLICIES, "fast": FAST}
    async with build_worker(client, task_queue, db_pool, policies):
        rig = TicketRig(time_env, db_pool, task_queue)
        rig.client = client
        try:
            handle = await rig.open(priority="urgent", policy="fast")
            # No response within 1h: warning at 30m, breach and escalation to L2 at 1h.
            await time_env.sleep(timedelta(minutes=59))
            assert (await handle.query("state"))["tier"] == "L1"
            await time_env.sleep(timedelta(minutes=2))
            # The timer has fired; its workflow task may still be on its way to the worker.
            for _ in range(500):
                state = await handle.query("state")
                if state["tier"] == "L2":
                    break
                await asyncio.sleep(0.01)
            assert state["tier"] == "L2"
            await handle.execute_update("assign", {"agent_id": "bob"})
            await handle.signal("resolve", {"agent_id": "bob"})  # no resolution: rejected
            await handle.execute_update(
                "request_escalation", {"agent_id": "bob", "reason": "needs L3"}
            )
            # Wait until every event is stored and counted (the last append follows the update,
            # and its activity records the counts just after its commit).
            expected = 0
            for _ in range(300):
                expected = (await handle.query("state"))["version"]
                s = scrape(port)
                if s.value("escalation_events_appended_total") == expected:
                    break
                await asyncio.sleep(0.05)
            stored = await db_pool.fetchval(
                "SELECT count(*) FROM ticket_events WHERE ticket_id = $1", rig.last_id
            )
            assert stored == expected
        finally:
            await rig.finish()

    assert s.value("escalation_escalations_total") == 2
    assert (
        s.value(
            "escalation_escalations_total",
            tier="L2",
            from_tier="L1",
            trigger="first_response_breach",
            task_queue=task_queue,
        )
        == 1
    )
    assert s.value("escalation_escalations_total", tier="L3", trigger="agent_request") == 1
    assert s.value("escalation_sla_warnings_total", metric="first_response", priority="urgent") == 1
    assert (
        s.value(
            "escalation_sla_breaches_total", metric="first_response", priority="urgent", tier="L1"
        )
        == 1
    )
    assert s.value("escalation_actions_total", action="assign", outcome="applied") == 1
    assert s.value("escalation_actions_total", action="resolve", outcome="rejected") == 1
    assert s.value("escalation_actions_total", action="request_escalation", outcome="applied") == 1
    assert s.value("escalation_events_appended_total") == expected
    assert s.value("escalation_event_store_append_seconds_count", outcome="ok") >= 3
    # The SDK's own metrics on the same endpoint.
    sdk = {n for n in s.names() if n.startswith("temporal_")}
    assert any(n.startswith("temporal_workflow_task_") for n in sdk), sorted(sdk)
    assert any(n.startswith("temporal_activity_execution_latency") for n in sdk), sorted(sdk)
    assert s.value("temporal_activity_execution_latency_count", task_queue=task_queue) > 0
    assert s.value("temporal_workflow_task_execution_latency_count", task_queue=task_queue) > 0
