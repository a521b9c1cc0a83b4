"""Memory per open ticket, escalation lateness at a steady rate, action latency at a steady rate.

Phases of bench/run.py (`--only memory,lateness,steady`), each ours against a bare floor
(bench/bare.py) measured in the same run, every worker in its own child process:
  memory:   RSS per cached workflow: N open tickets vs N bare workflows each waiting on one
            timer (RSS after opening N minus the idle worker's RSS);
  lateness: N tickets whose first-response deadlines fall due at a steady rate (opened at that
            rate): escalation stored (`recorded_at`) minus due time, p50/p99; and a burst: M
            tickets due at once (their worker stopped until all are past due, then started),
            escalations stored per second, vs bare workflows that sleep as long, then run one
            activity storing a row;
  steady:   N open tickets each side, `respond` Updates sent at a fixed rate per side,
            interleaved (open loop), p50/p99 latency ours vs bare.

    .venv/bin/python bench/run.py --only memory,lateness,steady --quick
    .venv/bin/python bench/steady.py --trace-memory 200 --out t.txt  # tracemalloc diff, by line
    .venv/bin/python bench/steady.py --trace-memory 300 --ab [--office]  # policy copied vs shared
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.bare import (
    BARE_ESCALATIONS,
    BARE_TIMER_WORKFLOW,
    BARE_WORKFLOW,
    BareActivities,
    BareTicketWorkflow,
    BareTimerWorkflow,
)
from bench.common import bounded, pct, say
from domain.policy import BUILTIN_POLICIES, Policy, parse_policies
from store.connection import create_pool
from store.schema import migrate

if TYPE_CHECKING:
    from bench.run import Results

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()


@dataclass(frozen=True)
class SteadySize:
    memory_tickets: int  # per side
    lateness_tickets: int
    lateness_rate: float  # deadlines falling due per second
    lateness_first_response: float  # seconds from open to the first-response deadline
    burst_tickets: int  # per side
    burst_delay: float  # seconds from open to due, both sides
    steady_tickets: int  # open tickets per side
    steady_rate: float  # Updates per second per side
    steady_seconds: float


STEADY_QUICK = SteadySize(30, 20, 10.0, 4.0, 20, 6.0, 10, 5.0, 3.0)
STEADY_FULL = SteadySize(2_000, 10_000, 20.0, 60.0, 2_000, 240.0, 1_000, 20.0, 60.0)
STEADY_TINY = SteadySize(8, 6, 6.0, 3.0, 6, 5.0, 4, 4.0, 1.5)


def ratio(ours: float, bare: float) -> str:
    """`ours/bare` as `1.53x`; a baseline too small to divide by (RSS moves in pages, so a few
    workflows may measure 0) says so instead."""
    if bare <= 0 or ours <= 0:
        return "n/a (too few workflows to measure)"
    return f"{ours / bare:.2f}x"


def bench_policy(first_response: float) -> str:
    """Policy `bench`: every priority's first response due `first_response` seconds after open."""
    targets = "\n".join(
        f'[policies.bench.targets.{p}]\nfirst_response = "{first_response:g}s"\n'
        f'resolution = "24h"\ntier_budget = "12h"\n'
        for p in ("urgent", "high", "normal", "low")
    )
    return f'[policies.bench]\ntiers = ["L1", "L2", "L3"]\nwarn_at = 0.8\n{targets}'


# A business-hours policy whose calendar carries Germany's public holidays for 2020-2040:
# what a ticket's recorded policy weighs when it has a calendar.
OFFICE_POLICY = """
[policies.office]
tiers = ["L1", "L2", "L3"]
calendar = "office"
[policies.office.targets.urgent]
first_response = "4h"
resolution = "3d"
tier_budget = "1d"
[policies.office.targets.high]
first_response = "4h"
resolution = "3d"
tier_budget = "1d"
[policies.office.targets.normal]
first_response = "4h"
resolution = "3d"
tier_budget = "1d"
[policies.office.targets.low]
first_response = "4h"
resolution = "3d"
tier_budget = "1d"
[calendars.office]
timezone = "Europe/Berlin"
monday = "09:00-17:00"
tuesday = "09:00-17:00"
wednesday = "09:00-17:00"
thursday = "09:00-17:00"
friday = "09:00-17:00"
holiday_country = "DE"
"""


