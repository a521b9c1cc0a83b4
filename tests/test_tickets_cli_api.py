"""`tickets --api URL` with TICKETS_TOKEN: the same commands and exit codes, through the HTTP
API served by uvicorn (the agent is the token's); without them it still talks to Temporal."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.api_support import TOKENS, ApiRig, api_rig, serving
from tickets.cli import EXIT_CANNOT_CONNECT, EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from tickets.cli import main as tickets


@pytest_asyncio.fixture(loop_scope="session")
async def served(dev_env: Any, db_pool: Any, tmp_path: Path) -> AsyncIterator[tuple[ApiRig, str]]:
    async with api_rig(dev_env, db_pool, tmp_path, require=True) as web, serving(web) as url:
        yield web, url


async def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await tickets(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


async def test_an_agent_works_a_ticket_with_tickets_api(
    served: tuple[ApiRig, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    web, url = served
    monkeypatch.setenv("TICKETS_API_URL", url)
    monkeypatch.setenv("TICKETS_TOKEN", TOKENS["ann"])
    monkeypatch.delenv("TICKETS_AGENT", raising=False)
    tid = f"C-{uuid.uuid4().hex[:8]}"
    code, out, err = await run(["open", tid, "--subject", "Refund", "--customer", "acme"])
    assert code == EXIT_OK, err
    web.rig.handles.append(web.client.get_workflow_handle(f"ticket-{tid}"))
    code, out, err = await run(["claim", tid])
    assert code == EXIT_OK, err
    assert "assignee ann" in out
    code, out, _ = await run(["respond", tid, "-m", "on it", "--json"])
    assert json.loads(out)["first_responded_at"] is not None
    code, out, _ = await run(["escalate", tid, "--reason", "needs L2"])
    assert code == EXIT_OK and "tier L2" in out
    code, _, err = await run(["resolve", tid, "--resolution", "done"])
    assert code == EXIT_REJECTED
    assert f"agent ann may not act on ticket {tid} at tier L2" in err
    code, out, _ = await run(["show", tid])
    assert code == EXIT_OK and "tier L2" in out
    code, out, _ = await run(["history", tid])
    assert "TicketEscalated" in out and "needs L2" in out
    code, out, err = await run(["list", "--tier", "L2", "--status", "open", "--json"])
    assert code == EXIT_OK, err
    assert all(r["tier"] == "L2" for r in json.loads(out))
    # acting as another agent is refused by the API
    code, _, err = await run(["claim", tid, "--agent", "max"])
    assert code == EXIT_REJECTED and "cannot act as agent 'max'" in err
    code, _, err = await run(["show", "NOPE-1"])
    assert code == EXIT_NOT_FOUND
    code, _, err = await run(["list", "--customer", "acme"])
    assert code == EXIT_USAGE and "--customer: not available through --api" in err
    code, out, err = await run(["tag", tid, "--add", "vip", "--json"])
    assert code == EXIT_REJECTED and f"agent ann may not act on ticket {tid}" in err
    monkeypatch.setenv("TICKETS_TOKEN", TOKENS["max"])  # a manager may tag at L2
    code, out, err = await run(["tag", tid, "--add", "vip", "--json"])
    assert code == EXIT_OK, err
    assert json.loads(out)["tags"] == ["vip"]
    code, out, err = await run(["list", "--tag", "vip", "--path", "default", "--json"])
    assert code == EXIT_OK, err
    code, _, err = await run(["list", "--tag", "a", "--tag", "b"])
    assert code == EXIT_USAGE and "one tag at a time" in err


async def test_tickets_api_errors(
    served: tuple[ApiRig, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = served
    monkeypatch.delenv("TICKETS_TOKEN", raising=False)
    code, _, err = await run(["show", "T-1", "--api", url])
    assert code == EXIT_USAGE and "TICKETS_TOKEN" in err
    monkeypatch.setenv("TICKETS_TOKEN", "wrong")
    code, _, err = await run(["show", "T-1", "--api", url])
    assert code == EXIT_REJECTED and "the token is not known" in err
    code, _, err = await run(["show", "T-1", "--api", "http://127.0.0.1:1"])
    assert code == EXIT_CANNOT_CONNECT and "cannot reach the API" in err
    code, _, err = await run(["show", "T-1", "--api", "ftp://x"])
    assert code == EXIT_USAGE
