"""One action's latency through the HTTP API vs the same Update sent straight to Temporal,
side by side in one run.

    .venv/bin/python bench/api_latency.py              # 100 samples each (docs/api.md)
    .venv/bin/python bench/api_latency.py --samples 20

Starts a Temporal dev server and a scratch PostgreSQL (bench/run.py's stack), a worker in this
process with an agent directory and ESCALATION_REQUIRE_PRINCIPAL on (so both paths carry and
verify a signed principal), and `escalation-api` as a child process on a free port. Then, for
each sample, a `respond` on a fresh open ticket: once as an Update from this process (signed by
the same client interceptor the API uses), once as `POST /v1/tickets/{id}/actions/respond` over
a kept-alive HTTP connection; the two alternate, so drift hits both alike. What the API adds is
the HTTP hop, authentication, validation and its own Temporal call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from activities.agents import AgentActivities
from api.auth import Caller
from api.principal_client import acting_as, signing_client
from bench.run import OURS_TQ, pct, say, stack
from domain.policy import BUILTIN_POLICIES
from domain.principal import parse_keys
from store.connection import create_pool
from store.schema import migrate
from tickets.client import TicketClient
from worker import build_worker

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-" + secrets.token_urlsafe(16)
AGENT = "benchy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url(where: dict[str, str]) -> str:
    """The scratch database as one DSN (the API child reads DATABASE_URL)."""
    parts = urlsplit(where["dsn"])
    if "database" in where:
        parts = parts._replace(path="/" + where["database"])
    return urlunsplit(parts)


def summary(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(pct(ms, 50), 2),
        "p95_ms": round(pct(ms, 95), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


async def measure(samples: int) -> dict[str, Any]:
    keys_text = f"b1:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    keys = parse_keys(keys_text)
    directory = Path(tempfile.mkdtemp(prefix="bench-api-")) / "agents.toml"
    directory.write_text(
        f'[agents.{AGENT}]\nname = "Bench"\nrole = "manager"\n'
        f'token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
    )
    async with stack() as (where, env):
        pool = await create_pool(**where, min_size=1, max_size=10)
        await migrate(pool)
        agents = AgentActivities(directory, principal_keys=keys, require_principal=True)
        worker = build_worker(env.client, OURS_TQ, pool, dict(BUILTIN_POLICIES), agents)
        port = free_port()
        api_env = {
            **os.environ,
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": env.client.namespace,
            "ESCALATION_TASK_QUEUE": OURS_TQ,
            "DATABASE_URL": database_url(where),
            "ESCALATION_AGENTS_FILE": str(directory),
            "ESCALATION_PRINCIPAL_KEYS": keys_text,
            "ESCALATION_API_PORT": str(port),
            "ESCALATION_API_RATE": "100000",
            "LOG_LEVEL": "warning",
        }
        log = tempfile.NamedTemporaryFile(prefix="bench-api-", suffix=".log", delete=False)
        api = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "api.server"], env=api_env, stdout=log, stderr=log, cwd=ROOT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with worker, httpx.AsyncClient(base_url=url, timeout=30) as http:
                for _ in range(300):
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError(f"the API did not become ready; its log: {log.name}")
                auth = {"Authorization": f"Bearer {TOKEN}"}
                direct = TicketClient(signing_client(env.client, keys), OURS_TQ)
                caller = Caller("agent", AGENT, None)
                tag = uuid.uuid4().hex[:6]

                async def open_assigned(i: int, path: str) -> str:
                    tid = f"lat-{tag}-{path}-{i:04d}"
                    ticket = {"ticket_id": tid, "subject": "Bench", "customer_id": "acme"}
                    await direct.open(ticket)
                    with acting_as(caller):
                        await direct.assign(tid, AGENT)
                    return tid

                say(f"opening {2 * samples} tickets ...")
                direct_ids = [await open_assigned(i, "direct") for i in range(samples)]
                api_ids = [await open_assigned(i, "api") for i in range(samples)]
                # warm both paths (connections, caches) before measuring
                with acting_as(caller):
                    await direct.respond(direct_ids[0], AGENT, message="warm")
                await http.post(f"/v1/tickets/{api_ids[0]}/actions/respond", json={}, headers=auth)
                via_temporal: list[float] = []
                via_api: list[float] = []
                say(f"measuring {samples} respond actions on each path, alternating ...")
                for tid_d, tid_a in zip(direct_ids[1:], api_ids[1:], strict=True):
                    t = time.perf_counter()
                    with acting_as(caller):
                        await direct.respond(tid_d, AGENT, message="on it")
                    via_temporal.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    r = await http.post(
                        f"/v1/tickets/{tid_a}/actions/respond",
                        json={"message": "on it"},
                        headers=auth,
                    )
                    via_api.append(time.perf_counter() - t)
                    if r.status_code != 200:
                        raise RuntimeError(f"API answered {r.status_code}: {r.text}")
                for tid in direct_ids + api_ids:
                    await direct.handle(tid).terminate("bench done")
        finally:
            api.terminate()
            api.wait(timeout=30)
            await pool.close()
    temporal_s, api_s = summary(via_temporal), summary(via_api)
    return {
        "samples": len(via_api),
        "update_straight_to_temporal": temporal_s,
        "through_the_http_api": api_s,
        "api_adds_p50_ms": round(api_s["p50_ms"] - temporal_s["p50_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="actions per path (default 100)")
    args = parser.parse_args()
    result = asyncio.run(measure(args.samples + 1))  # the first is the warm-up
    print(f"respond, {result['samples']} samples each (ms)   p50     p95     mean")
    for label, key in (
        ("Update straight to Temporal", "update_straight_to_temporal"),
        ("POST /v1/.../actions/respond", "through_the_http_api"),
    ):
        row = result[key]
        print(f"  {label:32} {row['p50_ms']:7.2f} {row['p95_ms']:7.2f} {row['mean_ms']:7.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
