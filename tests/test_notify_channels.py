"""Notification channels: the channels file, routing, webhook/Slack bodies and signatures, and
delivery against a local HTTP server that fails the first attempts (retries, idempotency key,
dead letters), down to a ticket on the dev server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.delivery import slack_body, verify, webhook_body
from activities.event_store import EventStoreActivities
from domain import events as ev
from domain.channels import ChannelConfig, ChannelError, parse_channels
from domain.notifications import Notification
from domain.policy import BUILTIN_POLICIES
from runtime import metrics
from runtime.config import PROJECT_ROOT
from store.event_store import append_events
from tests.conftest import start_worker, worker_process_env
from tests.test_metrics import free_port, scrape

SECRET = "s3cret-for-tests"

EXAMPLE = """
ticket_url = "https://support.example.com/tickets/{ticket_id}"

[channels.ops-l1]
type = "webhook"
url = "https://ops.example.com/hooks/l1"
secret = "abc"

[channels.ops-l2]
type = "webhook"
url = "https://ops.example.com/hooks/l2"
secret_env = "OPS_L2_SECRET"
timeout = "5s"

[channels.slack-l2]
type = "slack"
url_env = "SLACK_L2_URL"

[notify.default]
L1 = ["ops-l1"]
"*" = ["ops-l1"]

[notify.default.L2]
breach = ["ops-l2", "slack-l2"]
"*" = ["slack-l2"]