# --- worker child processes ---------------------------------------------------------------------


class Child:
    """A worker in a child process (`--serve ours|bare`), its RSS read from outside."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        import psutil

        self.proc = proc
        self._ps = psutil.Process(proc.pid)

    def rss_mb(self) -> float:
        return float(self._ps.memory_info().rss) / 2**20

    def cpu_seconds(self) -> float:
        """User + system CPU the worker process has used (all its threads, the SDK's core's too)."""
        t = self._ps.cpu_times()
        return float(t.user + t.system)

    async def steady_rss_mb(self, samples: int = 5) -> float:
        """The median of a few samples, 0.2 s apart (the SDK's threads allocate as they poll)."""
        out = []
        for _ in range(samples):
            out.append(self.rss_mb())
            await asyncio.sleep(0.2)
        return statistics.median(out)

    async def command(self, line: str) -> str:
        """A line to the child's control loop (tracemalloc), its one-line answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return (await asyncio.to_thread(self.proc.stdout.readline)).strip()


@asynccontextmanager
async def child_worker(
    kind: str,
    env: WorkflowEnvironment,
    where: dict[str, str],
    task_queue: str,
    *,
    max_cached: int,
    policy_text: str | None = None,
    trace: bool = False,
    heap: bool = False,
) -> AsyncIterator[Child]:
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--serve",
        kind,
        "--address",
        env.client.service_client.config.target_host,
        "--where",
        json.dumps(where),
        "--task-queue",
        task_queue,
        "--max-cached",
        str(max_cached),
    ]
    if policy_text:
        cmd += ["--policy-text", policy_text]
    if trace:
        cmd.append("--trace")
    if heap:
        cmd.append("--heap")
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".log", delete=False)
    say(f"   {kind} worker process log: {log.name}")
    proc = subprocess.Popen(  # noqa: ASYNC220
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{kind} worker child did not start: {line!r} (log {log.name})")
    try:
        yield Child(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.communicate, timeout=120)


async def serve(args: argparse.Namespace) -> None:
    """The child: our worker (build_worker) or the bare one, until SIGTERM."""
    if args.trace:
        tracemalloc.start(3)
    elif args.heap:
        tracemalloc.start(1)
    where = json.loads(args.where)
    client = await Client.connect(args.address, data_converter=pydantic_data_converter)
    pool = await create_pool(**where, min_size=1, max_size=10)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    worker: Worker
    if args.serve in ("ours", "ours-copies"):
        from worker import build_worker

        if args.serve == "ours-copies":  # the A/B's "before": one parsed policy per ticket
            import domain.events
            import domain.state
            import workflows.carried

            domain.state.shared_policy = workflows.carried.shared_policy = _own_copy
            domain.events.shared_recorded_policy = _own_dict

        policies = dict(BUILTIN_POLICIES)
        if args.policy_text:
            policies.update(parse_policies(args.policy_text))
        worker = build_worker(
            client, args.task_queue, pool, policies, max_cached_workflows=args.max_cached
        )
    else:
        await pool.execute(BARE_ESCALATIONS)
        worker = Worker(
            client,
            task_queue=args.task_queue,
            workflows=[BareTicketWorkflow, BareTimerWorkflow],
            activities=[BareActivities(pool).escalate],
            # As ours passes `workflows` through: no module copy per workflow on either side.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
            ),
            max_cached_workflows=args.max_cached,
        )
    control = asyncio.create_task(control_loop())
    async with worker:
        print("ready", flush=True)
        await stop.wait()
    control.cancel()
    await pool.close()


def _own_copy(policy: Policy) -> Policy:
    return policy


def _own_dict(recorded: dict[str, Any]) -> dict[str, Any]:
    return recorded


async def control_loop() -> None:
    """`trim` collects garbage and hands freed heap back to the OS (so RSS counts what is kept,
    not the high-water mark of opening); `mark` takes a tracemalloc snapshot; `diff PATH`
    writes what grew since, by line and by traceback."""
    base: tracemalloc.Snapshot | None = None
    while True:
        line = (await asyncio.to_thread(sys.stdin.readline)).strip()
        if not line:
            return
        if line == "trim":
            gc.collect()
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            print("trimmed", flush=True)
        elif line == "heap":
            print(tracemalloc.get_traced_memory()[0], flush=True)
        elif line == "mark":
            base = tracemalloc.take_snapshot()
            print("marked", flush=True)
        elif line.startswith("diff ") and base is not None:
            now = tracemalloc.take_snapshot()
            filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
            stats = now.filter_traces(filters).compare_to(base.filter_traces(filters), "lineno")
            total = sum(s.size_diff for s in stats)
            lines = [f"total grown: {total / 2**20:.1f} MiB"]
            lines += [str(s) for s in stats[:60]]
            by_tb = now.filter_traces(filters).compare_to(base.filter_traces(filters), "traceback")
            for s in by_tb[:15]:
                lines.append(f"\n--- {s.size_diff / 1024:.0f} KiB in {s.count_diff} blocks")
                lines += s.traceback.format()
            text = "\n".join(lines) + "\n"
            await asyncio.to_thread(Path(line.removeprefix("diff ")).write_text, text)
            print(f"written {total}", flush=True)


# --- opening tickets ----------------------------------------------------------------------------


def ticket_input(tid: str, policy: str | None = None) -> dict[str, Any]:
    out = {"ticket_id": tid, "subject": "Bench", "customer_id": "acme", "priority": "normal"}
    if policy:
        out["policy"] = policy
    return out


async def open_ours(client: Client, tq: str, tid: str, policy: str | None = None) -> Any:
    return await client.start_workflow(
        "TicketWorkflow", ticket_input(tid, policy), id=f"ticket-{tid}", task_queue=tq
    )


async def open_bare_timer(client: Client, tq: str, tid: str, delay: float) -> Any:
    return await client.start_workflow(
        BARE_TIMER_WORKFLOW,
        {"ticket_id": tid, "delay_s": delay},
        id=f"baretimer-{tid}",
        task_queue=tq,
    )


async def stored_count(pool: asyncpg.Pool, event_type: str, prefix: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM ticket_events WHERE event_type = $1 AND ticket_id LIKE $2",
            event_type,
            prefix + "%",
        )
    )


async def wait_for(
    check: Callable[[], Awaitable[int]], want: int, limit: float, what: str
) -> float:
    """Polls until `check()` reaches `want`; seconds waited (raises naming what is missing)."""
    t0 = time.perf_counter()
    got = 0
    while time.perf_counter() - t0 < limit:
        got = await check()
        if got >= want:
            return time.perf_counter() - t0
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{what}: {got} of {want} after {limit:.0f}s")


async def scratch(where: dict[str, str], name: str) -> tuple[dict[str, str], asyncpg.Pool]:
    from bench.run import new_database

    db = await new_database(where, f"{name}_{uuid.uuid4().hex[:8]}")
    pool = await create_pool(**db, min_size=1, max_size=4)
    await migrate(pool)
    await pool.execute(BARE_ESCALATIONS)
    return db, pool


# --- memory -------------------------------------------------------------------------------------


async def memory_phase(
    env: WorkflowEnvironment,
    where: dict[str, str],
    n: int,
    res: Results,
    trace_to: str | None = None,
    ab: bool = False,
    heap: bool = False,
    office: bool = False,
) -> dict[str, float]:
    """`ab`: also our worker with one policy copy per ticket (the change's "before");
    `heap`: each side's Python heap (tracemalloc, which slows the workers) beside its RSS;
    `office`: our tickets on a business-hours policy with public holidays (OFFICE_POLICY)."""
    say(f"M. memory: {n} open tickets vs {n} bare workflows on one timer, one worker each")
    db, pool = await scratch(where, "memory")
    tag = uuid.uuid4().hex[:6]
    out: dict[str, float] = {}
    sides = ("bare", "ours-copies", "ours") if ab else ("bare", "ours")
    try:
        for kind in sides:
            out.update(await _memory_side(env, db, pool, kind, n, tag, trace_to, heap, office))
            out[kind] = (out[f"{kind}_full_mb"] - out[f"{kind}_idle_mb"]) * 1024 / n  # KiB each
        if ab:

            def each(kind: str) -> str:
                return f"{out[kind]:.1f}" + (f" / {out[kind + '_heap']:.1f}" if heap else "")

            res.add(
                "M. A/B: ours with the policy copied per ticket (KiB RSS"
                + (" / KiB Python heap" if heap else "")
                + " each), ours shared, bare",
                each("ours-copies"),
                each("ours"),
                f"bare {each('bare')}",
            )
        res.add(
            f"M. memory per open cached workflow (KiB, RSS delta over {n})",
            f"{out['ours']:.1f}",
            f"{out['bare']:.1f}",
            ratio(out["ours"], out["bare"]) + " (target <= 2x)",
        )
        res.add(
            "M. the same, RSS after gc and malloc_trim (what stays, not the high-water mark)",
            f"{out['ours_trim']:.1f}",
            f"{out['bare_trim']:.1f}",
            ratio(out["ours_trim"], out["bare_trim"]),
        )
        res.data["memory"] = out
    finally:
        await pool.close()
    return out


async def _memory_side(
    env: WorkflowEnvironment,
    db: dict[str, str],
    pool: asyncpg.Pool,
    kind: str,
    n: int,
    tag: str,
    trace_to: str | None,
    heap: bool = False,
    office: bool = False,
) -> dict[str, float]:
    client = env.client
    tq = f"bench-mem-{kind}-{tag}"
    cached = n + n // 10 + 10
    trace = trace_to is not None
    side = "ours" if kind != "bare" else "bare"

    async def opener(c: Client, queue: str, tid: str) -> Any:
        if side == "bare":
            return await _bare_open_long(c, queue, tid)
        return await open_ours(c, queue, tid, "office" if office else None)

    text = OFFICE_POLICY if office and side == "ours" else None
    async with child_worker(
        kind, env, db, tq, max_cached=cached, trace=trace, heap=heap, policy_text=text
    ) as child:
        # One workflow first, so the idle figure includes the first workflow's imports.
        warm = f"MW{tag}{kind}"
        await opener(client, tq, warm)
        await _settled(client, side, [warm], pool)
        idle_heap = float(await child.command("heap")) if heap else 0.0
        idle = await child.steady_rss_mb()
        await child.command("trim")
        idle_trim = await child.steady_rss_mb()
        if trace_to is not None:
            await child.command("mark")
        ids = [f"M{tag}{kind}-{i:06d}" for i in range(n)]
        await bounded(n, 50, lambda i: opener(client, tq, ids[i]))
        await _settled(client, side, ids, pool)
        full_heap = float(await child.command("heap")) if heap else 0.0
        full = await child.steady_rss_mb()
        await child.command("trim")
        full_trim = await child.steady_rss_mb()
        if trace_to is not None and kind != "ours-copies":
            await child.command(f"diff {trace_to}.{kind}")
            say(f"   tracemalloc diff written to {trace_to}.{kind}")
    say(
        f"   {kind}: idle {idle:.0f} MB, {n} open {full:.0f} MB;"
        f" after gc and malloc_trim {idle_trim:.0f} / {full_trim:.0f} MB"
    )
    return {
        f"{kind}_idle_mb": idle,
        f"{kind}_full_mb": full,
        f"{kind}_idle_trim_mb": idle_trim,
        f"{kind}_full_trim_mb": full_trim,
        f"{kind}_trim": (full_trim - idle_trim) * 1024 / n,
        f"{kind}_heap": (full_heap - idle_heap) / 1024 / n,
    }


async def _bare_open_long(client: Client, tq: str, tid: str) -> Any:
    return await open_bare_timer(client, tq, tid, 24 * 3600.0)


async def _settled(client: Client, kind: str, ids: list[str], pool: asyncpg.Pool) -> None:
    """Every workflow's first task done (a query answers) and, ours, its TicketOpened stored."""
    prefix = "ticket-" if kind == "ours" else "baretimer-"
    query = "state" if kind == "ours" else "due"

    async def answered(i: int) -> None:
        handle = client.get_workflow_handle(prefix + ids[i])
        for _ in range(600):
            try:
                if await handle.query(query) is not None:
                    return
            except RPCError:  # a worker just started (no poller yet), or a busy one: again
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{prefix}{ids[i]}: query {query!r} unanswered")

    await bounded(len(ids), 10, answered)
    if kind == "ours":
        await wait_for(
            lambda: _count_in(pool, "TicketOpened", ids),
            len(ids),
            60 + len(ids) / 5,
            "TicketOpened stored",
        )
    await asyncio.sleep(1.0)


async def _count_in(pool: asyncpg.Pool, event_type: str, ids: list[str]) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM ticket_events WHERE event_type = $1 AND ticket_id = ANY($2)",
            event_type,
            ids,
        )
    )


