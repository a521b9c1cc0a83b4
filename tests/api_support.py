"""What the API tests share: a directory with tokens, a worker that requires principals, and
the API app on the session's dev server (httpx over ASGI, in the test's own event loop)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from temporalio.client import Client

from activities.agents import AgentActivities
from api.app import create_app
from api.auth import Authenticator, Directory, OidcVerifier
from api.limits import Limits, RateLimiter
from api.operations import Api
from api.principal_client import signing_client
from domain.policy import BUILTIN_POLICIES
from domain.principal import PrincipalKeys, parse_keys
from tests.conftest import TicketRig
from tickets.client import TicketClient
from worker import build_worker

TOKENS = {"ann": "ann-token-1", "ben": "ben-token-1", "max": "max-token-1", "bot": "bot-token-1"}


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def directory_text(pager: str) -> str:
    """ann works L1, ben L2, max manages; `pager` (unique per test) is a manager whose tickets
    no other test assigns; service `bot` may open and record customer replies."""
    return f"""
[agents.ann]
name = "Ann"
tiers = ["L1"]
token_sha256 = "{sha(TOKENS["ann"])}"

[agents.ben]
name = "Ben"
tiers = ["L2"]
token_sha256 = "{sha(TOKENS["ben"])}"
may = ["respond"]

[agents.max]
name = "Max"
role = "manager"
token_sha256 = "{sha(TOKENS["max"])}"

[agents.{pager}]
name = "Pager"
role = "manager"
token_sha256 = "{sha(pager + "-token")}"

[services.bot]
name = "Billing bot"
token_sha256 = "{sha(TOKENS["bot"])}"
may = ["open", "customer_replied"]
"""


def new_keys(*ids: str) -> str:
    return ",".join(f"{i}:{base64.b64encode(secrets.token_bytes(32)).decode()}" for i in ids)


@dataclass
class ApiRig:
    rig: TicketRig
    http: httpx.AsyncClient
    api: Api
    keys: PrincipalKeys
    pager: str
    directory: Path

    @property
    def client(self) -> Client:
        return self.rig.client

    def auth(self, who: str) -> dict[str, str]:
        token = TOKENS.get(who) or (who + "-token")
        return {"Authorization": f"Bearer {token}"}

    async def open(self, who: str = "max", **fields: Any) -> tuple[str, dict[str, Any]]:
        ticket = {
            "ticket_id": f"A-{uuid.uuid4().hex[:10]}",
            "subject": "Refund not received",
            "customer_id": "acme",
            **fields,
        }
        r = await self.http.post("/v1/tickets", json=ticket, headers=self.auth(who))
        assert r.status_code == 201, r.text
        self.rig.handles.append(self.client.get_workflow_handle(f"ticket-{ticket['ticket_id']}"))
        return ticket["ticket_id"], r.json()


def make_api(
    client: Client,
    task_queue: str,
    pool: asyncpg.Pool,
    keys: PrincipalKeys | None,
    directory: Path | None,
    *,
    oidc: OidcVerifier | None = None,
    rate: RateLimiter | None = None,
) -> Api:
    async def database() -> asyncpg.Pool:
        return pool

    return Api(
        tickets=TicketClient(signing_client(client, keys), task_queue),
        auth=Authenticator(Directory(directory), oidc),
        rate=rate or RateLimiter(1000),
        database=database,
    )


def asgi_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


@asynccontextmanager
async def api_rig(
    dev_env: Any,
    db_pool: asyncpg.Pool,
    tmp_path: Path,
    *,
    require: bool = True,
    limits: Limits | None = None,
    rate: RateLimiter | None = None,
) -> AsyncIterator[ApiRig]:
    pager = f"pager{uuid.uuid4().hex[:8]}"
    path = tmp_path / "agents.toml"
    path.write_text(directory_text(pager))
    keys = parse_keys(new_keys("p2", "p1"))
    assert keys is not None
    task_queue = f"tq-{uuid.uuid4()}"
    agents = AgentActivities(path, principal_keys=keys, require_principal=require)
    worker = build_worker(dev_env.client, task_queue, db_pool, dict(BUILTIN_POLICIES), agents)
    async with worker:
        rig = TicketRig(dev_env, db_pool, task_queue)
        api = make_api(dev_env.client, task_queue, db_pool, keys, path, rate=rate)
        async with asgi_client(create_app(api, limits)) as http:
            yield ApiRig(rig, http, api, keys, pager, path)
        await rig.finish()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(web: ApiRig) -> AsyncIterator[str]:
    """The rig's API served by uvicorn on a free port of 127.0.0.1; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(web.api), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):  # uvicorn has no started event: poll, bounded
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
