"""SLA reports, pure: every figure checked against numbers worked out by hand for 24 tickets.

The fixture (times: opened in hours after T0; first response in minutes after opening; done in
hours after opening, i.e. resolved_at, or closed_at for H6 which was closed without a resolve).
Range [T0, T0+240h); X1 (opened before) and X2 (opened at the end) are outside it. Backlog ages
are taken at T0+240h.

id   prio    cat      cust     status    tier esc triggers            opened  FR   done  frB resB
U1   urgent  billing  acme     closed    L1   0                        0      10   2
U2   urgent  billing  globex   resolved  L1   0                        1       5   3
U3   urgent  login    acme     closed    L2   1  first_response_breach 2      30   5    y   y
U4   urgent  login    initech  open      L3   2  tier_timeout,agent_req 200   20   -    y   y
U5   urgent  -        acme     resolved  L2   1  agent_request         3      12   4
U6   urgent  -        globex   new       L1   0                        239.5   -   -
H1   high    billing  acme     closed    L1   0                        24     30   6
H2   high    billing  initech  closed    L2   1  tier_timeout          25     40   10       y
H3   high    login    globex   pending   L1   0                        100    50   -
H4   high    login    acme     open      L2   1  first_response_breach 230    90   -    y
H5   high    -        initech  resolved  L1   0                        26     20   7
H6   high    billing  globex   closed    L1   0                        27      -   1 (closed only)
N1   normal  billing  acme     closed    L1   0                        48     60   20
N2   normal  billing  acme     closed    L1   0                        49    120   12
N3   normal  login    globex   resolved  L2   1  agent_request         50    200   30       y
N4   normal  login    initech  open      L1   0                        150   100   -
N5   normal  -        acme     open      L2   1  tier_timeout          170   180   -
N6   normal  -        globex   new       L1   0                        236     -   -
N7   normal  billing  initech  closed    L1   0                        51     30   5
L1   low     billing  globex   closed    L1   0                        72    300   48
L2   low     login    acme     closed    L3   2  first_response_breach,tier_timeout 73 600 80 y y
L3   low     -        initech  pending   L1   0                        120   240   -
L4   low     billing  acme     resolved  L1   0                        74     60   24
L5   low     login    globex   open      L1   0                        220     -   -
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from reports.render import render_html, render_text, time_unit
from reports.sla import Escalation, Report, Ticket, build_report, fmt_duration

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
UNTIL = T0 + timedelta(hours=240)

# id, priority, category, customer, status, tier, triggers, opened h, FR min, done h, frB, resB
ROWS = [
    ("U1", "urgent", "billing", "acme", "closed", "L1", "", 0, 10, 2, 0, 0),
    ("U2", "urgent", "billing", "globex", "resolved", "L1", "", 1, 5, 3, 0, 0),
    ("U3", "urgent", "login", "acme", "closed", "L2", "frb", 2, 30, 5, 1, 1),
    ("U4", "urgent", "login", "initech", "open", "L3", "tt ar", 200, 20, None, 1, 1),
    ("U5", "urgent", None, "acme", "resolved", "L2", "ar", 3, 12, 4, 0, 0),
    ("U6", "urgent", None, "globex", "new", "L1", "", 239.5, None, None, 0, 0),
    ("H1", "high", "billing", "acme", "closed", "L1", "", 24, 30, 6, 0, 0),
    ("H2", "high", "billing", "initech", "closed", "L2", "tt", 25, 40, 10, 0, 1),
    ("H3", "high", "login", "globex", "pending", "L1", "", 100, 50, None, 0, 0),
    ("H4", "high", "login", "acme", "open", "L2", "frb", 230, 90, None, 1, 0),
    ("H5", "high", None, "initech", "resolved", "L1", "", 26, 20, 7, 0, 0),
    ("H6", "high", "billing", "globex", "closed", "L1", "", 27, None, 1, 0, 0),
    ("N1", "normal", "billing", "acme", "closed", "L1", "", 48, 60, 20, 0, 0),
    ("N2", "normal", "billing", "acme", "closed", "L1", "", 49, 120, 12, 0, 0),
    ("N3", "normal", "login", "globex", "resolved", "L2", "ar", 50, 200, 30, 0, 1),
    ("N4", "normal", "login", "initech", "open", "L1", "", 150, 100, None, 0, 0),
    ("N5", "normal", None, "acme", "open", "L2", "tt", 170, 180, None, 0, 0),
    ("N6", "normal", None, "globex", "new", "L1", "", 236, None, None, 0, 0),
    ("N7", "normal", "billing", "initech", "closed", "L1", "", 51, 30, 5, 0, 0),
    ("L1", "low", "billing", "globex", "closed", "L1", "", 72, 300, 48, 0, 0),
    ("L2", "low", "login", "acme", "closed", "L3", "frb tt", 73, 600, 80, 1, 1),
    ("L3", "low", None, "initech", "pending", "L1", "", 120, 240, None, 0, 0),
    ("L4", "low", "billing", "acme", "resolved", "L1", "", 74, 60, 24, 0, 0),
    ("L5", "low", "login", "globex", "open", "L1", "", 220, None, None, 0, 0),
    # outside the range: their escalations must not count either
    ("X1", "urgent", "billing", "acme", "open", "L2", "ar", -1, 5, None, 0, 0),
    ("X2", "low", "login", "acme", "open", "L2", "tt", 240, None, None, 0, 0),
]
TRIGGER = {"frb": "first_response_breach", "tt": "tier_timeout", "ar": "agent_request"}


def fixture() -> tuple[list[Ticket], list[Escalation]]:
    tickets, escalations = [], []
    for tid, prio, cat, cust, status, tier, trig, opened_h, fr_m, done_h, frb, resb in ROWS:
        opened = T0 + timedelta(hours=opened_h)
        done = opened + timedelta(hours=done_h) if done_h is not None else None
        resolved_at = closed_at = None
        if tid == "H6":
            closed_at = done  # closed without a resolve
        elif status == "resolved":
            resolved_at = done
        elif status == "closed":
            assert done is not None
            resolved_at, closed_at = done, done + timedelta(hours=72)
        triggers = trig.split()
        tickets.append(
            Ticket(
                ticket_id=tid,
                customer_id=cust,
                priority=prio,
                category=cat,
                status=status,
                tier=tier,
                opened_at=opened,
                first_responded_at=opened + timedelta(minutes=fr_m) if fr_m is not None else None,
                resolved_at=resolved_at,
                closed_at=closed_at,
                first_response_breached=bool(frb),
                resolution_breached=bool(resb),
                escalation_count=len(triggers),
            )
        )
        escalations += [
            Escalation(tid, TRIGGER[t], opened + timedelta(minutes=i + 1))
            for i, t in enumerate(triggers)
        ]
    return tickets, escalations


@pytest.fixture(scope="module")
def report() -> Report:
    tickets, escalations = fixture()
    return build_report(tickets, escalations, since=T0, until=UNTIL, as_of=UNTIL)


def m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


def h(hours: float) -> timedelta:
    return timedelta(hours=hours)


# Per group, worked out by hand from the table above:
# tickets, FR met, FR breached, res met, res breached, escalated, escalations, done, FCR,
# TTFR median, TTFR p90, TTR median, TTR p90, then the four percentages as the report shows them.
EXPECTED = {
    ("all", "all"): (24, 16, 4, 11, 5, 8, 10, 15, 10, m(55), h(4), h(7), h(48),
                     80.0, 68.8, 33.3, 66.7),
    ("priority", "urgent"): (6, 3, 2, 3, 2, 3, 4, 4, 2, m(12), m(30), h(3.5), h(5),
                             60.0, 60.0, 50.0, 50.0),
    ("priority", "high"): (6, 4, 1, 3, 1, 2, 2, 4, 3, m(40), m(90), h(6.5), h(10),
                           80.0, 75.0, 33.3, 75.0),
    ("priority", "normal"): (7, 6, 0, 3, 1, 2, 2, 4, 3, m(110), m(200), h(16), h(30),
                             100.0, 75.0, 28.6, 75.0),
    ("priority", "low"): (5, 3, 1, 2, 1, 1, 2, 3, 2, m(270), m(600), h(48), h(80),
                          75.0, 66.7, 20.0, 66.7),
    ("tier", "L1"): (16, 12, 0, 10, 0, 0, 0, 10, 10, m(55), h(4), h(6.5), h(24),
                     100.0, 100.0, 0.0, 100.0),
    ("tier", "L2"): (6, 4, 2, 1, 3, 6, 6, 4, 0, m(65), m(200), h(7.5), h(30),
                     66.7, 25.0, 100.0, 0.0),
    ("tier", "L3"): (2, 0, 2, 0, 2, 2, 4, 1, 0, m(310), m(600), h(80), h(80),
                     0.0, 0.0, 100.0, 0.0),
    ("category", "(none)"): (6, 4, 0, 2, 0, 2, 2, 2, 1, m(100), m(240), h(5.5), h(7),
                             100.0, 100.0, 33.3, 50.0),
    ("category", "billing"): (10, 9, 0, 9, 1, 1, 1, 10, 9, m(40), m(300), h(8), h(24),
                              100.0, 90.0, 10.0, 90.0),
    ("category", "login"): (8, 3, 4, 0, 4, 5, 7, 3, 0, m(90), m(600), h(30), h(80),
                            42.9, 0.0, 62.5, 0.0),
    ("customer_id", "acme"): (10, 7, 3, 6, 2, 5, 6, 8, 5, m(60), m(180), h(9), h(80),
                              70.0, 75.0, 50.0, 62.5),
    ("customer_id", "globex"): (8, 4, 0, 3, 1, 1, 1, 4, 3, m(125), m(300), h(16.5), h(48),
                                100.0, 75.0, 12.5, 75.0),
    ("customer_id", "initech"): (6, 5, 1, 2, 2, 2, 3, 3, 2, m(35), m(240), h(7), h(10),
                                 83.3, 50.0, 33.3, 66.7),
}  # fmt: skip


def test_groups_are_listed_in_order(report: Report) -> None:
    assert [g for g, _ in report.by["priority"]] == ["urgent", "high", "normal", "low"]
    assert [g for g, _ in report.by["tier"]] == ["L1", "L2", "L3"]
    assert [g for g, _ in report.by["category"]] == ["(none)", "billing", "login"]
    assert [g for g, _ in report.by["customer_id"]] == ["acme", "globex", "initech"]


@pytest.mark.parametrize("key", list(EXPECTED), ids=lambda k: f"{k[0]}={k[1]}")
def test_every_figure_matches_the_hand_computed_one(report: Report, key: tuple[str, str]) -> None:
    dim, group = key
    got = report.overall if dim == "all" else dict(report.by[dim])[group]
    *counts, fr, res, esc, fcr = EXPECTED[key]
    assert [
        got.tickets,
        got.fr_met,
        got.fr_breached,
        got.res_met,
        got.res_breached,
        got.escalated,
        got.escalations,
        got.done,
        got.first_contact,
        got.ttfr_median,
        got.ttfr_p90,
        got.ttr_median,
        got.ttr_p90,
    ] == counts
    assert (got.fr_compliance, got.res_compliance, got.escalation_rate, got.fcr_rate) == (
        fr,
        res,
        esc,
        fcr,
    )


def test_escalations_by_trigger_count_only_the_range(report: Report) -> None:
    assert report.escalations_by_trigger == {
        "first_response_breach": 3,
        "tier_timeout": 4,
        "agent_request": 3,
        "ack_timeout": 0,
    }


BACKLOG = {
    "L1": {"<1h": 1, "1-4h": 0, "4-24h": 2, "1-3d": 0, ">3d": 3},
    "L2": {"<1h": 0, "1-4h": 0, "4-24h": 1, "1-3d": 1, ">3d": 0},
    "L3": {"<1h": 0, "1-4h": 0, "4-24h": 0, "1-3d": 1, ">3d": 0},
}


def test_backlog_by_tier_and_age(report: Report) -> None:
    assert report.backlog == BACKLOG
    assert report.backlog_total == 9


def test_range_bounds_and_empty_report() -> None:
    tickets, escalations = fixture()
    everything = build_report(tickets, escalations, as_of=UNTIL + h(1))
    assert everything.overall.tickets == 26  # X1 and X2 too
    assert everything.escalations_by_trigger["agent_request"] == 4
    empty = build_report(tickets, escalations, since=UNTIL + h(1), as_of=UNTIL + h(1))
    assert empty.overall.tickets == 0
    assert empty.overall.fr_compliance is None and empty.overall.ttr_median is None
    assert empty.backlog == {}
    assert "SLA report" in render_text(empty) and "<svg" in render_html(empty)


def test_duration_format() -> None:
    cases = (None, timedelta(seconds=40), m(12), h(1), m(65), h(30), h(48), m(59.6))
    assert [fmt_duration(x) for x in cases] == [
        "-",
        "40s",
        "12m",
        "1h",
        "1h05m",
        "1d6h",
        "2d",
        "1h",
    ]


def test_terminal_table(report: Report) -> None:
    text = render_text(report)
    lines = text.splitlines()
    assert lines[0] == (
        "SLA report: tickets opened 2026-11-02T00:00+00:00 .. 2026-11-12T00:00+00:00;"
        " backlog as of 2026-11-12T00:00+00:00"
    )
    row = next(line for line in lines if line.startswith("all tickets"))
    assert row.split() == [
        "all", "tickets", "24", "80.0%", "68.8%", "33.3%", "66.7%", "55m", "4h", "7h", "2d",
    ]  # fmt: skip
    urgent = next(line for line in lines if line.startswith("urgent"))
    assert urgent.split() == [
        "urgent", "6", "60.0%", "60.0%", "50.0%", "50.0%", "12m", "30m", "3h30m", "5h",
    ]  # fmt: skip
    login = next(line for line in lines if line.startswith("login"))
    assert login.split() == [
        "login", "8", "42.9%", "0.0%", "62.5%", "0.0%", "1h30m", "10h", "1d6h", "3d8h",
    ]  # fmt: skip
    assert any(line.split() == ["tier_timeout", "4"] for line in lines)
    assert any(line.split() == ["L1", "1", "0", "2", "0", "3", "6"] for line in lines)
    assert "backlog by tier and age (9 open)" in text


# --- HTML -----------------------------------------------------------------------------------------


class Charts(HTMLParser):
    """Collects every chart's bars: {svg id: {(series, label): value}}, and what must not be."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[tuple[str, str], float]] = {}
        self.current: str | None = None
        self.scripts = 0
        self.external: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self.tables += 1
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(a[key] or "")
        if tag == "svg":
            self.current = a["id"]
            self.charts[self.current or ""] = {}
        if tag == "rect" and "data-value" in a and self.current:
            series, label = a["data-series"] or "", a["data-label"] or ""
            self.charts[self.current][(series, label)] = float(a["data-value"] or "nan")

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.current = None


