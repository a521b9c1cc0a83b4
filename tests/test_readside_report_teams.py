"""The acknowledgement report, by path and by team (reports/sla.py), over decided stories."""

from __future__ import annotations

from datetime import timedelta

from reports.render import render_html, render_text
from reports.sla import Ticket, ack_episodes, build_report
from tests.test_domain_decider import T0, at
from tests.test_domain_teams import TeamStory


def _chain() -> TeamStory:
    """bea does not acknowledge, carl does after 4 minutes."""
    story = TeamStory()
    story.enter_billing(at(minutes=1))
    story.choose("bea", at(minutes=1))
    story.tick(at(minutes=11))
    story.choose("carl", at(minutes=11))
    story.act("acknowledge", at(minutes=15), agent_id="carl")
    return story


def _fast() -> TeamStory:
    """Opened at billing (path fast): bea acknowledges after 8 minutes."""
    story = TeamStory(path="fast")
    story.choose("bea", T0)
    story.act("acknowledge", at(minutes=8), agent_id="bea")
    return story


def test_episodes_follow_each_auto_assignment() -> None:
    episodes = ack_episodes(_chain().events)
    assert [(e.team, e.assignee, e.reassignment, e.timed_out) for e in episodes] == [
        ("billing", "bea", False, True),
        ("billing", "carl", True, False),
    ]
    assert episodes[1].acknowledged_at == at(minutes=15)
    assert episodes[0].path == "billing" and episodes[0].ack_within == timedelta(minutes=10)


def test_ack_metrics_by_path_and_team() -> None:
    chain, late = _chain(), _fast()
    late.ticket_id = "T-2"
    events = chain.events + [e.model_copy(update={"ticket_id": "T-2"}) for e in late.events]
    tickets = [
        Ticket(
            ticket_id=t,
            customer_id="acme",
            priority="normal",
            category="billing",
            status="open",
            tier="billing",
            opened_at=T0,
            path=p,
        )
        for t, p in (("T-1", "billing"), ("T-2", "fast"))
    ]
    report = build_report(tickets, [], as_of=at(hours=1), episodes=ack_episodes(events))
    by_team = dict(report.acks_by["team"])
    billing = by_team["billing"]
    # bea timed out, carl acknowledged after 4m, bea (T-2) after 8m.
    assert (billing.assignments, billing.acknowledged, billing.timed_out) == (3, 2, 1)
    assert billing.reassignments == 1 and billing.within == 2
    assert billing.within_share == 66.7
    assert billing.tta_median == timedelta(minutes=6)
    assert billing.tta_p90 == timedelta(minutes=8)
    by_path = dict(report.acks_by["path"])
    assert set(by_path) == {"billing", "fast"} and by_path["fast"].assignments == 1
    assert dict(report.by["path"])["fast"].tickets == 1
    text = render_text(report)
    assert "acknowledgement by team" in text and "acknowledgement by path" in text
    assert "66.7%" in text
    assert "Acknowledgement by team" in render_html(report)


def test_a_row_without_a_path_counts_as_the_default_path() -> None:
    row = {
        "ticket_id": "T-1",
        "customer_id": "c",
        "priority": "normal",
        "category": None,
        "status": "open",
        "tier": "L1",
        "opened_at": T0,
        "first_responded_at": None,
        "resolved_at": None,
        "closed_at": None,
        "first_response_breached": False,
        "resolution_breached": False,
        "escalation_count": 0,
        "path": None,
    }
    assert Ticket.from_row(row).path == "default"


def test_the_tickets_row_holds_path_assignee_and_acknowledged() -> None:
    from store.projections import TICKET_COLUMNS, ticket_row

    story = TeamStory()
    story.enter_billing(at(minutes=1))
    row = ticket_row(story.s, 1)
    assert set(row) == set(TICKET_COLUMNS)
    assert (row["path"], row["assignee"], row["acknowledged"]) == ("billing", None, None)
    story.choose("bea", at(minutes=1))
    row = ticket_row(story.s, 2)
    assert (row["assignee"], row["acknowledged"]) == ("bea", False)
    story.act("acknowledge", at(minutes=2), agent_id="bea")
    assert ticket_row(story.s, 3)["acknowledged"] is True


def test_the_timeline_tells_the_assignment_story() -> None:
    from reports.timeline import render_timeline, timeline

    story = TeamStory()
    story.enter_billing(at(minutes=1))
    story.choose(None, at(minutes=1), "all away")
    story.choose("bea", at(minutes=11))
    story.tick(at(minutes=21))
    story.choose("carl", at(minutes=21))
    story.act("acknowledge", at(minutes=22), agent_id="carl")
    story.act("transfer", at(minutes=23), agent_id="carl", path="fast", reason="refund")
    text = render_timeline("T-1", timeline(story.events), "store")
    for line in (
        "nobody assigned at billing: all away",
        "auto-assigned to bea",
        "bea did not acknowledge at billing",
        "acknowledged the assignment",
        "transferred billing/billing -> fast/billing-manager: refund",  # same position
    ):
        assert line in text, line
