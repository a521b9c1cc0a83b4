"""Faults at CI size (bench/faults.py's scenarios, QUICK): a worker killed with -9, PostgreSQL
stopped, the Temporal server restarted on its database file, each while timers fall due and
actions arrive. No escalation may be lost or doubled, no event lost or stored twice, no workflow
may fail, and the read model must equal a fresh fold of the log.

Each scenario starts its own stack (embedded PostgreSQL, dev server on a db file, `worker.py`
child processes), so the session's fixtures are never disturbed. The crash runs on one stack
while the database outage and the Temporal restart run one after the other on another: the
crash mostly waits for the killed worker's activities to time out, so they overlap.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bench import faults
from bench.faults import QUICK, Context, Row


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rows() -> AsyncIterator[dict[str, Row]]:
    crash_ctx = Context(QUICK, faults.new_root())
    other_ctx = Context(QUICK, faults.new_root())

    async def crash() -> dict[str, Row]:
        try:
            return {"crash": await faults.worker_crash(crash_ctx)}
        finally:
            await crash_ctx.close()

    async def outages() -> dict[str, Row]:
        try:
            return {
                "db": await faults.db_outage(other_ctx),
                "temporal": await faults.temporal_restart(other_ctx),
            }
        finally:
            await other_ctx.close()

    # Both run to the end whatever happens to the other, so each stops its own stack.
    done = await asyncio.gather(crash(), outages(), return_exceptions=True)
    for result in done:
        if isinstance(result, BaseException):
            raise result
    found = {k: v for result in done if isinstance(result, dict) for k, v in result.items()}
    yield found
    if all(r.ok for r in found.values()):  # else keep the worker logs named in the failures
        for ctx in (crash_ctx, other_ctx):
            shutil.rmtree(ctx.root, ignore_errors=True)


@pytest.mark.slow
async def test_a_flooded_ticket_loses_nothing_and_keeps_answering() -> None:
    row = await faults.flood(Context(QUICK, faults.new_root()))
    assert row.problems == [], row.problems
    assert (row.lost, row.duplicated, row.failed_workflows) == (0, 0, 0)
    assert row.checks_passed == row.checks_total == 5


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["crash", "db", "temporal"])
async def test_nothing_lost_or_doubled(rows: dict[str, Row], scenario: str) -> None:
    row = rows[scenario]
    detail = "\n".join(row.problems[:30]) + f"\n(logs: {row.data.get('worker_log')})"
    assert row.problems == [], detail
    assert row.tickets == QUICK.tickets
    assert (row.lost, row.duplicated, row.failed_workflows) == (0, 0, 0), detail
    assert row.checks_passed == row.checks_total == 6, detail
    assert row.recover_s is not None