[notify."*"]
"*" = ["ops-l1"]
"""
ENV = {"OPS_L2_SECRET": "from-env", "SLACK_L2_URL": "https://hooks.slack.example/T/B/x"}


# --- the channels file --------------------------------------------------------------------------


def names(config: ChannelConfig, policy: str | None, tier: str, kind: str) -> list[str]:
    return [c.name for c in config.route(policy, tier, kind)]


def test_channels_file_routes_by_policy_tier_and_kind() -> None:
    config = parse_channels(EXAMPLE, "channels.toml", ENV)
    assert config.configured
    assert names(config, "default", "L1", "at_risk") == ["ops-l1"]
    assert names(config, "default", "L2", "breach") == ["ops-l2", "slack-l2"]
    assert names(config, "default", "L2", "escalated") == ["slack-l2"]  # the kind's "*"
    assert names(config, "default", "L3", "breach") == ["ops-l1"]  # the tier's "*"
    assert names(config, "demo", "L2", "breach") == ["ops-l1"]  # the policy's "*"
    assert names(config, None, "L2", "breach") == ["ops-l1"]  # ticket not found: "*"
    assert config.channels["ops-l2"].secret == "from-env"
    assert config.channels["ops-l2"].timeout == timedelta(seconds=5)
    assert config.channels["ops-l1"].timeout == timedelta(seconds=10)
    assert config.channels["slack-l2"].url == ENV["SLACK_L2_URL"]
    assert config.link("T-1") == "https://support.example.com/tickets/T-1"
    config.check_policies(BUILTIN_POLICIES)
    # Secrets never show in a repr (logs, tracebacks).
    assert "abc" not in repr(config.channels["ops-l1"])
    assert "hooks.slack" not in str(config.channels["slack-l2"])


def test_no_routes_no_delivery_and_no_file_is_no_channels() -> None:
    config = parse_channels('[channels.a]\ntype = "slack"\nurl = "https://x.example"\n')
    assert not config.configured
    assert config.route("default", "L1", "breach") == []
    assert names(parse_channels("[notify.default]\nL2 = []\n"), "default", "L1", "breach") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("channels = 1\n[x]\n", "unknown top-level key(s): x"),
        ("[channels.a\n", "not valid TOML"),
        ('[channels.a]\ntype = "email"\nurl = "https://x"\n', "channels.a.type:"),
        (
            '[channels.a]\ntype = "slack"\nurl = "https://x"\ncolour = 1\n',
            "channels.a.colour: unknown",
        ),
        ('[channels.a]\ntype = "slack"\n', "channels.a.url: required field is missing"),
        ('[channels.a]\ntype = "slack"\nurl = "ftp://x"\n', "channels.a.url: "),
        ('[channels.a]\ntype = "slack"\nurl = "https://x"\nsecret = "k"\n', "channels.a.secret:"),
        ('[channels.a]\ntype = "webhook"\nurl = "https://x"\n', "channels.a.secret: a webhook"),
        (
            '[channels.a]\ntype = "webhook"\nurl = "https://x"\nsecret = "k"\ntimeout = "1m"\n',
            "channels.a.timeout:",
        ),
        (
            '[channels.a]\ntype = "webhook"\nurl = "https://x"\nsecret_env = "NOPE_UNSET"\n',
            "channels.a.secret_env: environment variable NOPE_UNSET is not set",
        ),
        (
            '[channels.a]\ntype = "webhook"\nurl = "https://x"\nsecret = "k"\nsecret_env = "K"\n',
            "give secret or secret_env, not both",
        ),
        ('[channels.a]\ntype = "slack"\nurl = "https://x"\nname = "b"\n', "channels.a.name:"),
        ('[notify.default]\nL1 = ["nope"]\n', "notify.default.L1: unknown channel 'nope'"),
        ('[notify.default]\nL1 = "ops"\n', "notify.default.L1: must be a list"),
        ("[notify.default.L1]\npaged = []\n", "notify.default.L1.paged: unknown kind"),
        ('[notify.default.L1]\nbreach = ["x"]\n', "notify.default.L1.breach: unknown channel"),
        ('ticket_url = "https://x/tickets"\n', "ticket_url: must be text holding {ticket_id}"),
        ('ticket_url = "https://x/{ticket_id}/{other}"\n', "ticket_url: {ticket_id} is the only"),
    ],
)
def test_channels_file_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ChannelError) as err:
        parse_channels(text, "channels.toml", {})
    assert str(err.value).startswith("channels.toml: ")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[notify.gold]\nL1 = []\n", "notify.gold: unknown policy 'gold'"),
        ("[notify.default]\nL4 = []\n", "notify.default.L4: unknown tier 'L4'"),
        ('[notify."*"]\nL9 = []\n', "notify.*.L9: unknown tier 'L9'"),
    ],
)
def test_routes_are_checked_against_the_workers_policies(text: str, message: str) -> None:
    config = parse_channels(text, "channels.toml", {})
    with pytest.raises(ChannelError) as err:
        config.check_policies(BUILTIN_POLICIES)
    assert str(err.value).startswith("channels.toml: ")
    assert message in str(err.value)


def test_worker_refuses_a_bad_channels_file(tmp_path: Any) -> None:
    bad = tmp_path / "channels.toml"
    bad.write_text('[notify.default]\nL1 = ["ghost"]\n')
    done = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=PROJECT_ROOT,
        env={"ESCALATION_CHANNELS_FILE": str(bad), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "invalid notification channels" in done.stderr
    assert "notify.default.L1: unknown channel 'ghost'" in done.stderr


# --- bodies -------------------------------------------------------------------------------------


def notice(ticket_id: str = "T-1", kind: str = "breach", tier: str = "L2") -> Notification:
    return Notification(
        notification_id=f"{uuid.uuid4()}:{kind}",
        ticket_id=ticket_id,
        kind=kind,
        tier=tier,
        subject="Refund <not> received",
        message="resolution SLA breached (was due 2026-11-27 10:00:00+00:00)",
        at=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
    )


def test_webhook_body_holds_the_notification_and_verifies() -> None:
    n = notice()
    body = webhook_body(n, "default", "https://support.example.com/tickets/T-1")
    data = json.loads(body)
    assert {k: data[k] for k in n.model_dump(mode="json")} == n.model_dump(mode="json")
    assert data["policy"] == "default"
    assert data["workflow_id"] == "ticket-T-1"
    assert data["link"] == "https://support.example.com/tickets/T-1"
    assert data["text"].startswith("SLA breached · L2 · ticket T-1: Refund <not> received — ")
    assert webhook_body(n, "default", None) == webhook_body(n, "default", None)  # stable


def test_slack_body_is_a_readable_text_message() -> None:
    n = notice(kind="escalated")
    data = json.loads(slack_body(n, "https://support.example.com/tickets/T-1"))
    assert list(data) == ["text"]
    assert data["text"] == (
        ":arrow_double_up: *Escalated* · L2 · ticket "
        "<https://support.example.com/tickets/T-1|T-1>: Refund &lt;not&gt; received\n"
        "resolution SLA breached (was due 2026-11-27 10:00:00+00:00)"
    )
    plain = json.loads(slack_body(notice(kind="at_risk"), None))["text"]
    assert plain.startswith(":warning: *SLA at risk* · L2 · ticket T-1: ")


# --- a local receiver that fails the first attempts ---------------------------------------------


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP server on 127.0.0.1 that answers 500 to the first `fail` requests per path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.fail: dict[str, int] = {}
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    seen = sum(1 for r in receiver.requests if r.path == self.path)
                    receiver.requests.append(Received(self.path, dict(self.headers), body))
                    failing = seen < receiver.fail.get(self.path, 0)
                time.sleep(receiver.delay)
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def channels_for(receiver: Receiver, routes: str, timeout: str = "5s") -> ChannelConfig:
    text = f"""
