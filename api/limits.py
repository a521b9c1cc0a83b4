"""Limits at the edge, before anything reaches Temporal: body size (413, judged by
Content-Length before a byte of the body is read, and counted while reading), JSON nesting depth
(400), requests in flight (503), time per request (504), and actions per token per second (429
with Retry-After)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from api.problems import problem_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 256 * 1024
MAX_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
UNLIMITED_PATHS = ("/healthz", "/readyz")


def json_depth(body: bytes) -> int:
    """The nesting depth of JSON text without parsing it (a parser recurses: depth is the
    hazard). Brackets inside strings do not count."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


@dataclass(frozen=True)
class Limits:
    max_body: int = MAX_BODY
    max_depth: int = MAX_DEPTH
    max_concurrent: int = 64
    timeout: float = 30.0  # seconds per request, answered 504 when over


class EdgeLimits:
    """ASGI middleware: the body is read here (bounded) and replayed to the app."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if self._in_flight >= self.limits.max_concurrent:
            response = problem_response(
                503,
                f"the API is serving {self.limits.max_concurrent} requests; try again",
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        self._in_flight += 1
        try:
            await self._limited(scope, receive, send)
        finally:
            self._in_flight -= 1

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        too_large = problem_response(
            413, f"the request body is over {self.limits.max_body} bytes", title="Too large"
        )
        if length is not None and (not length.isdigit() or int(length) > self.limits.max_body):
            if not length.isdigit():
                await problem_response(400, "bad Content-Length")(scope, receive, send)
                return
            await too_large(scope, receive, send)
            return
        body = bytearray()
        more = scope["method"] not in ("GET", "HEAD", "OPTIONS")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limits.max_body:
                await too_large(scope, receive, send)
                return
            more = message.get("more_body", False)
        if body and "json" in headers.get("content-type", ""):
            depth = json_depth(bytes(body))
            if depth > self.limits.max_depth:
                detail = f"the JSON body nests {depth} levels; at most {self.limits.max_depth}"
                await problem_response(400, detail, title="Too deeply nested")(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.limits.timeout):
                await self.app(scope, replay, tracking_send)
        except TimeoutError:
            if started:
                raise
            detail = f"the request took over {self.limits.timeout:g}s; it may still be applied"
            await problem_response(504, detail, title="Timeout")(scope, receive, send)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per key: `rate` per second, bursts up to `rate`."""

    rate: float = 20.0
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str) -> float | None:
        """None when allowed; else the seconds until the next one is."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.rate, now)
            if len(self._buckets) > 10_000:  # forget idle callers (their buckets are full)
                for k in [k for k, b in self._buckets.items() if now - b.at > 60][:5000]:
                    del self._buckets[k]
        bucket.tokens = min(self.rate, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
