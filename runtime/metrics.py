"""Prometheus metrics: the Temporal SDK's own and ours, on one endpoint (`METRICS_PORT`).

Ours are recorded through the SDK's metric meter (`activity.metric_meter()`), so they share the
runtime's Prometheus exporter with the SDK's `temporal_*` metrics. Counts that come from domain
events are derived in the `append_events` activity from the events it actually inserted: a
retried or replayed append finds its events already present and counts nothing, and workflow
code stays free of metrics.

| metric | type | labels |
|---|---|---|
| `escalation_escalations_total` | counter | `tier` (escalated to), `from_tier`, `trigger` |
| `escalation_sla_breaches_total` | counter | `metric`, `priority`, `tier` |
| `escalation_sla_warnings_total` | counter | `metric`, `priority`, `tier` |
| `escalation_actions_total` | counter | `action`, `outcome` (`applied` or `rejected`) |
| `escalation_events_appended_total` | counter | `event_type` |
| `escalation_event_store_append_seconds` | histogram | `outcome` (`ok`, `refused`, `error`) |
| `escalation_notifications_total` | counter | `channel`, `kind`, `outcome` (see below) |

Notification outcomes: `delivered`, `failed` (an attempt; Temporal retries), `dead_lettered`.
Every one of ours also carries the SDK's activity labels (`namespace`, `task_queue`,
`activity_type`...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from domain import events as ev

PREFIX = "escalation_"
ESCALATIONS = f"{PREFIX}escalations_total"
SLA_BREACHES = f"{PREFIX}sla_breaches_total"
SLA_WARNINGS = f"{PREFIX}sla_warnings_total"
ACTIONS = f"{PREFIX}actions_total"
EVENTS_APPENDED = f"{PREFIX}events_appended_total"
APPEND_SECONDS = f"{PREFIX}event_store_append_seconds"
NOTIFICATIONS = f"{PREFIX}notifications_total"

DESCRIPTIONS = {
    ESCALATIONS: "Tickets escalated, by the tier escalated to and the trigger",
    SLA_BREACHES: "SLA breaches, by metric, ticket priority and tier",
    SLA_WARNINGS: "SLA warnings (at risk), by metric, ticket priority and tier",
    ACTIONS: "Actions on tickets, by name and outcome",
    EVENTS_APPENDED: "Domain events appended to the event store, by type",
    APPEND_SECONDS: "Latency of one event-store append (one batch, one transaction)",
    NOTIFICATIONS: "Notification deliveries per channel, by kind and outcome",
}

# Event-store appends take milliseconds; the SDK's default buckets start at 50ms.
APPEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The action an applied event stands for (an escalation only when an agent asked for it, a
# close only when an agent closed).
APPLIED_ACTION = {
    "TicketAssigned": "assign",
    "AgentResponded": "respond",
    "CustomerAwaited": "await_customer",
    "CustomerReplied": "customer_replied",
    "PriorityChanged": "change_priority",
    "TicketResolved": "resolve",
    "TicketReopened": "reopen",
}
ACTION_NAMES = frozenset(
    [*APPLIED_ACTION.values(), "request_escalation", "close"]
)  # label values are bounded: anything else counts as "other"


def bind_address(port: int, host: str = "0.0.0.0") -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def prometheus_runtime(address: str) -> Runtime:
    """A Temporal runtime that serves Prometheus metrics at http://<address>/metrics.

    The SDK's metrics keep the SDK's default names and units (`temporal_request`, latencies in
    milliseconds), which Temporal's SDK Grafana dashboard queries; ours follow Prometheus
    naming (`_total`, `_seconds`) by their names.
    """
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=address,
                histogram_bucket_overrides={APPEND_SECONDS: list(APPEND_BUCKETS)},
            )
        )
    )


Labels = tuple[tuple[str, str], ...]


def _labels(**kw: str | None) -> Labels:
    return tuple((k, v or "unknown") for k, v in kw.items())


def needs_prior_priority(events: Sequence[ev.DomainEvent]) -> bool:
    """True if an SLA event comes before any event of the batch that sets the priority."""
    for e in events:
        if e.event_type in ("TicketOpened", "PriorityChanged"):
            return False
        if e.event_type in ("SlaWarning", "SlaBreached"):
            return True
    return False


def event_counts(
    events: Iterable[ev.DomainEvent], priority: str | None = None
) -> Counter[tuple[str, Labels]]:
    """What a batch of newly stored events adds to our counters.

    `priority` is the ticket's priority before the first event (for SLA events that come before
    any TicketOpened or PriorityChanged in the batch).
    """
    out: Counter[tuple[str, Labels]] = Counter()
    for e in events:
        p: dict[str, Any] = e.payload
        t = e.event_type
        out[(EVENTS_APPENDED, _labels(event_type=t))] += 1
        if t == "TicketOpened":
            priority = p.get("priority")
        elif t == "PriorityChanged":
            priority = p.get("to_priority")
        if t == "TicketEscalated":
            out[
                (
                    ESCALATIONS,
                    _labels(
                        tier=p.get("to_tier"),
                        from_tier=p.get("from_tier"),
                        trigger=p.get("trigger"),
                    ),
                )
            ] += 1
            if p.get("trigger") == "agent_request":
                out[(ACTIONS, _labels(action="request_escalation", outcome="applied"))] += 1
        elif t in ("SlaBreached", "SlaWarning"):
            name = SLA_BREACHES if t == "SlaBreached" else SLA_WARNINGS
            out[(name, _labels(metric=p.get("metric"), priority=priority, tier=p.get("tier")))] += 1
        elif t == "ActionRejected":
            action = p.get("action")
            action = action if action in ACTION_NAMES else "other"
            out[(ACTIONS, _labels(action=action, outcome="rejected"))] += 1
        elif t == "TicketClosed":
            if p.get("trigger") == "agent":
                out[(ACTIONS, _labels(action="close", outcome="applied"))] += 1
        elif t in APPLIED_ACTION:
            out[(ACTIONS, _labels(action=APPLIED_ACTION[t], outcome="applied"))] += 1
    return out


def record_counts(meter: MetricMeter, counts: Counter[tuple[str, Labels]]) -> None:
    for (name, labels), value in counts.items():
        meter.create_counter(name, DESCRIPTIONS[name]).add(value, dict(labels))


def record_append_latency(meter: MetricMeter, seconds: float, outcome: str) -> None:
    meter.create_histogram_float(APPEND_SECONDS, DESCRIPTIONS[APPEND_SECONDS], "s").record(
        seconds, {"outcome": outcome}
    )


def record_notification(meter: MetricMeter, channel: str, kind: str, outcome: str) -> None:
    meter.create_counter(NOTIFICATIONS, DESCRIPTIONS[NOTIFICATIONS]).add(
        1, {"channel": channel, "kind": kind, "outcome": outcome}
    )
