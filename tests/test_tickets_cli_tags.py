"""`tickets` with tags and rules (docs/rules.md): open --tag, tag, list --tag on the dev server's
real visibility (TicketTags is a KeywordList), and what `show` prints of rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from domain.policy import DEFAULT_POLICY
from domain.view import ElapsedRuleView, FiredRuleView, RulesView, view
from tests.conftest import TicketRig
from tests.test_domain_rules import Ticket
from tests.test_tickets_cli import ok, open_ticket, poll_list, run
from tickets import cli


async def test_tags_from_open_to_list(dev_rig: TicketRig) -> None:
    tag = f"t{uuid.uuid4().hex[:8]}"
    tid = await open_ticket(dev_rig, "--tag", tag, "--tag", "eu")
    out = await ok(dev_rig, "show", tid)
    assert f"  tags {min(tag, 'eu')}, {max(tag, 'eu')}" in out
    rows = await poll_list(dev_rig, tid, "--tag", tag)
    assert [r["ticket_id"] for r in rows] == [tid]
    assert sorted(rows[0]["tags"]) == sorted([tag, "eu"])
    out = await ok(dev_rig, "tag", tid, "--add", "vip", "--remove", "eu", "--agent", "ann")
    assert out.startswith("tags changed\n") and f"tags {tag}, vip" in out
    rows = await poll_list(dev_rig, tid, "--tag", tag, "--tag", "vip")
    assert [r["ticket_id"] for r in rows] == [tid]
    code, _, err = await run(dev_rig, "tag", tid, "--add", "vip", "--agent", "ann")
    assert code == 1 and "tags would not change" in err
    code, _, err = await run(dev_rig, "tag", tid, "--add", "Not OK", "--agent", "ann")
    assert code == 2 and "add.0" in err


async def test_list_tag_filters_are_quoted_clauses() -> None:
    args = cli.build_parser().parse_args(["list", "--tag", "vip", "--tag", "o'x", "--all"])
    assert (
        cli.list_query(args, None, cli.utc_now()) == "TicketTags = 'vip' AND TicketTags = 'o\\'x'"
    )


def test_show_lists_the_rules_that_fired_and_the_next_elapsed_rule() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    rules = RulesView(
        fired=[FiredRuleView(rule="vip-urgent-skips-l1", on="opened", at=now - timedelta(hours=1))],
        next_elapsed=ElapsedRuleView(rule="stale", due=now + timedelta(minutes=30)),
    )
    v = view(Ticket(DEFAULT_POLICY).s)
    lines = cli.render_rules(v.model_copy(update={"rules": rules}), now)
    assert lines[0] == "  rules fired:"
    assert lines[1].startswith("    vip-urgent-skips-l1 on opened ")
    assert lines[2].startswith("  next rule: stale due in 30m")
    assert cli.render_rules(v, now) == []
