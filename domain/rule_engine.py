"""What a policy's rules do (docs/rules.md#rules): pure, called by the decider after each
action and timer.

Rules react to the events actions and timers cause, never to events a rule caused (those name
their rule), so nothing cascades. The rules a batch of events triggers are found on the state
right after their triggering event, and fired after the whole batch, in trigger order: an
effect sees the state the batch and the earlier effects left (`escalate_to` a tier the ticket
has already passed does nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from domain import events as ev
from domain.rules import NEXT, Rule, RuleOn, matches
from domain.state import TicketState, apply, elapsed_rule_due
from domain.tags import MAX_TAGS, changed

TRIGGERS: dict[type[ev.EventPayload], RuleOn] = {
    ev.TicketOpened: "opened",
    ev.PriorityChanged: "priority_changed",
    ev.CustomerReplied: "customer_replied",
    ev.TagsChanged: "tags_changed",
    ev.SlaWarning: "sla_warning",
    ev.SlaBreached: "sla_breached",
    ev.TicketEscalated: "escalated",
    ev.TicketTransferred: "transferred",
}


def caused_by_rule(data: ev.EventPayload) -> bool:
    return isinstance(data, ev.RuleFired) or getattr(data, "rule", None) is not None


def triggered(state: TicketState, data: ev.EventPayload) -> list[Rule]:
    """The rules `data` triggers on `state`, the ticket right after it."""
    on = TRIGGERS.get(type(data))
    if on is None or caused_by_rule(data) or state.is_terminal:
        return []
    metric = getattr(data, "metric", None)
    return [r for r in state.policy.rules if r.on == on and matches(r, state, metric)]


def react(
    before: TicketState, events: Iterable[ev.EventPayload], now: datetime
) -> list[ev.EventPayload]:
    """The events the rules call for after `events` (applied at `now` to `before`)."""
    if not before.policy.rules:
        return []
    state, due = before, []
    for data in events:
        state = apply(state, data, now)
        due += triggered(state, data)
    return fire_all(state, due, now)


def opened(state: TicketState, now: datetime) -> list[ev.EventPayload]:
    """The events the `opened` rules call for on a ticket just opened (`state`)."""
    return fire_all(
        state, [r for r in state.policy.rules if r.on == "opened" and matches(r, state)], now
    )


def fire_all(state: TicketState, rules: list[Rule], now: datetime) -> list[ev.EventPayload]:
    out: list[ev.EventPayload] = []
    for rule in rules:
        events = fire(state, rule, now)
        for data in events:
            state = apply(state, data, now)
        out += events
    return out


def fire(
    state: TicketState, rule: Rule, now: datetime, since: datetime | None = None
) -> list[ev.EventPayload]:
    """`RuleFired`, then each effect that changes something, in `then`'s order; every event
    names the rule. Escalation, priority and transfer leave a resolved ticket alone."""
    name, then = rule.name, rule.then
    out: list[ev.EventPayload] = [
        ev.RuleFired(rule=name, on=rule.on, since=since, notify=then.notify)
    ]
    s = apply(state, out[0], now)
    active = s.status not in ("resolved", "closed")

    def emit(data: ev.EventPayload) -> None:
        nonlocal s
        out.append(data)
        s = apply(s, data, now)

    reason = f"rule {name}"
    if then.escalate_to is not None and active:
        target = s.next_tier() if then.escalate_to == NEXT else then.escalate_to
        tiers = s.tiers
        if target in tiers and tiers.index(target) > tiers.index(s.tier):
            emit(
                ev.TicketEscalated(
                    from_tier=s.tier, to_tier=target, trigger="rule", reason=reason, rule=name
                )
            )
    if then.set_priority is not None and active and then.set_priority != s.priority:
        emit(
            ev.PriorityChanged(
                agent_id=None,
                from_priority=s.priority,
                to_priority=then.set_priority,
                reason=reason,
                rule=name,
            )
        )
    if then.add_tags or then.remove_tags:
        added, removed, tags = changed(s.tags, then.add_tags or (), then.remove_tags or ())
        if (added or removed) and len(tags) <= MAX_TAGS:
            emit(ev.TagsChanged(added=added, removed=removed, tags=tags, rule=name))
    if then.transfer_to is not None and active and then.transfer_to != s.path_name:
        tiers_to = s.policy.path_tiers(then.transfer_to)
        if tiers_to is not None:
            target = tiers_to[min(s.tiers.index(s.tier), len(tiers_to) - 1)]
            emit(
                ev.TicketTransferred(
                    from_path=s.path_name,
                    to_path=then.transfer_to,
                    from_tier=s.tier,
                    to_tier=target,
                    reason=reason,
                    agent_id=None,
                    rule=name,
                )
            )
    return out


def elapsed_still_due(state: TicketState, rule: Rule, since: datetime) -> bool:
    """Whether an elapsed rule found due still is, after the events decided before it at the
    same instant (an escalation moves tier_entered; effects may break its conditions)."""
    clock = elapsed_rule_due(state, rule)
    return clock is not None and clock[1] == since and matches(rule, state)
