"""Limits at the edge: body size (413 before the body is read), JSON depth (400 before anything
reaches Temporal), requests in flight (503), request time (504), per-token rate (429)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from api.limits import MAX_BODY, EdgeLimits, Limits, RateLimiter, json_depth
from tests.api_support import api_rig, asgi_client


class Recorder:
    """A stand-in app: records what reached it; waits on `gate` when given one."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.bodies: list[bytes] = []
        self.gate = gate
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        self.arrived.set()
        if self.gate is not None and scope["path"] != "/healthz":
            await self.gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def edge(app: Any, **limits: Any) -> httpx.AsyncClient:
    return asgi_client(EdgeLimits(app, Limits(**limits)))


def nested(depth: int) -> bytes:
    return b'{"agent_id": "ann", "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert json_depth(b"{}") == 1
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[{{{{\\"]]]"}') == 1
    assert json_depth(nested(33)) == 33


async def test_a_body_over_the_limit_is_413_before_it_is_read() -> None:
    app = Recorder()
    async with edge(app) as http:
        r = await http.post("/x", content=b"x" * (MAX_BODY + 1))
        assert r.status_code == 413 and "262144 bytes" in r.json()["detail"]
        assert r.headers["content-type"].startswith("application/problem+json")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(100):
                yield b"y" * 8192

        r = await http.post("/x", content=chunks())
        assert r.status_code == 413
        assert app.bodies == []  # the app saw neither
        assert (await http.post("/x", content=b"x" * MAX_BODY)).status_code == 200


async def test_deep_json_is_400_and_the_limit_itself_passes() -> None:
    app = Recorder()
    async with edge(app) as http:
        headers = {"content-type": "application/json"}
        r = await http.post("/x", content=nested(33), headers=headers)
        assert r.status_code == 400 and "nests 33 levels; at most 32" in r.json()["detail"]
        assert app.bodies == []
        deep = b"[" * 100_000 + b"]" * 100_000  # would overflow a recursive parser
        assert (await http.post("/x", content=deep, headers=headers)).status_code == 400
        ok = await http.post("/x", content=nested(32), headers=headers)
        assert ok.status_code == 200 and app.bodies == [nested(32)]


async def test_requests_over_the_concurrency_bound_get_503() -> None:
    gate = asyncio.Event()
    app = Recorder(gate)
    async with edge(app, max_concurrent=1) as http:
        first = asyncio.create_task(http.post("/x", content=b"1"))
        await app.arrived.wait()
        r = await http.post("/x", content=b"2")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert (await http.get("/healthz")).status_code == 200  # health is never held back
        gate.set()
        assert (await first).status_code == 200


async def test_a_slow_request_is_answered_504() -> None:
    app = Recorder(asyncio.Event())  # never released
    async with edge(app, timeout=0.05) as http:
        r = await http.post("/x", content=b"1")
        assert r.status_code == 504 and "0.05s" in r.json()["detail"]


def test_rate_limiter_is_a_token_bucket_per_key() -> None:
    now = [100.0]
    rate = RateLimiter(rate=2, clock=lambda: now[0])
    assert rate.take("a") is None and rate.take("a") is None
    wait = rate.take("a")
    assert wait is not None and 0 < wait <= 0.5
    assert rate.take("b") is None  # another token has its own bucket
    now[0] += 0.5
    assert rate.take("a") is None
    assert RateLimiter.retry_after(0.2) == "1" and RateLimiter.retry_after(2.1) == "3"


async def test_the_api_answers_429_with_retry_after_and_413_and_400_before_temporal(
    dev_env: Any, db_pool: Any, tmp_path: Path
) -> None:
    now = [0.0]
    async with api_rig(
        dev_env, db_pool, tmp_path, rate=RateLimiter(rate=3, clock=lambda: now[0])
    ) as web:
        tid, _ = await web.open("max")  # the first of max's 3
        url = f"/v1/tickets/{tid}/actions/respond"
        assert (await web.http.post(url, json={}, headers=web.auth("max"))).status_code == 200
        assert (await web.http.post(url, json={}, headers=web.auth("max"))).status_code == 200
        r = await web.http.post(url, json={}, headers=web.auth("max"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "over 3 actions per second" in r.json()["detail"]
        # another token is not held back by max's
        assert (await web.http.post(url, json={}, headers=web.auth(web.pager))).status_code == 200
        now[0] += 1
        headers = {**web.auth("max"), "content-type": "application/json"}
        r = await web.http.post(url, content=nested(40), headers=headers)
        assert r.status_code == 400
        r = await web.http.post(url, content=b"{" + b" " * MAX_BODY + b"}", headers=headers)
        assert r.status_code == 413
        events = (await web.http.get(f"/v1/tickets/{tid}/events", headers=web.auth("max"))).json()
        assert "ActionRejected" not in [e["event_type"] for e in events]  # nothing reached it
