"""A long ticket: thousands of actions on one ticket, through continue-as-new.

    .venv/bin/python bench/long_ticket.py                # 5,000 actions (the Reliability row)
    .venv/bin/python bench/long_ticket.py --actions 600  # smaller

`drive_long_ticket` is also what tests/test_long_ticket.py (CI size, lowered budget) and
bench/faults.py (full size) run. It sends Updates one after another (agents take turns on a
ticket), every 50th action repeats an earlier action's `request_id` (possibly from a previous
run), and then checks from the outside: the runs the ticket took and each run's history length,
the event store (seq 1..n, no duplicate), the workflow's state against a fresh fold of the store,
the `history` query against the store, and that no repeated request id was applied twice.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from domain.events import DomainEvent
from domain.state import fold
from domain.view import TicketView, view
from store.event_store import read_ticket
from workflows import history_budget

DUPLICATE_EVERY = 50


@dataclass
class LongTicketResult:
    ticket_id: str
    actions: int
    duplicates_sent: int = 0
    duplicates_applied: int = 0
    runs: int = 0
    run_history_events: list[int] = field(default_factory=list)
    events_stored: int = 0
    expected_events: int = 0
    seq_problems: list[str] = field(default_factory=list)
    state_matches_store: bool = False
    history_query_matches_store: bool = False
    continue_as_new_budget: int = 0
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return max(0, self.expected_events - self.events_stored)

    @property
    def duplicated(self) -> int:
        return max(0, self.events_stored - self.expected_events) + self.duplicates_applied

    @property
    def ok(self) -> bool:
        return (
            self.runs > 1
            and not self.seq_problems
            and self.lost == 0
            and self.duplicated == 0
            and self.state_matches_store
            and self.history_query_matches_store
            and max(self.run_history_events) < 4 * 1024  # Temporal suggests at 4 Ki events
        )


def _action(i: int) -> tuple[str, dict[str, Any]]:
    """The i-th action: an agent and a customer taking turns, and a priority now and then."""
    match i % 4:
        case 0:
            return "await_customer", {
                "agent_id": "amy",
                "message": f"Could you send the receipt? ({i})",
                "request_id": f"req-{i}",
            }
        case 1:
            return "customer_replied", {"message": f"Here it is ({i})", "request_id": f"req-{i}"}
        case 2:
            return "respond", {
                "agent_id": "amy",
                "message": f"Thanks ({i})",
                "request_id": f"req-{i}",
            }
        case _:
            priority = "high" if (i // 4) % 2 == 0 else "normal"
            return "change_priority", {
                "agent_id": "amy",
                "priority": priority,
                "reason": "customer tier",
                "request_id": f"req-{i}",
            }


async def run_histories(
    client: Client, workflow_id: str, first_run_id: str | None
) -> list[WorkflowHistory]:
    """The history of every run of a workflow, following continue-as-new from the first."""
    histories = []
    run_id = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return histories


def _seq_problems(events: list[Any]) -> list[str]:
    problems = []
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"seqs are not 1..{len(seqs)}")
    if len({e.event_id for e in events}) != len(events):
        problems.append("an event id is stored twice")
    return problems


async def drive_long_ticket(
    client: Client, task_queue: str, pool: asyncpg.Pool, actions: int
) -> LongTicketResult:
    ticket_id = f"LONG-{uuid.uuid4().hex[:10]}"
    result = LongTicketResult(ticket_id=ticket_id, actions=actions)
    result.continue_as_new_budget = history_budget.CONTINUE_AS_NEW_EVENTS
    started = time.perf_counter()
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        "TicketWorkflow",
        {"ticket_id": ticket_id, "subject": "Refund not received", "customer_id": "acme"},
        id=f"ticket-{ticket_id}",
        task_queue=task_queue,
    )
    first_run_id = handle.first_execution_run_id or handle.run_id
    assert first_run_id is not None
    current = await handle.execute_update("assign", {"agent_id": "amy"}, result_type=TicketView)
    for i in range(actions):
        name, payload = _action(i)
        current = await handle.execute_update(name, payload, result_type=TicketView)
        if i and i % DUPLICATE_EVERY == 0:
            j = i - DUPLICATE_EVERY + 1  # an earlier action, often from an earlier run
            again = await handle.execute_update(*_action(j), result_type=TicketView)
            result.duplicates_sent += 1
            result.duplicates_applied += again.version != current.version
    result.seconds = time.perf_counter() - started
    result.expected_events = 2 + actions  # TicketOpened, TicketAssigned, one per action

    final_view = await handle.query("state", result_type=TicketView)
    queried = await handle.query("history", result_type=list[DomainEvent])
    stored = await read_ticket(pool, ticket_id)
    result.events_stored = len(stored)
    result.seq_problems = _seq_problems(stored)
    domain_events = [e.to_domain() for e in stored]
    folded = fold(domain_events)
    result.state_matches_store = folded is not None and view(folded) == final_view == current
    # The query holds this run's events: the store's tail, exactly.
    tail = domain_events[len(domain_events) - len(queried) :] if queried else []
    result.history_query_matches_store = bool(queried) and queried == tail
    runs = await run_histories(client, handle.id, first_run_id)
    result.run_history_events = [len(h.events) for h in runs]
    result.runs = len(result.run_history_events)
    await handle.execute_update("resolve", {"agent_id": "amy", "resolution": "done"})
    await handle.execute_update("close", {"agent_id": "amy"})
    await handle.result()
    return result


def summary(r: LongTicketResult) -> dict[str, Any]:
    data = asdict(r)
    data.update(lost=r.lost, duplicated=r.duplicated, ok=r.ok)
    data["max_run_history_events"] = max(r.run_history_events, default=0)
    del data["run_history_events"]
    return data


async def standalone(actions: int) -> LongTicketResult:
    from bench import run as bench_run
    from domain.policy import BUILTIN_POLICIES
    from store.connection import create_pool
    from store.schema import migrate
    from worker import build_worker

    async with bench_run.stack() as (where, env):
        pool = await create_pool(**where, min_size=1, max_size=10)
        try:
            await migrate(pool)
            task_queue = f"long-{uuid.uuid4().hex[:8]}"
            async with build_worker(env.client, task_queue, pool, dict(BUILTIN_POLICIES)):
                return await drive_long_ticket(env.client, task_queue, pool, actions)
        finally:
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=5_000)
    args = parser.parse_args()
    r = asyncio.run(standalone(args.actions))
    for key, value in summary(r).items():
        print(f"{key:28} {value}")
    sys.exit(0 if r.ok else 1)


if __name__ == "__main__":
    main()
