"""Smoke test of bench/run.py: a tiny size in-process; the table has every row and every ratio
is a positive number. No wall-clock thresholds: the machine is shared."""

from __future__ import annotations

import re

import pytest

from bench.run import Size, run
from bench.steady import STEADY_TINY

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

TINY = Size(
    lifecycles=6,
    concurrency=3,
    latency_tickets=5,
    store_tickets=20,
    store_concurrency=4,
    projector_events=500,
    scale=0,
    steady=STEADY_TINY,
)


async def test_quick_bench_table_has_every_row_with_positive_ratios() -> None:
    res = await run(TINY)
    table = res.table()
    for prefix in ("1. ", "2. ", "3. respond Update p50", "3. respond Update p99", "4. ", "4b. "):
        assert any(r[0].startswith(prefix) for r in res.rows), (prefix, table)
        assert prefix.strip() in table
    for prefix in (
        "M. memory",
        "L. escalation lateness",
        "L. burst drain",
        "S. respond Update p99",
    ):
        assert any(r[0].startswith(prefix) for r in res.rows), (prefix, table)
    for measure, ours, base, ratio in res.rows:
        if measure.startswith("M. "):  # RSS moves in pages: a few workflows may measure 0
            continue
        if base == "-":  # an absolute measure (lateness p50 / p99)
            assert all(float(x) >= 0 for x in ours.split(" / ")), (measure, ours)
            continue
        number = re.match(r"[0-9.]+", ratio)
        assert number is not None, (measure, ratio)
        assert float(number.group()) > 0, (measure, ratio)
        assert float(ours.replace(",", "")) > 0 and float(base.replace(",", "")) > 0
    assert res.data["history"]["ours_by_kind"]["workflow tasks"] > 0
    mem = res.data["memory"]
    assert min(mem["ours_idle_mb"], mem["bare_idle_mb"]) > 0, mem
    assert mem["ours_full_mb"] >= mem["ours_idle_mb"] * 0.9, mem  # measured the same worker
    assert res.data["lateness"]["escalated"] == STEADY_TINY.lateness_tickets  # each one once
    assert res.data["steady_ms"]["ours"][2] == res.data["steady_ms"]["bare"][2] > 0
