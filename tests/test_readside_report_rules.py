"""Tags, next reply and rule firings on the read side: the `tickets` row, the report's tables,
the timeline, and the projector's fold check on a scratch database (docs/rules.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
import pytest_asyncio

from reports.render import render_html, render_text
from reports.sla import Ticket, build_report
from reports.timeline import render_timeline, timeline
from store import projections
from store.event_store import append_events
from store.projections import TICKET_COLUMNS, ticket_row
from tests.readside_support import scratch_db
from tests.test_domain_rules import STALE, THREE, at, policy, with_next_reply
from tests.test_domain_rules import Ticket as Story

P = with_next_reply(policy(*THREE))


def stories() -> list[Story]:
    met = Story(P, priority="urgent", tags=["vip"])  # skips L1 by rule
    met.act("respond", at(minutes=1), agent_id="ann")
    met.act("customer_replied", at(minutes=10))
    met.act("respond", at(minutes=20), agent_id="ann")  # next reply met
    late = Story(P, priority="high", tags=["eu"])
    late.act("respond", at(minutes=1), agent_id="ann")
    late.act("customer_replied", at(minutes=10))
    late.run_until(at(hours=3))  # next reply breached, then the stale rule escalates
    plain = Story(P)
    return [met, late, plain]


def rows() -> list[dict[str, Any]]:
    return [{**ticket_row(s.s, i), "ticket_id": f"T-{i}"} for i, s in enumerate(stories(), 1)]


def test_the_tickets_row_has_tags_next_reply_figures_and_rules_fired() -> None:
    met, late, plain = (ticket_row(s.s, 1) for s in stories())
    assert set(met) == set(TICKET_COLUMNS)
    assert (met["tags"], met["next_reply_met"], met["next_reply_breached"]) == (["vip"], 1, 0)
    assert met["rules_fired"] == ["vip-urgent-skips-l1"]
    assert (late["next_reply_met"], late["next_reply_breached"]) == (0, 1)
    assert late["rules_fired"] == ["stale-after-customer-reply"]
    assert (plain["tags"], plain["rules_fired"]) == ([], [])


def test_the_report_by_tag_next_reply_and_rule_firings() -> None:
    report = build_report(map(Ticket.from_row, rows()), [], as_of=at(hours=3))
    assert [tag for tag, _ in report.by_tag] == ["eu", "vip"]
    assert dict(report.by_tag)["vip"].tickets == 1
    by_priority = dict(report.next_reply_by["priority"])
    assert (by_priority["urgent"].met, by_priority["urgent"].compliance) == (1, 100.0)
    assert (by_priority["high"].breached, by_priority["high"].compliance) == (0 + 1, 0.0)
    assert dict(report.next_reply_by["tier"]).keys() == {"L2", "L3"}
    assert dict(report.next_reply_by["path"])["default"].compliance == 50.0
    assert report.rules_fired == {"stale-after-customer-reply": 1, "vip-urgent-skips-l1": 1}
    text = render_text(report)
    for title in ("by tag", "next reply by priority", "next reply by path", "rule firings"):
        assert title in text, title
    assert any(line.split() == ["stale-after-customer-reply", "1"] for line in text.splitlines())
    assert "Rule firings" in render_html(report) and "Next reply by tier" in render_html(report)


def test_a_report_without_tags_clocks_or_rules_reads_as_before() -> None:
    plain = Story(policy())
    row = {**ticket_row(plain.s, 1)}
    for later in ("tags", "next_reply_met", "next_reply_breached", "rules_fired"):
        del row[later]  # a row read from a read model before migration 7
    report = build_report([Ticket.from_row(row)], [], as_of=at(hours=1))
    text = render_text(report)
    assert "by tag" not in text and "next reply" not in text and "rule firings" not in text


def test_the_timeline_names_the_rule_behind_each_event() -> None:
    s = Story(policy(STALE, {"name": "t", "on": "customer_replied", "then": {"add_tags": ["x"]}}))
    s.act("respond", at(minutes=1), agent_id="ann")
    s.act("customer_replied", at(minutes=10))
    s.act("tag", at(minutes=11), agent_id="ann", add=["vip"])
    s.run_until(at(hours=3))
    text = render_timeline("T-1", timeline(s.events), "store")
    assert "rule t fired on customer_replied" in text
    assert "rule t" in text and "tags +x" in text and "tags +vip" in text
    assert "rule stale-after-customer-reply fired on elapsed (since" in text
    assert "L1 -> L2 (rule): rule stale-after-customer-reply" in text


@pytest_asyncio.fixture(loop_scope="session")
async def db(pg_dsn: str, db_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_db(db_pool, pg_dsn) as (pool, _):
        yield pool


@pytest.mark.asyncio(loop_scope="session")
async def test_projected_rows_equal_a_fresh_fold_with_tags_and_rules(db: asyncpg.Pool) -> None:
    for i, s in enumerate(stories(), 1):
        events = [
            e.model_copy(update={"ticket_id": f"T-{i}", "event_id": UUID(int=i * 1000 + e.seq)})
            for e in s.events
        ]
        await append_events(db, events)
    await projections.catch_up(db)
    assert await projections.check(db) == []
    got = await db.fetchrow(
        "SELECT tags, rules_fired, next_reply_met FROM tickets WHERE ticket_id = 'T-1'"
    )
    assert got is not None
    assert (got["tags"], got["rules_fired"], got["next_reply_met"]) == (
        ["vip"],
        ["vip-urgent-skips-l1"],
        1,
    )
