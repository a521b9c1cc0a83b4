"""Smoke test of bench/run.py: a tiny size in-process; the table has every row and every ratio
is a positive number. No wall-clock thresholds: the machine is shared."""

from __future__ import annotations

import re

import pytest

from bench.run import Size, run

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

TINY = Size(
    lifecycles=6,
    concurrency=3,
    latency_tickets=5,
    store_tickets=20,
    store_concurrency=4,
    projector_events=500,
    scale=0,
)


async def test_quick_bench_table_has_every_row_with_positive_ratios() -> None:
    res = await run(TINY)
    table = res.table()
    for prefix in ("1. ", "2. ", "3. respond Update p50", "3. respond Update p99", "4. ", "4b. "):
        assert any(r[0].startswith(prefix) for r in res.rows), (prefix, table)
        assert prefix.strip() in table
    for measure, ours, base, ratio in res.rows:
        number = re.match(r"[0-9.]+", ratio)
        assert number is not None, (measure, ratio)
        assert float(number.group()) > 0, (measure, ratio)
        assert float(ours.replace(",", "")) > 0 and float(base.replace(",", "")) > 0
    assert res.data["history"]["ours_by_kind"]["workflow tasks"] > 0
