"""A ticket's history as a readable timeline (time, event, who, details), from its domain events.

The same events come from the event store or from the workflow's `history` query; `compare`
says where the two disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain import events as ev
from reports.render import table


@dataclass(frozen=True)
class Entry:
    seq: int
    at: datetime
    event: str
    who: str
    details: str


def _clip(text: str | None, limit: int = 80) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(d: datetime) -> str:
    return d.isoformat(timespec="seconds")


def _by(agent_id: str | None, rule: str | None) -> str:
    """Who caused an event an agent or a rule may cause."""
    return agent_id or (f"rule {rule}" if rule else "system")


def describe(data: ev.EventPayload) -> tuple[str, str]:
    """(who, details) of one typed event."""
    match data:
        case ev.TicketOpened():
            category = f" {data.category}" if data.category else ""
            return data.customer_id, (
                f"{data.priority}{category} ticket at {data.tier}, policy {data.policy.name}:"
                f" {_clip(data.subject)}"
            )
        case ev.TicketAssigned():
            was = f" (was {data.previous_assignee})" if data.previous_assignee else ""
            if data.trigger == "auto":
                return "system", f"auto-assigned to {data.assignee}"
            return data.agent_id, f"assigned to {data.assignee}{was}"
        case ev.AssignmentAcknowledged():
            return data.agent_id, "acknowledged the assignment"
        case ev.AssignmentTimedOut():
            return "system", f"{data.assignee} did not acknowledge at {data.tier}"
        case ev.AssignmentUnavailable():
            return "system", f"nobody assigned at {data.tier}: {_clip(data.reason)}"
        case ev.TicketTransferred():
            return _by(data.agent_id, data.rule), (
                f"transferred {data.from_path}/{data.from_tier} -> {data.to_path}/{data.to_tier}:"
                f" {_clip(data.reason)}"
            )
        case ev.AgentResponded():
            what = "first response" if data.first_response else "replied"
            return data.agent_id, f"{what}: {_clip(data.message)}".rstrip(": ")
        case ev.CustomerAwaited():
            return data.agent_id, "waiting for the customer; SLA clocks paused"
        case ev.CustomerReplied():
            what = "customer replied; reopened" if data.reopened else "customer replied"
            return "customer", f"{what}: {_clip(data.message)}".rstrip(": ")
        case ev.SlaWarning():
            return "system", f"{data.metric} SLA at risk at {data.tier}, due {_when(data.due_at)}"
        case ev.SlaBreached():
            return "system", f"{data.metric} SLA breached at {data.tier}, due {_when(data.due_at)}"
        case ev.TicketEscalated():
            reason = f": {_clip(data.reason)}" if data.reason else ""
            return (
                _by(data.agent_id, data.rule),
                f"{data.from_tier} -> {data.to_tier} ({data.trigger}){reason}",
            )
        case ev.PriorityChanged():
            reason = f": {_clip(data.reason)}" if data.reason else ""
            return (
                _by(data.agent_id, data.rule),
                f"priority {data.from_priority} -> {data.to_priority}{reason}",
            )
        case ev.TagsChanged():
            change = [f"+{t}" for t in data.added] + [f"-{t}" for t in data.removed]
            return _by(data.agent_id, data.rule), f"tags {' '.join(change)}"
        case ev.RuleFired():
            since = f" (since {_when(data.since)})" if data.since else ""
            notify = f"; notify {data.notify}" if data.notify else ""
            return "rule", f"rule {data.rule} fired on {data.on}{since}{notify}"
        case ev.TicketResolved():
            return data.agent_id, f"resolved: {_clip(data.resolution)}"
        case ev.TicketReopened():
            reason = f": {_clip(data.reason)}" if data.reason else ""
            return data.agent_id or "customer", f"reopened{reason}"
        case ev.TicketClosed():
            return data.agent_id or "system", f"closed ({data.trigger})"
        case ev.ActionRejected():
            return data.agent_id or "-", f"{data.action} rejected: {_clip(data.reason)}"
    return "-", ""


def timeline(events: Sequence[ev.DomainEvent]) -> list[Entry]:
    out: list[Entry] = []
    for e in events:
        try:
            who, details = describe(e.data())
        except ValueError as exc:  # an unknown type or a payload that does not validate
            who, details = "-", f"(undecodable: {_clip(str(exc))})"
        out.append(Entry(e.seq, e.occurred_at, e.event_type, who, details))
    return out


def render_timeline(ticket_id: str, entries: Sequence[Entry], source: str) -> str:
    if not entries:
        return f"ticket {ticket_id}: no events ({source})\n"
    rows = [[str(x.seq), _when(x.at), x.event, x.who, x.details] for x in entries]
    head = f"ticket {ticket_id}: {len(entries)} events ({source})"
    return head + "\n" + table(["seq", "time", "event", "who", "details"], rows, "rllll") + "\n"


def compare(store: Sequence[ev.DomainEvent], workflow: Sequence[ev.DomainEvent]) -> list[str]:
    """Where the store's events and the workflow's differ (empty: they agree)."""
    diffs: list[str] = []
    for a, b in zip(store, workflow, strict=False):
        if a != b:
            diffs.append(f"seq {a.seq}: store has {a.event_type}, workflow has {b.event_type}")
    if len(store) > len(workflow):
        diffs.append(f"the store has {len(store) - len(workflow)} events the workflow lacks")
    elif len(workflow) > len(store):
        diffs.append(
            f"the workflow has {len(workflow) - len(store)} events not stored yet"
            " (they are appended after they are decided)"
        )
    return diffs