# --- lateness -----------------------------------------------------------------------------------


LATENESS_SQL = """
SELECT e.ticket_id, (b.payload->>'due_at')::timestamptz AS due,
       extract(epoch FROM e.recorded_at - (b.payload->>'due_at')::timestamptz) AS late
FROM ticket_events e
JOIN ticket_events b ON b.ticket_id = e.ticket_id AND b.event_type = 'SlaBreached'
     AND b.payload->>'metric' = 'first_response'
WHERE e.event_type = 'TicketEscalated' AND e.ticket_id LIKE $1
"""


async def lateness_phase(
    env: WorkflowEnvironment, where: dict[str, str], size: SteadySize, res: Results
) -> None:
    n, rate, fr = size.lateness_tickets, size.lateness_rate, size.lateness_first_response
    say(f"L. lateness: {n} tickets due at {rate:g}/s (opened at that rate, first response {fr:g}s)")
    db, pool = await scratch(where, "lateness")
    client = env.client
    tag = uuid.uuid4().hex[:6]
    prefix = f"L{tag}-"
    tq = f"bench-late-{tag}"
    try:
        async with child_worker(
            "ours", env, db, tq, max_cached=n + n // 10 + 10, policy_text=bench_policy(fr)
        ) as child:
            cpu0 = child.cpu_seconds()
            t0 = time.perf_counter()
            behind: list[float] = []

            async def open_at(i: int) -> None:
                wait = t0 + i / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    behind.append(-wait)
                await open_ours(client, tq, f"{prefix}{i:06d}", "bench")

            await asyncio.gather(*(open_at(i) for i in range(n)))
            await wait_for(
                lambda: stored_count(pool, "TicketEscalated", prefix),
                n,
                fr * 2 + n / rate + 120,
                "lateness: TicketEscalated stored",
            )
            busy = (child.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        rows = await pool.fetch(LATENESS_SQL, prefix + "%")
        late = [float(r["late"]) for r in rows]
        p50, p99 = pct(late, 50), pct(late, 99)
        worst = max(rows, key=lambda r: float(r["late"]))
        timeline = await breach_timeline(client, worst["ticket_id"], worst["due"])
        timeline += f", +{float(worst['late']):.3f} stored"
        res.notes.append(
            f"lateness: the latest ticket's history after its breach timer: {timeline}"
        )
        res.add(
            f"L. escalation lateness p50 / p99 (s; {n} due at {rate:g}/s)",
            f"{p50:.2f} / {p99:.2f}",
            "-",
            "p99 target < 1 s: " + ("met" if p99 < 1 else "not met"),
        )
        res.data["lateness"] = {
            "n": n,
            "escalated": len(late),
            "rate": rate,
            "p50": p50,
            "p99": p99,
            "max": max(late),
            "opens_behind_schedule": len(behind),
            "worst_timeline": timeline,
            "worker_cpu_busy": busy,
        }
        res.notes.append(
            f"lateness: the worker process used {busy:.0%} of one core over the phase"
            f" ({os.cpu_count()} cores, shared with the dev server, PostgreSQL and the client)"
        )
    finally:
        await pool.close()
    await burst_phase(env, where, size, res)


async def breach_timeline(client: Client, ticket_id: str, due: datetime) -> str:
    """The history from the breach timer's firing on, as `+seconds after due: event`: where
    the time between the deadline and the stored escalation went (timer, task, activity)."""
    handle = client.get_workflow_handle(f"ticket-{ticket_id}")
    events = [e async for e in handle.fetch_history_events()]
    fired = [i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
    if len(fired) < 2:
        return "-"
    tail = events[fired[1] :][:10]  # the first timer warns, the second breaches
    return ", ".join(
        f"+{(e.event_time.ToDatetime(tzinfo=UTC) - due).total_seconds():.3f} "
        + EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower()
        for e in tail
    )


async def burst_phase(
    env: WorkflowEnvironment, where: dict[str, str], size: SteadySize, res: Results
) -> None:
    m, delay = size.burst_tickets, size.burst_delay
    say(f"L. burst: {m} due at once per side (worker stopped until due, then started)")
    db, pool = await scratch(where, "burst")
    tag = uuid.uuid4().hex[:6]
    rates: dict[str, float] = {}
    try:
        for kind in ("bare", "ours"):
            rates[kind] = await _burst_side(env, db, pool, kind, m, delay, tag)
        res.add(
            f"L. burst drain (escalations stored/s, {m} due at once)",
            f"{rates['ours']:.1f}",
            f"{rates['bare']:.1f}",
            f"{rates['ours'] / rates['bare']:.2f}",
        )
        res.data["burst"] = rates
    finally:
        await pool.close()


async def _burst_side(
    env: WorkflowEnvironment,
    db: dict[str, str],
    pool: asyncpg.Pool,
    kind: str,
    m: int,
    delay: float,
    tag: str,
) -> float:
    """Escalations stored per second, from the worker's start, once all M are past due."""
    client = env.client
    tq = f"bench-burst-{kind}-{tag}"
    ids = [f"B{tag}{kind}-{i:06d}" for i in range(m)]
    opts: dict[str, Any] = {"max_cached": m + m // 10 + 10}
    if kind == "ours":
        opts["policy_text"] = bench_policy(delay)
    async with child_worker(kind, env, db, tq, **opts):
        if kind == "ours":
            await bounded(m, 50, lambda i: open_ours(client, tq, ids[i], "bench"))
            await wait_for(
                lambda: _count_in(pool, "TicketOpened", ids),
                m,
                delay * 0.8,
                "burst: TicketOpened stored before the first warning is due",
            )
        else:
            await bounded(m, 50, lambda i: open_bare_timer(client, tq, ids[i], delay))
            await _settled(client, "bare", ids, pool)
    # Stopped: every deadline passes with nobody to act on it.
    last_due = await _last_due(pool, kind, ids, delay)
    await asyncio.sleep(max(0.0, last_due - time.time()) + 1.0)
    async with child_worker(kind, env, db, tq, **opts):
        started = time.time()
        if kind == "ours":
            done = lambda: _count_in(pool, "TicketEscalated", ids)  # noqa: E731
        else:
            done = lambda: _bare_count(pool, ids)  # noqa: E731
        await wait_for(done, m, 60 + m, f"burst: {kind} escalations stored")
        last = await _last_recorded(pool, kind, ids)
    say(f"   {kind}: {m} stored in {last - started:.1f}s after the worker started")
    return m / max(last - started, 1e-3)


async def _last_due(pool: asyncpg.Pool, kind: str, ids: list[str], delay: float) -> float:
    """The latest due time (epoch s): ours from TicketOpened (occurred_at + first response)."""
    if kind == "ours":
        sql = "SELECT extract(epoch FROM max(occurred_at)) FROM ticket_events"
        sql += " WHERE event_type = 'TicketOpened' AND ticket_id = ANY($1)"
        opened = float(await pool.fetchval(sql, ids))
        return opened + delay
    # Bare: started by now, each due `delay` after its start.
    return time.time() + delay


async def _bare_count(pool: asyncpg.Pool, ids: list[str]) -> int:
    sql = "SELECT count(*) FROM bench_bare_escalations WHERE ticket_id = ANY($1)"
    return int(await pool.fetchval(sql, ids))


async def _last_recorded(pool: asyncpg.Pool, kind: str, ids: list[str]) -> float:
    if kind == "ours":
        sql = "SELECT extract(epoch FROM max(recorded_at)) FROM ticket_events"
        sql += " WHERE event_type = 'TicketEscalated' AND ticket_id = ANY($1)"
    else:
        sql = "SELECT extract(epoch FROM max(recorded_at)) FROM bench_bare_escalations"
        sql += " WHERE ticket_id = ANY($1)"
    return float(await pool.fetchval(sql, ids))


# --- steady-rate Updates ------------------------------------------------------------------------


async def steady_phase(
    env: WorkflowEnvironment, where: dict[str, str], size: SteadySize, res: Results
) -> None:
    n, rate, secs = size.steady_tickets, size.steady_rate, size.steady_seconds
    say(f"S. steady: {n} open tickets per side, respond at {rate:g}/s per side for {secs:g}s")
    db, pool = await scratch(where, "steady")
    client = env.client
    tag = uuid.uuid4().hex[:6]
    cached = n + n // 10 + 10
    assign = ("assign", {"agent_id": "alice"})
    respond = ("respond", {"agent_id": "alice", "message": "On it"})
    try:
        async with (
            child_worker("ours", env, db, f"bench-st-ours-{tag}", max_cached=cached),
            child_worker("bare", env, db, f"bench-st-bare-{tag}", max_cached=cached),
        ):

            async def ready(kind: str, i: int) -> WorkflowHandle[Any, Any]:
                tid = f"S{tag}{kind}-{i:06d}"
                if kind == "ours":
                    h = await open_ours(client, f"bench-st-ours-{tag}", tid)
                else:
                    h = await client.start_workflow(
                        BARE_WORKFLOW,
                        ticket_input(tid),
                        id=f"bare-{tid}",
                        task_queue=f"bench-st-bare-{tag}",
                    )
                await h.execute_update(*assign)
                return h

            handles = {
                kind: await bounded(n, 50, lambda i, k=kind: ready(k, i))  # type: ignore[misc]
                for kind in ("bare", "ours")
            }
            await asyncio.sleep(1.0)
            samples: dict[str, list[float]] = {"ours": [], "bare": []}
            total = int(secs * rate) * 2
            t0 = time.perf_counter()

            async def send(k: int) -> None:
                kind = ("ours", "bare")[k % 2]
                wait = t0 + k / (2 * rate) - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                handle = handles[kind][(k // 2) % n]
                t = time.perf_counter()
                await handle.execute_update(*respond)
                samples[kind].append(time.perf_counter() - t)

            await asyncio.gather(*(send(k) for k in range(total)))
            await bounded(n, 50, lambda i: handles["ours"][i].terminate("bench done"))
            await bounded(n, 50, lambda i: handles["bare"][i].terminate("bench done"))
        for q in (50, 99):
            o, b = pct(samples["ours"], q) * 1000, pct(samples["bare"], q) * 1000
            res.add(
                f"S. respond Update p{q} (ms, {rate:g}/s per side over {n} open tickets)",
                f"{o:.0f}",
                f"{b:.0f}",
                f"{o / b:.2f}x" + (" (target <= 2x)" if q == 99 else ""),
            )
        res.data["steady_ms"] = {
            kind: [pct(v, 50) * 1000, pct(v, 99) * 1000, len(v)] for kind, v in samples.items()
        }
    finally:
        await pool.close()


# --- entry --------------------------------------------------------------------------------------


PHASES = ("memory", "lateness", "steady")


async def run_phases(
    env: WorkflowEnvironment,
    where: dict[str, str],
    size: SteadySize,
    only: tuple[str, ...],
    res: Results,
) -> None:
    if "memory" in only:
        await memory_phase(env, where, size.memory_tickets, res)
    if "lateness" in only:
        await lateness_phase(env, where, size, res)
    if "steady" in only:
        await steady_phase(env, where, size, res)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trace-memory",
        type=int,
        default=None,
        metavar="N",
        help="run the memory phase with N tickets under tracemalloc; write the diff",
    )
    parser.add_argument("--out", default="memory-trace.txt", help="where --trace-memory writes")
    parser.add_argument(
        "--ab",
        action="store_true",
        help="with --trace-memory N: instead of the diff, ours with a policy copy per ticket"
        " beside ours and bare, RSS and Python heap per workflow",
    )
    parser.add_argument("--serve", choices=("ours", "ours-copies", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--where", help=argparse.SUPPRESS)
    parser.add_argument("--task-queue", help=argparse.SUPPRESS)
    parser.add_argument("--policy-text", help=argparse.SUPPRESS)
    parser.add_argument("--max-cached", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--heap", action="store_true", help="with --ab: the Python heap (tracemalloc) too"
    )
    parser.add_argument(
        "--office", action="store_true", help="with --ab: a business-hours policy with holidays"
    )
    args = parser.parse_args()
    from runtime.logs import configure_logging

    if args.serve:
        configure_logging("json", "info")
        asyncio.run(serve(args))
        os._exit(0)
    configure_logging("json", "error")
    if args.trace_memory is None:
        parser.error("run the phases through bench/run.py; alone, only --trace-memory N")

    async def traced() -> None:
        from bench.run import Results, stack

        res = Results()
        async with stack() as (where, env):
            if args.ab:
                await memory_phase(
                    env, where, args.trace_memory, res, ab=True, heap=args.heap, office=args.office
                )
            else:
                await memory_phase(env, where, args.trace_memory, res, trace_to=args.out)
        print(res.table())

    asyncio.run(traced())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