def test_html_report_is_self_contained_with_the_right_charts(report: Report) -> None:
    page = render_html(report)
    parser = Charts()
    parser.feed(page)
    assert page.startswith("<!DOCTYPE html>")
    assert parser.scripts == 0 and parser.external == []
    assert set(parser.charts) == {
        "sla-by-priority",
        "sla-by-tier",
        "sla-by-path",
        "sla-by-category",
        "sla-by-customer",
        "time-by-priority",
        "escalations-by-trigger",
        "backlog-by-tier",
    }
    assert parser.tables == 7  # overall, five dimensions (path since v2), backlog

    by_priority = parser.charts["sla-by-priority"]
    assert {p: by_priority[("first response", p)] for p in ("urgent", "high", "normal", "low")} == {
        "urgent": 60.0,
        "high": 80.0,
        "normal": 100.0,
        "low": 75.0,
    }
    assert {p: by_priority[("resolution", p)] for p in ("urgent", "high", "normal", "low")} == {
        "urgent": 60.0,
        "high": 75.0,
        "normal": 75.0,
        "low": 66.7,
    }
    assert parser.charts["sla-by-tier"] == {
        ("first response", "L1"): 100.0,
        ("resolution", "L1"): 100.0,
        ("first response", "L2"): 66.7,
        ("resolution", "L2"): 25.0,
        ("first response", "L3"): 0.0,
        ("resolution", "L3"): 0.0,
    }
    assert parser.charts["sla-by-category"][("first response", "login")] == 42.9
    assert parser.charts["sla-by-customer"][("resolution", "initech")] == 50.0
    assert parser.charts["escalations-by-trigger"] == {
        ("escalations", "first_response_breach"): 3,
        ("escalations", "tier_timeout"): 4,
        ("escalations", "agent_request"): 3,
        ("escalations", "ack_timeout"): 0,
    }
    assert parser.charts["backlog-by-tier"] == {
        (bucket, tier): count
        for tier, buckets in BACKLOG.items()
        for bucket, count in buckets.items()
    }
    times = parser.charts["time-by-priority"]
    # hours, two decimals: 12m, 40m, 110m, 270m; 3.5h, 6.5h, 16h, 48h
    assert [times[("first response median", p)] for p in ("urgent", "high", "normal", "low")] == [
        0.2,
        0.67,
        1.83,
        4.5,
    ]
    assert [times[("resolution p90", p)] for p in ("urgent", "high", "normal", "low")] == [
        5.0,
        10.0,
        30.0,
        80.0,
    ]
    # The figures are also written on the page for the reader, not only in attributes.
    assert "<title>urgent · first response: 60%</title>" in page
    assert "8 of 24 tickets escalated (33.3%), 10 escalations in all" in page


@pytest.mark.parametrize(
    ("largest", "unit"),
    [
        (timedelta(seconds=40), "s"),
        (timedelta(minutes=12), "min"),
        (timedelta(hours=80), "h"),
        (timedelta(days=12), "d"),
    ],
)
def test_time_chart_unit_follows_the_data(largest: timedelta, unit: str) -> None:
    """Demo tickets answered in seconds drew as `0h` in an hours-only chart."""
    assert time_unit([None, timedelta(seconds=1), largest])[0] == unit
    assert time_unit([None])[0] == "s"
