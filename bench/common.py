"""What the benchmark scripts share: progress lines, percentiles, bounded concurrency."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank; NaN for no values."""
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


async def bounded(n: int, limit: int, job: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """job(0..n-1), at most `limit` at once; results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> Any:
        async with sem:
            return await job(i)

    return await asyncio.gather(*(one(i) for i in range(n)))