ticket_url = "https://support.example.com/tickets/{{ticket_id}}"
[channels.hook]
type = "webhook"
url = "{receiver.url}/hook"
secret = "{SECRET}"
timeout = "{timeout}"

[channels.slack]
type = "slack"
url = "{receiver.url}/slack"

{routes}
"""
    config = parse_channels(text, "channels.toml", {})
    config.check_policies(BUILTIN_POLICIES)
    return config


async def opened_ticket(pool: asyncpg.Pool, policy: str = "default") -> str:
    """A ticket whose TicketOpened is stored (the notify activity routes by its policy)."""
    ticket_id = f"T-{uuid.uuid4().hex[:12]}"
    opened = ev.TicketOpened(
        subject="Refund not received",
        customer_id="acme",
        priority="high",
        tier="L1",
        policy=BUILTIN_POLICIES[policy],
    )
    event = ev.DomainEvent(
        ticket_id=ticket_id,
        seq=1,
        event_id=uuid.uuid4(),
        event_type="TicketOpened",
        payload=opened.model_dump(mode="json"),
        occurred_at=datetime.now(UTC),
    )
    await append_events(pool, [event])
    return ticket_id


def attempt_env(
    attempt: int, maximum: int = 3, runtime: Runtime | None = None
) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, attempt=attempt, retry_policy=RetryPolicy(maximum_attempts=maximum)
    )
    if runtime is not None:
        env.metric_meter = runtime.metric_meter
    return env


async def deliveries(pool: asyncpg.Pool, notification_id: str) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT channel, attempts, delivered_at IS NOT NULL AS delivered, last_error"
        " FROM notification_deliveries WHERE notification_id = $1",
        notification_id,
    )
    return {r["channel"]: dict(r) for r in rows}


async def dead_letters(pool: asyncpg.Pool, notification_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT channel, ticket_id, kind, tier, attempts, last_error"
        " FROM notification_dead_letters WHERE notification_id = $1 ORDER BY channel",
        notification_id,
    )
    return [dict(r) for r in rows]


async def test_webhook_retried_until_delivered_signed_with_one_idempotency_key(
    db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    acts = EventStoreActivities(db_pool, channels_for(receiver, '[notify.default]\nL2 = ["hook"]'))
    n = notice(await opened_ticket(db_pool))
    receiver.fail["/hook"] = 2

    for attempt in (1, 2):
        with pytest.raises(ApplicationError) as err:
            await attempt_env(attempt).run(acts.notify, n)
        assert err.value.type == "DeliveryFailed"
        assert not err.value.non_retryable
        assert f"attempt {attempt} of 3" in str(err.value)
        assert "hook: HTTP 500" in str(err.value)
        assert receiver.url not in str(err.value)  # URLs may carry tokens
    assert await attempt_env(3).run(acts.notify, n) is False  # recorded on attempt 1

    got = receiver.to("/hook")
    assert len(got) == 3
    assert {r.headers["Idempotency-Key"] for r in got} == {n.notification_id}
    assert [r.headers["X-Escalation-Attempt"] for r in got] == ["1", "2", "3"]
    assert len({r.body for r in got}) == 1  # the same body on every attempt
    for r in got:
        assert r.headers["X-Escalation-Signature"].startswith("sha256=")
        assert verify(SECRET, r.body, r.headers["X-Escalation-Signature"])
        assert not verify("wrong", r.body, r.headers["X-Escalation-Signature"])
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    body = json.loads(got[0].body)
    assert body["notification_id"] == n.notification_id
    assert body["ticket_id"] == n.ticket_id
    assert body["kind"] == "breach"
    assert body["tier"] == "L2"
    assert body["policy"] == "default"
    assert body["link"] == f"https://support.example.com/tickets/{n.ticket_id}"

    rows = await deliveries(db_pool, n.notification_id)
    assert rows["hook"]["delivered"] and rows["hook"]["attempts"] == 3
    assert await dead_letters(db_pool, n.notification_id) == []

    # A later retry (say, the completion was lost) sends nothing again.
    await attempt_env(4, 10).run(acts.notify, n)
    assert len(receiver.to("/hook")) == 3


async def test_a_retry_skips_the_channels_that_already_took_the_notice(
    db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    routes = '[notify.default.L2]\nescalated = ["hook", "slack"]'
    acts = EventStoreActivities(db_pool, channels_for(receiver, routes))
    n = notice(await opened_ticket(db_pool), kind="escalated")
    receiver.fail["/slack"] = 1

    with pytest.raises(ApplicationError, match="slack: HTTP 500"):
        await attempt_env(1).run(acts.notify, n)
    await attempt_env(2).run(acts.notify, n)

    assert len(receiver.to("/hook")) == 1
    assert len(receiver.to("/slack")) == 2
    slack = json.loads(receiver.to("/slack")[-1].body)
    assert list(slack) == ["text"]
    assert slack["text"].startswith(":arrow_double_up: *Escalated* · L2 · ticket <https://")
    assert "X-Escalation-Signature" not in receiver.to("/slack")[-1].headers
    assert receiver.to("/slack")[-1].headers["Idempotency-Key"] == n.notification_id
    rows = await deliveries(db_pool, n.notification_id)
    assert rows["hook"]["attempts"] == 1 and rows["hook"]["delivered"]
    assert rows["slack"]["attempts"] == 2 and rows["slack"]["delivered"]


async def test_last_attempt_writes_a_dead_letter_and_returns(
    db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    routes = '[notify."*"]\n"*" = ["hook", "slack"]'
    acts = EventStoreActivities(db_pool, channels_for(receiver, routes))
    n = notice(await opened_ticket(db_pool, "demo"), kind="at_risk", tier="L1")
    receiver.fail["/hook"] = 100

    port = free_port()
    runtime = metrics.prometheus_runtime(f"127.0.0.1:{port}")
    with pytest.raises(ApplicationError, match="attempt 1 of 2"):
        await attempt_env(1, maximum=2, runtime=runtime).run(acts.notify, n)
    assert await attempt_env(2, maximum=2, runtime=runtime).run(acts.notify, n) is False

    s = scrape(port)
    name = "escalation_notifications_total"
    assert s.value(name, channel="slack", kind="at_risk", outcome="delivered") == 1
    assert s.value(name, channel="hook", kind="at_risk", outcome="failed") == 2
    assert s.value(name, channel="hook", kind="at_risk", outcome="dead_lettered") == 1
    assert s.value(name, channel="slack", outcome="failed") == 0

    assert await dead_letters(db_pool, n.notification_id) == [
        {
            "channel": "hook",
            "ticket_id": n.ticket_id,
            "kind": "at_risk",
            "tier": "L1",
            "attempts": 2,
            "last_error": "HTTP 500",
        }
    ]
    rows = await deliveries(db_pool, n.notification_id)
    assert not rows["hook"]["delivered"] and rows["hook"]["attempts"] == 2
    assert rows["slack"]["delivered"] and rows["slack"]["attempts"] == 1
    assert len(receiver.to("/slack")) == 1
    # The notice itself is still recorded once, as before channels existed.
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM notifications WHERE notification_id = $1", n.notification_id
        )
        == 1
    )


async def test_unlimited_retry_policy_dead_letters_at_the_default_attempt(
    db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    acts = EventStoreActivities(db_pool, channels_for(receiver, '[notify.default]\nL2 = ["hook"]'))
    n = notice(await opened_ticket(db_pool))
    receiver.fail["/hook"] = 100
    with pytest.raises(ApplicationError, match="attempt 9 of 10"):
        await attempt_env(9, maximum=0).run(acts.notify, n)
    await attempt_env(10, maximum=0).run(acts.notify, n)
    assert [d["attempts"] for d in await dead_letters(db_pool, n.notification_id)] == [10]


async def test_a_slow_channel_times_out(db_pool: asyncpg.Pool, receiver: Receiver) -> None:
    config = channels_for(receiver, '[notify.default]\nL2 = ["hook"]', timeout="1s")
    acts = EventStoreActivities(db_pool, config)
    n = notice(await opened_ticket(db_pool))
    receiver.delay = 1.5
    with pytest.raises(ApplicationError, match="hook: timed out after 1s"):
        await attempt_env(1).run(acts.notify, n)


async def test_unreachable_channel_is_a_retryable_failure(db_pool: asyncpg.Pool) -> None:
    closed = Receiver()
    closed.close()  # nothing listens on this port any more
    acts = EventStoreActivities(db_pool, channels_for(closed, '[notify.default]\nL2 = ["hook"]'))
    n = notice(await opened_ticket(db_pool))
    with pytest.raises(ApplicationError, match="hook: connection failed"):
        await attempt_env(1).run(acts.notify, n)


async def test_unrouted_notice_is_only_recorded(db_pool: asyncpg.Pool, receiver: Receiver) -> None:
    acts = EventStoreActivities(db_pool, channels_for(receiver, '[notify.default]\nL3 = ["hook"]'))
    n = notice(await opened_ticket(db_pool), tier="L2")
    assert await attempt_env(1).run(acts.notify, n) is True
    assert receiver.requests == []
    assert await deliveries(db_pool, n.notification_id) == {}


# --- a ticket on the dev server: Temporal retries the delivery ----------------------------------


@pytest.mark.devserver
async def test_escalation_reaches_the_webhook_through_temporal_retries(
    dev_env: WorkflowEnvironment, db_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    from tests.conftest import TicketRig
    from worker import build_worker

    config = channels_for(receiver, '[notify.default]\nL2 = ["hook", "slack"]')
    receiver.fail["/hook"] = 2  # the workflow's NOTIFY_RETRY: 1s, then 2s
    task_queue = f"tq-{uuid.uuid4()}"
    worker = build_worker(dev_env.client, task_queue, db_pool, dict(BUILTIN_POLICIES), None, config)
    async with worker:
        rig = TicketRig(dev_env, db_pool, task_queue)
        try:
            handle = await rig.open(priority="high")
            await handle.execute_update(
                "request_escalation", {"agent_id": "alice", "reason": "needs payments"}
            )
            deadline = time.monotonic() + 30
            while len(receiver.to("/hook")) < 3 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        finally:
            await rig.finish()

    hooks = receiver.to("/hook")
    assert len(hooks) == 3
    body = json.loads(hooks[-1].body)
    assert body["kind"] == "escalated" and body["tier"] == "L2"
    assert body["ticket_id"] == rig.last_id
    assert {r.headers["Idempotency-Key"] for r in hooks} == {body["notification_id"]}
    assert [r.headers["X-Escalation-Attempt"] for r in hooks] == ["1", "2", "3"]
    assert all(verify(SECRET, r.body, r.headers["X-Escalation-Signature"]) for r in hooks)
    assert len(receiver.to("/slack")) == 1  # delivered on attempt 1, never re-sent
    rows = await deliveries(db_pool, body["notification_id"])
    assert rows["hook"]["delivered"] and rows["hook"]["attempts"] == 3
    assert rows["slack"]["delivered"] and rows["slack"]["attempts"] == 1


# --- the worker process: channels file and metrics endpoint from the environment --------------


@pytest.mark.devserver
async def test_worker_process_delivers_notices_and_serves_metrics(
    dev_env: WorkflowEnvironment,
    pg_dsn: str,
    db_pool: asyncpg.Pool,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    channels = tmp_path / "channels.toml"
    channels.write_text(
        f"""
