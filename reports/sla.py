"""SLA reports: pure computation over `tickets` and `escalations` rows (no database, no clock).

The report covers the tickets *opened* in `[since, until)` (a cohort), and for them:

- SLA compliance %: first response is met when the ticket got a first response and never breached
  it, breached when `first_response_breached`; tickets with neither (still waiting, or closed
  without a reply) are left out. Resolution is met when the ticket is done (resolved, or closed)
  without a resolution breach, breached when `resolution_breached`; open tickets are left out.
- escalation rate: % of tickets escalated at least once; escalations counted by trigger.
- first-contact resolution: % of done tickets that were never escalated (so they were resolved at
  the tier they opened at).
- time to first response and to resolution (wall-clock, from `opened_at`): median (the middle
  value, or the mean of the two middle values) and p90 (nearest rank: the ceil(0.9 n)-th value).
- backlog: tickets of the cohort not yet resolved or closed, by current tier and by age at `as_of`.

Everything is grouped overall and by priority, tier (the current one), path, category and
customer, and by tag (a ticket counts in the group of each of its tags).

Next reply (docs/rules.md): % of next-reply clocks met (a respond in time) of those decided (met
or breached), by priority, tier and path. Rules: firings counted by rule.

Acknowledgement (docs/teams.md), by path and by team, over the auto-assignments of the cohort:
time to acknowledge (from the assignment; median, p90), reassignments (auto-assignments made
after an ack timeout at the same team visit), and the share of decided assignments (acknowledged
or timed out) acknowledged within the team's `ack_within` (active time: an acknowledgement
after it cannot happen, the timeout is decided first).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from domain import events as ev
from domain.policy import PRIORITIES
from domain.state import TicketState, evolve

DIMENSIONS = ("priority", "tier", "path", "category", "customer_id")
DIMENSION_TITLES = {
    "priority": "priority",
    "tier": "tier",
    "path": "path",
    "category": "category",
    "customer_id": "customer",
}
TRIGGERS = ("first_response_breach", "tier_timeout", "agent_request", "ack_timeout")
NEXT_REPLY_DIMENSIONS = ("priority", "tier", "path")
NO_CATEGORY = "(none)"
# Backlog age buckets: (label, upper bound exclusive); the last one has no bound.
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("<1h", timedelta(hours=1)),
    ("1-4h", timedelta(hours=4)),
    ("4-24h", timedelta(hours=24)),
    ("1-3d", timedelta(days=3)),
    (">3d", None),
)


@dataclass(frozen=True)
class Ticket:
    """The fields of a `tickets` row that reports use."""

    ticket_id: str
    customer_id: str
    priority: str
    category: str | None
    status: str
    tier: str
    opened_at: datetime
    first_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    first_response_breached: bool = False
    resolution_breached: bool = False
    escalation_count: int = 0
    path: str | None = None  # null in rows projected before paths: the default path
    tags: tuple[str, ...] = ()
    next_reply_met: int = 0
    next_reply_breached: int = 0
    rules_fired: tuple[str, ...] = ()  # one entry per firing

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Ticket:
        fields: dict[str, Any] = {
            f: row[f] for f in cls.__dataclass_fields__ if f not in _LATER_FIELDS
        }
        for f in _LATER_FIELDS:
            value = row.get(f)
            if value is not None:
                fields[f] = tuple(value) if f in ("tags", "rules_fired") else value
        ticket = cls(**fields)
        return ticket if ticket.path is not None else replace(ticket, path="default")

    @property
    def done_at(self) -> datetime | None:
        """When the ticket was resolved (or closed, if it was closed without a resolve)."""
        return self.resolved_at or self.closed_at

    @property
    def done(self) -> bool:
        return self.status in ("resolved", "closed")

    def group(self, dimension: str) -> str:
        value = getattr(self, dimension)
        return NO_CATEGORY if value is None else str(value)


# Columns added after reports first read rows (v2): a row without them reads as their default.
_LATER_FIELDS = ("tags", "next_reply_met", "next_reply_breached", "rules_fired")


@dataclass(frozen=True)
class NextReply:
    met: int
    breached: int

    @property
    def compliance(self) -> float | None:
        return percent(self.met, self.met + self.breached)


def next_reply(tickets: Iterable[Ticket]) -> NextReply:
    tickets = list(tickets)
    return NextReply(
        met=sum(t.next_reply_met for t in tickets),
        breached=sum(t.next_reply_breached for t in tickets),
    )


@dataclass(frozen=True)
class Escalation:
    ticket_id: str
    trigger: str
    at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Escalation:
        return cls(ticket_id=row["ticket_id"], trigger=row["trigger"], at=row["at"])


def median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def p90(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100 * part / whole, 1)


@dataclass(frozen=True)
class Metrics:
    tickets: int
    fr_met: int
    fr_breached: int
    res_met: int
    res_breached: int
    escalated: int
    escalations: int
    done: int
    first_contact: int
    ttfr_median: timedelta | None
    ttfr_p90: timedelta | None
    ttr_median: timedelta | None
    ttr_p90: timedelta | None

    @property
    def fr_compliance(self) -> float | None:
        return percent(self.fr_met, self.fr_met + self.fr_breached)

    @property
    def res_compliance(self) -> float | None:
        return percent(self.res_met, self.res_met + self.res_breached)

    @property
    def escalation_rate(self) -> float | None:
        return percent(self.escalated, self.tickets)

    @property
    def fcr_rate(self) -> float | None:
        return percent(self.first_contact, self.done)


def metrics(tickets: list[Ticket]) -> Metrics:
    ttfr = [t.first_responded_at - t.opened_at for t in tickets if t.first_responded_at is not None]
    ttr = [t.done_at - t.opened_at for t in tickets if t.done and t.done_at is not None]
    done = [t for t in tickets if t.done]
    return Metrics(
        tickets=len(tickets),
        fr_met=sum(
            1 for t in tickets if t.first_responded_at is not None and not t.first_response_breached
        ),
        fr_breached=sum(1 for t in tickets if t.first_response_breached),
        res_met=sum(1 for t in done if not t.resolution_breached),
        res_breached=sum(1 for t in tickets if t.resolution_breached),
        escalated=sum(1 for t in tickets if t.escalation_count > 0),
        escalations=sum(t.escalation_count for t in tickets),
        done=len(done),
        first_contact=sum(1 for t in done if t.escalation_count == 0),
        ttfr_median=median(ttfr),
        ttfr_p90=p90(ttfr),
        ttr_median=median(ttr),
        ttr_p90=p90(ttr),
    )


def age_bucket(age: timedelta) -> str:
    for label, bound in AGE_BUCKETS:
        if bound is None or age < bound:
            return label
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Report:
    since: datetime | None
    until: datetime | None
    as_of: datetime
    overall: Metrics
    by: dict[str, list[tuple[str, Metrics]]]
    escalations_by_trigger: dict[str, int]
    backlog: dict[str, dict[str, int]]  # tier -> age bucket -> open tickets (tiers with any)
    # "path" / "team" -> [(name, metrics)]: acknowledgement of auto-assignments
    acks_by: dict[str, list[tuple[str, AckMetrics]]] = field(default_factory=dict)
    # v2: each tag's tickets; next-reply clocks by priority, tier, path; rule firings
    by_tag: list[tuple[str, Metrics]] = field(default_factory=list)
    next_reply_by: dict[str, list[tuple[str, NextReply]]] = field(default_factory=dict)
    rules_fired: dict[str, int] = field(default_factory=dict)

    @property
    def next_reply_overall(self) -> NextReply:
        groups = self.next_reply_by.get("priority", [])
        return NextReply(sum(g.met for _, g in groups), sum(g.breached for _, g in groups))

    @property
    def backlog_total(self) -> int:
        return sum(sum(b.values()) for b in self.backlog.values())


# --- acknowledgement of auto-assignments -------------------------------------------------------


@dataclass(frozen=True)
class AckEpisode:
    """One auto-assignment: who, where, and what became of it."""

    ticket_id: str
    path: str
    team: str
    assignee: str
    assigned_at: datetime
    ack_within: timedelta
    reassignment: bool  # made after an ack timeout at the same team visit
    acknowledged_at: datetime | None = None
    timed_out: bool = False


def ack_episodes(events: Iterable[ev.DomainEvent]) -> list[AckEpisode]:
    """Every auto-assignment in `events` (each ticket's events in seq order), folded."""
    states: dict[str, TicketState] = {}
    open_episode: dict[str, int] = {}
    out: list[AckEpisode] = []
    for e in events:
        state = states[e.ticket_id] = evolve(states.get(e.ticket_id), e)
        if e.event_type == "TicketAssigned" and e.payload.get("trigger") == "auto":
            open_episode[e.ticket_id] = len(out)
            out.append(
                AckEpisode(
                    ticket_id=e.ticket_id,
                    path=state.path_name,
                    team=state.tier,
                    assignee=e.payload["assignee"],
                    assigned_at=e.occurred_at,
                    ack_within=state.team.ack_within,
                    reassignment=bool(state.timed_out),
                )
            )
            continue
        index = open_episode.pop(e.ticket_id, None) if e.event_type in _ENDS else None
        if index is None:
            continue
        if e.event_type == "AssignmentAcknowledged":
            out[index] = replace(out[index], acknowledged_at=e.occurred_at)
        elif e.event_type == "AssignmentTimedOut":
            out[index] = replace(out[index], timed_out=True)
    return out


# An episode ends with its acknowledgement or timeout, or when the assignment goes away.
_ENDS = {
    "AssignmentAcknowledged",
    "AssignmentTimedOut",
    "TicketAssigned",
    "TicketEscalated",
    "TicketTransferred",
}


@dataclass(frozen=True)
class AckMetrics:
    assignments: int
    acknowledged: int
    timed_out: int
    reassignments: int
    within: int  # acknowledged within ack_within: every acknowledged one
    tta_median: timedelta | None
    tta_p90: timedelta | None

    @property
    def within_share(self) -> float | None:
        return percent(self.within, self.acknowledged + self.timed_out)


def ack_metrics(episodes: list[AckEpisode]) -> AckMetrics:
    tta = [e.acknowledged_at - e.assigned_at for e in episodes if e.acknowledged_at is not None]
    return AckMetrics(
        assignments=len(episodes),
        acknowledged=len(tta),
        timed_out=sum(1 for e in episodes if e.timed_out),
        reassignments=sum(1 for e in episodes if e.reassignment),
        # The decider times an assignment out at its ack due time (active time of the
        # calendar) before any later action: an acknowledgement is always within ack_within.
        within=len(tta),
        tta_median=median(tta),
        tta_p90=p90(tta),
    )


def _order(dimension: str, values: Iterable[str]) -> list[str]:
    values = set(values)
    if dimension == "priority":
        known = [p for p in PRIORITIES if p in values]
        return known + sorted(values - set(known))
    return sorted(values)


def in_range(t: Ticket, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or t.opened_at >= since) and (until is None or t.opened_at < until)


def build_report(
    tickets: Iterable[Ticket | Mapping[str, Any]],
    escalations: Iterable[Escalation | Mapping[str, Any]],
    *,
    as_of: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    episodes: Iterable[AckEpisode] = (),
) -> Report:
    """The report for tickets opened in `[since, until)`; backlog ages are taken at `as_of`."""
    cohort = [
        t
        for t in (x if isinstance(x, Ticket) else Ticket.from_row(x) for x in tickets)
        if in_range(t, since, until)
    ]
    ids = {t.ticket_id for t in cohort}
    escs = [
        e
        for e in (x if isinstance(x, Escalation) else Escalation.from_row(x) for x in escalations)
        if e.ticket_id in ids
    ]
    by: dict[str, list[tuple[str, Metrics]]] = {}
    for dim in DIMENSIONS:
        groups: dict[str, list[Ticket]] = {}
        for t in cohort:
            groups.setdefault(t.group(dim), []).append(t)
        by[dim] = [(value, metrics(groups[value])) for value in _order(dim, groups)]

    triggers = {trigger: 0 for trigger in TRIGGERS}
    for e in escs:
        triggers[e.trigger] = triggers.get(e.trigger, 0) + 1

    tagged: dict[str, list[Ticket]] = {}
    for t in cohort:
        for tag in t.tags:
            tagged.setdefault(tag, []).append(t)
    by_tag = [(tag, metrics(tagged[tag])) for tag in sorted(tagged)]
    next_reply_by: dict[str, list[tuple[str, NextReply]]] = {}
    if any(t.next_reply_met or t.next_reply_breached for t in cohort):
        for dim in NEXT_REPLY_DIMENSIONS:
            nr_groups: dict[str, list[Ticket]] = {}
            for t in cohort:
                if t.next_reply_met or t.next_reply_breached:
                    nr_groups.setdefault(t.group(dim), []).append(t)
            next_reply_by[dim] = [(v, next_reply(nr_groups[v])) for v in _order(dim, nr_groups)]
    rules_fired: dict[str, int] = {}
    for t in cohort:
        for name in t.rules_fired:
            rules_fired[name] = rules_fired.get(name, 0) + 1

    tiers = _order("tier", {t.tier for t in cohort})
    backlog = {tier: {label: 0 for label, _ in AGE_BUCKETS} for tier in tiers}
    for t in cohort:
        if not t.done:
            backlog[t.tier][age_bucket(as_of - t.opened_at)] += 1
    backlog = {tier: counts for tier, counts in backlog.items() if any(counts.values())}
    acks = [e for e in episodes if e.ticket_id in ids]
    acks_by: dict[str, list[tuple[str, AckMetrics]]] = {}
    for dim in ("path", "team"):
        ack_groups: dict[str, list[AckEpisode]] = {}
        for a in acks:
            ack_groups.setdefault(getattr(a, dim), []).append(a)
        acks_by[dim] = [(k, ack_metrics(ack_groups[k])) for k in sorted(ack_groups)]
    return Report(
        acks_by=acks_by,
        since=since,
        until=until,
        as_of=as_of,
        overall=metrics(cohort),
        by=by,
        escalations_by_trigger=triggers,
        backlog=backlog,
        by_tag=by_tag,
        next_reply_by=next_reply_by,
        rules_fired=dict(sorted(rules_fired.items())),
    )


# --- formatting shared by the renderers --------------------------------------------------------


def fmt_duration(value: timedelta | None) -> str:
    """`40s`, `45m`, `2h05m`, `3d4h`; `-` for none. Rounded to the minute from one minute up."""
    if value is None:
        return "-"
    if value.total_seconds() < 59.5:  # the demo policy's clocks run in seconds
        return f"{round(value.total_seconds())}s"
    minutes = round(value.total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{mins:02d}m" if mins else f"{hours}h"
    return f"{mins}m"


def fmt_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"
