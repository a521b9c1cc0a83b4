"""One ticket under a flood of Signals and Updates (issue 13): nothing lost, doubled or dead.

    .venv/bin/python bench/flood.py [--seconds 60] [--rate 100]

Starts its own dev server (with the dev stack's blob limit) and scratch database, and one
worker in this process. For `seconds`, sends `rate` actions a second to one ticket: `respond`
Signals with messages up to 19 KB, every tenth an Update through `TicketClient` (which retries
a `TicketBusy` handover with the same request_id), every 50th a payload the ticket refuses
(300 KB: over 256 KiB), every 200th one the server refuses (1.5 MB: over its 1 MiB blob limit).
Then checks, from the outside: every accepted action stored exactly once (by request id), seq
1..n, refusals recorded, the workflow still running and answering; and reports the runs it
continued through and how long each handover left the ticket without a decision.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus

from tickets import TicketClient, TicketError

AGENT = "flood-agent"
PREFIX = "WORKFLOW_TASK_FAILED_CAUSE_"
BODY = "x" * 19_000


@dataclass
class FloodResult:
    seconds: float
    sent: int = 0
    accepted: int = 0  # actions the ticket applied (respond), by request id
    refused_by_ticket: int = 0  # over 256 KiB: ActionRejected
    refused_by_server: int = 0  # over the blob limit: the Signal never arrived
    update_errors: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    seq_ok: bool = False
    running: bool = False
    ended: str | None = None  # how the ticket's last run ended, when it did not survive
    runs: int = 0
    handover_gaps: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    task_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.seq_ok
            and self.running
            and self.update_errors == 0
        )


async def handovers(client: Client, workflow_id: str) -> tuple[int, list[float], list[str]]:
    """Runs of the workflow; per continue-as-new the seconds from the old run's last completed
    workflow task to the new run's first (how long nothing was decided); and the causes of the
    workflow tasks that failed (a handover meeting new Signals fails its task on purpose)."""
    failures: list[str] = []
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
    runs.sort(key=lambda w: w.start_time)
    edges: list[tuple[float, float]] = []
    for w in runs:
        async for e in client.get_workflow_handle(w.id, run_id=w.run_id).fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                a = e.workflow_task_failed_event_attributes
                failures.append(WorkflowTaskFailedCause.Name(a.cause).removeprefix(PREFIX))
        done = [
            e.event_time.ToDatetime().timestamp()
            async for e in client.get_workflow_handle(w.id, run_id=w.run_id).fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ]
        if done:
            edges.append((done[0], done[-1]))
    gaps = [edges[i + 1][0] - edges[i][1] for i in range(len(edges) - 1)]
    return len(runs), gaps, failures


async def drive(
    client: Client, task_queue: str, pool: Any, seconds: float, rate: int
) -> FloodResult:
    from store.event_store import read_ticket

    tc = TicketClient(client, task_queue)
    tid = f"FLOOD-{uuid.uuid4().hex[:8]}"
    await tc.open({"ticket_id": tid, "subject": "Flood", "customer_id": "acme"})
    handle = client.get_workflow_handle(f"ticket-{tid}")
    r = FloodResult(seconds)
    expected: set[str] = set()
    tasks: list[asyncio.Task[None]] = []

    async def one(n: int) -> None:
        rid = f"flood-{n}"
        if n % 200 == 199:
            try:
                await handle.signal("respond", {"agent_id": AGENT, "message": "y" * 1_500_000})
            except Exception:
                r.refused_by_server += 1
            return
        if n % 50 == 49:
            await handle.signal("respond", {"agent_id": AGENT, "big": "z" * 300_000})
            r.refused_by_ticket += 1
            return
        expected.add(rid)
        if n % 10 == 9:
            try:
                await tc.respond(tid, AGENT, f"{n}:{BODY[: n % 19_000]}", request_id=rid)
            except TicketError as exc:
                r.update_errors += 1
                r.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        await handle.signal(
            "respond",
            {"agent_id": AGENT, "message": f"{n}:{BODY[: n % 19_000]}", "request_id": rid},
        )

    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        due = start + n / rate
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        tasks.append(asyncio.create_task(one(n)))
        n += 1
    await asyncio.gather(*tasks)
    r.sent = n
    try:
        await tc.respond(tid, AGENT, "the flood is over", request_id="flood-end")  # all decided
        expected.add("flood-end")
    except TicketError as exc:  # the ticket did not survive: report, do not hide the figures
        r.errors.append(f"the last respond: {type(exc).__name__}: {exc}"[:200])
    stored = await read_ticket(pool, tid)
    r.stored = len(stored)
    r.seq_ok = [e.seq for e in stored] == list(range(1, len(stored) + 1))
    applied = [e.payload.get("request_id") for e in stored if e.event_type == "AgentResponded"]
    r.accepted = len(set(applied))
    r.lost = len(expected - set(applied))
    r.missing = sorted(
        expected - set(applied), key=lambda x: int(x.split("-")[1]) if x[6:].isdigit() else 0
    )
    r.duplicated = len(applied) - len(set(applied))
    status = (await handle.describe()).status
    r.running = status == WorkflowExecutionStatus.RUNNING
    r.ended = None if r.running or status is None else status.name.lower()
    r.runs, r.handover_gaps, r.task_failures = await handovers(client, handle.id)
    if r.running:
        await handle.terminate("flood finished")
    return r


def summary(r: FloodResult) -> dict[str, Any]:
    gaps = r.handover_gaps
    return {
        "actions sent": r.sent,
        "rate (actions/s)": round(r.sent / r.seconds, 1),
        "applied (unique request ids)": r.accepted,
        "refused by the ticket (over 256 KiB)": r.refused_by_ticket,
        "refused by the server (over 1 MiB)": r.refused_by_server,
        "lost / duplicated": f"{r.lost} / {r.duplicated}"
        + (f" {r.missing[:10]}" if r.lost else ""),
        "updates given up": f"{r.update_errors}"
        + (f" {sorted(set(r.errors))[:3]}" if r.errors else ""),
        "seq 1..n": r.seq_ok,
        "still running": r.running if r.running else f"False ({r.ended})",
        "runs (continue-as-new)": r.runs,
        "workflow task failures (cause: count)": dict(Counter(r.task_failures)),
        "handover gap median / max (s)": (
            f"{statistics.median(gaps):.2f} / {max(gaps):.2f}" if gaps else "-"
        ),
    }


async def standalone(seconds: float, rate: int) -> FloodResult:
    from bench import run as bench_run
    from domain.policy import BUILTIN_POLICIES
    from store.connection import create_pool
    from store.schema import migrate
    from worker import build_worker

    async with bench_run.stack() as (where, env):
        pool = await create_pool(**where, min_size=1, max_size=10)
        try:
            await migrate(pool)
            task_queue = f"flood-{uuid.uuid4().hex[:8]}"
            async with build_worker(env.client, task_queue, pool, dict(BUILTIN_POLICIES)):
                return await drive(env.client, task_queue, pool, seconds, rate)
        finally:
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=int, default=100)
    args = parser.parse_args()
    r = asyncio.run(standalone(args.seconds, args.rate))
    for key, value in summary(r).items():
        print(f"{key:40} {value}")
    sys.exit(0 if r.ok else 1)


if __name__ == "__main__":
    main()