[channels.hook]
type = "webhook"
url = "{receiver.url}/hook"
secret_env = "TEST_WEBHOOK_SECRET"

[notify.default]
L2 = ["hook"]
"""
    )
    port = free_port()
    task_queue = f"tq-{uuid.uuid4()}"
    env = worker_process_env(
        dev_env,
        pg_dsn,
        task_queue,
        ESCALATION_CHANNELS_FILE=str(channels),
        TEST_WEBHOOK_SECRET=SECRET,
        METRICS_PORT=str(port),
        METRICS_HOST="127.0.0.1",
    )
    log_path = tmp_path / "worker.log"
    proc = start_worker(env, log_path)
    ticket_id = f"T-{uuid.uuid4().hex[:12]}"
    try:
        deadline = time.monotonic() + 60
        while "worker started" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.1)
        handle = await dev_env.client.start_workflow(
            "TicketWorkflow",
            {"ticket_id": ticket_id, "subject": "Refund not received", "customer_id": "acme"},
            id=f"ticket-{ticket_id}",
            task_queue=task_queue,
        )
        for _ in range(200):
            if await handle.query("state") is not None:
                break
            await asyncio.sleep(0.05)
        await handle.execute_update(
            "request_escalation", {"agent_id": "alice", "reason": "needs payments"}
        )
        name = "escalation_notifications_total"
        deadline = time.monotonic() + 30
        while True:
            s = scrape(port)
            if s.value(name, outcome="delivered") >= 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        await handle.terminate("test finished")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert s.value(name, channel="hook", kind="escalated", outcome="delivered") == 1
    assert s.value("escalation_escalations_total", tier="L2", trigger="agent_request") == 1
    assert s.value("escalation_actions_total", action="request_escalation") == 1
    assert any(n.startswith("temporal_workflow_task_") for n in s.names())
    [request] = receiver.to("/hook")
    assert verify(SECRET, request.body, request.headers["X-Escalation-Signature"])
    assert json.loads(request.body)["ticket_id"] == ticket_id
    output = log_path.read_text()
    assert SECRET not in output and receiver.url not in output  # no secrets or URLs in logs
    assert "metrics served" in output and "notification delivered" in output
