"""readside.py as its users meet it: report, check, rebuild, history (store, workflow), project."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client

import readside
from reports.timeline import compare, timeline
from runtime.config import PROJECT_ROOT, Settings
from store.event_store import read_ticket
from store.projections import check, checkpoint
from tests.conftest import TicketRig
from tests.readside_support import T0, Tale, append, dsn_for, scratch_db, varied_tale

NOW = T0 + timedelta(days=10)


@pytest_asyncio.fixture(loop_scope="session")
async def db(pg_dsn: str, db_pool: asyncpg.Pool) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    async with scratch_db(db_pool, pg_dsn) as made:
        yield made


async def cli(pool: asyncpg.Pool, *argv: str, client: Client | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = readside.build_parser().parse_args(list(argv))
    code = await readside.run(
        args, pool, settings=Settings(), client=client, out=out, err=err, now=lambda: NOW
    )
    return code, out.getvalue(), err.getvalue()


async def test_report_catches_up_and_writes_text_and_html(
    db: tuple[asyncpg.Pool, str], tmp_path: Path
) -> None:
    pool, _ = db
    tales = [varied_tale(i, T0 + timedelta(hours=i)) for i in range(20)]
    await append(pool, *tales)
    html = tmp_path / "sla.html"
    code, out, _ = await cli(pool, "report", "--since", "2026-11-02", "--html", str(html))
    assert code == 0
    assert "all tickets       20" in out  # the projector caught up first
    assert f"wrote {html}" in out
    page = html.read_text()
    assert page.count("<svg") == 8 and "<script" not in page  # by path since v2
    # A range that holds no ticket, and a relative one that holds them all.
    code, out, _ = await cli(pool, "report", "--until", "2026-11-01")
    assert "all tickets        0" in out
    code, out, _ = await cli(pool, "report", "--since", "30d", "--no-catch-up")
    assert "all tickets       20" in out


def test_parse_when() -> None:
    assert readside.parse_when("7d", NOW) == NOW - timedelta(days=7)
    assert readside.parse_when("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert readside.parse_when("2026-11-01T09:00+01:00", NOW) == datetime(
        2026, 11, 1, 8, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="neither a date/time"):
        readside.parse_when("yesterday", NOW)


async def test_report_refuses_a_bad_time(db: tuple[asyncpg.Pool, str]) -> None:
    code, out, err = await cli(db[0], "report", "--since", "yesterday")
    assert (code, out) == (2, "")
    assert err.startswith("readside report: 'yesterday' is neither a date/time")


async def test_check_and_rebuild(db: tuple[asyncpg.Pool, str]) -> None:
    pool, _ = db
    tales = [varied_tale(i, T0 + timedelta(hours=i)) for i in range(8)]
    await append(pool, *tales)
    code, out, _ = await cli(pool, "check")
    assert code == 0
    assert out.startswith("0 differences between the read models and the log")
    victim = tales[0].ticket_id
    await pool.execute("UPDATE tickets SET tier = 'L9' WHERE ticket_id = $1", victim)
    code, out, _ = await cli(pool, "check")
    assert code == 1
    assert f"ticket {victim}: tier is 'L9', the log says 'L1'" in out
    assert "1 differences" in out

    total = sum(len(t.events) for t in tales)
    code, out, err = await cli(pool, "rebuild", "--batch-size", "10")
    assert code == 0
    assert out == f"rebuilt the read models from {total} events: 8 tickets\n"
    assert err.endswith(f"[{'#' * 30}] 100% {total}/{total} events\n")
    assert err.count("\r") == -(-total // 10)  # one bar update per batch
    code, out, _ = await cli(pool, "check")
    assert code == 0


async def test_history_from_the_store(db: tuple[asyncpg.Pool, str]) -> None:
    pool, _ = db
    t = Tale(priority="urgent", category="login")
    at = lambda minutes: T0 + timedelta(minutes=minutes)  # noqa: E731
    t.act("assign", at(1), agent_id="amy")
    t.act("request_escalation", at(5), agent_id="amy", reason="needs the  database team")
    t.until(at(30))
    t.act("respond", at(31), agent_id="bo", message="on it")
    t.act("resolve", at(40), agent_id="bo", resolution="index rebuilt")
    await append(pool, t)
    code, out, _ = await cli(pool, "history", t.ticket_id)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"ticket {t.ticket_id}: {len(t.events)} events (event store)"
    assert lines[1].split() == ["seq", "time", "event", "who", "details"]
    body = [line.split(None, 4) for line in lines[3:]]
    assert body[0] == [
        "1",
        "2026-11-02T09:00:00+00:00",
        "TicketOpened",
        "acme",
        "urgent login ticket at L1, policy default: Refund not received",
    ]
    assert body[1][2:] == ["TicketAssigned", "amy", "assigned to amy"]
    assert body[2][2:] == [
        "TicketEscalated",
        "amy",
        "L1 -> L2 (agent_request): needs the database team",
    ]
    kinds = [b[2] for b in body]
    assert "SlaBreached" in kinds and kinds[-1] == "TicketResolved"
    breach = body[kinds.index("SlaBreached")]
    assert breach[3] == "system" and breach[4].startswith("first_response SLA breached at L2")
    assert body[-1][3:] == ["bo", "resolved: index rebuilt"]

    code, out, _ = await cli(pool, "history", "no-such-ticket")
    assert code == 1 and "no events" in out


async def test_history_from_the_workflow_agrees_with_the_store(
    rig: TicketRig, db_pool: asyncpg.Pool
) -> None:
    handle = await rig.open(priority="high", category="billing")
    await handle.execute_update("assign", {"agent_id": "amy"})
    await handle.execute_update(
        "request_escalation", {"agent_id": "amy", "reason": "refund stuck at the bank"}
    )
    await handle.execute_update("resolve", {"agent_id": "amy", "resolution": "refunded"})
    tid = rig.last_id
    code, out, _ = await cli(db_pool, "history", tid, "--from-workflow", client=rig.client)
    assert code == 0, out
    assert f"ticket {tid}: 4 events (workflow history query)" in out
    assert "L1 -> L2 (agent_request): refund stuck at the bank" in out
    assert out.endswith("the store holds the same 4 events\n")
    _, from_store, _ = await cli(db_pool, "history", tid)
    # The same timeline, line for line, whichever source it came from.
    assert from_store.splitlines()[1:] == out.splitlines()[1:-1]


def test_compare_names_the_difference() -> None:
    t = Tale().act("assign", T0 + timedelta(minutes=1), agent_id="amy")
    assert compare(t.events, t.events) == []
    assert compare(t.events, t.events[:1]) == ["the store has 1 events the workflow lacks"]
    assert "not stored yet" in compare(t.events[:1], t.events)[0]
    other = Tale(t.ticket_id).act("respond", T0, agent_id="x")
    assert compare(t.events, other.events) == [
        "seq 2: store has TicketAssigned, workflow has AgentResponded"
    ]
    assert [e.who for e in timeline(t.events)] == ["acme", "amy"]


# --- as a process ---------------------------------------------------------------------------------


def env_for(pg_dsn: str, name: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": dsn_for(pg_dsn, name),
        "LOG_FORMAT": "json",
    }


async def test_the_command_runs_the_report_and_the_projector(
    db: tuple[asyncpg.Pool, str], pg_dsn: str, tmp_path: Path
) -> None:
    pool, name = db
    env = env_for(pg_dsn, name)
    tales = [varied_tale(i, T0 + timedelta(hours=i)) for i in range(6)]
    await append(pool, *tales)
    script = str(PROJECT_ROOT / "readside.py")

    # Two projector processes at once, while more events arrive.
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, script, "project", env=env, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for proc in procs:  # both running before the events come
        assert proc.stderr is not None
        line = b""
        while b"projector started" not in line:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, "a projector process ended before it started"
    more = [varied_tale(i, T0 + timedelta(hours=i)) for i in range(6, 12)]
    for t in more:
        await append(pool, t)
        await asyncio.sleep(0.05)
    total = sum(len(t.events) for t in tales + more)
    for _ in range(500):
        if (await checkpoint(pool)).events == total:
            break
        await asyncio.sleep(0.02)
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        assert b"projector stopped" in err
    assert (await checkpoint(pool)).events == total  # each event applied once, not twice
    assert await check(pool) == []

    html = tmp_path / "r.html"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, script, "report", "--html", str(html)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "all tickets       12" in done.stdout and html.exists()
    assert len(await read_ticket(pool, tales[0].ticket_id)) == len(tales[0].events)


async def test_report_into_a_path_that_cannot_be_written_is_one_line_not_a_traceback(
    db: tuple[asyncpg.Pool, str], tmp_path: Path
) -> None:
    pool, _ = db
    target = tmp_path / "nonexistent" / "x.html"
    code, _, err = await cli(pool, "report", "--html", str(target))
    assert code == 2
    assert err == f"readside report: cannot write {target}: No such file or directory\n"
