"""The Decider: `decide(state, command, now) -> events`. Every escalation rule lives here.

`decide` raises `ActionRejected` for an action the ticket's state does not allow; it never
changes state. Time-driven rules run through the `Tick` command at the instant
`state.next_deadline` names, and after every action, so a deadline that a change has pulled
into the past (a priority change) is decided at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain import commands as cmd
from domain import events as ev
from domain import rule_engine
from domain.assignment import Choice, ChoiceRequest
from domain.durations import format_duration
from domain.errors import ActionRejected, InvalidTicket
from domain.policy import Policy
from domain.state import (
    SLA_DUE,
    TicketState,
    ack_due,
    apply,
    auto_close_due,
    elapsed_rules_due,
    evolve,
    first_response_due,
    next_reply_due,
    resolution_due,
    tier_due,
    warning_due,
)
from domain.tags import MAX_TAGS, changed


@dataclass(frozen=True)
class Open:
    """Open a ticket under a policy already resolved by name. `record_path=False` opens it as
    v1 did (no path in TicketOpened): for workflows started before paths existed."""

    ticket: cmd.OpenTicket
    policy: Policy
    record_path: bool = True


@dataclass(frozen=True)
class Assigned:
    """What the team's assignment chose for `request` (a local activity's recorded answer)."""

    request: ChoiceRequest
    choice: Choice


@dataclass(frozen=True)
class Tick:
    """Time has passed: decide whatever is due now."""


Command = Open | Tick | Assigned | cmd.Action

ACTION_VERBS = {
    "assign": "assign",
    "respond": "respond",
    "request_escalation": "escalate",
    "await_customer": "wait for the customer",
    "customer_replied": "record a customer reply",
    "change_priority": "change priority",
    "resolve": "resolve",
    "reopen": "reopen",
    "close": "close",
    "transfer": "transfer",
    "acknowledge": "acknowledge",
    "tag": "tag",
}
ACTION_NAMES = {model: name for name, model in cmd.ACTIONS.items()}


def action_name(action: cmd.Action) -> str:
    return ACTION_NAMES[type(action)]


def decide(state: TicketState | None, command: Command, now: datetime) -> list[ev.EventPayload]:
    if isinstance(command, Open):
        if state is not None:
            raise ActionRejected(f"ticket {state.ticket_id} is already open")
        opened = _open(command)
        return [opened, *rule_engine.opened(_opened_state(command, opened, now), now)]
    if state is None:
        raise ActionRejected("ticket is not open yet")
    if isinstance(command, Tick):
        return _tick_with_rules(state, now)
    if isinstance(command, Assigned):
        return _assigned(state, command)
    # Catch up first: a deadline that passed before this action (a late timer, a worker that
    # was down) is decided before the action, so a late `respond` cannot erase a breach.
    due = _tick_with_rules(state, now)
    caught_up = _apply_all(state, due, now)
    if command.request_id and command.request_id in caught_up.request_ids:
        used = caught_up.request_uses.get(command.request_id)
        if used is not None and used != cmd.request_use(command):
            action, agent, _ = used.split("|", 2)
            by = "the customer" if agent == "-" else agent
            raise ActionRejected(
                f"request_id {command.request_id} was already used for {action} by {by}"
            )
        return due  # idempotent: already applied
    events = _decide_action(caught_up, command)
    events = _acknowledged_by(caught_up, command, events) + events
    events += rule_engine.react(caught_up, events, now)
    return due + events + _tick_with_rules(_apply_all(caught_up, events, now), now)


def _tick_with_rules(state: TicketState, now: datetime) -> list[ev.EventPayload]:
    """What is due at `now`, and what the rules make of it."""
    due = _tick(state, now)
    return due + rule_engine.react(state, due, now)


def _opened_state(command: Open, opened: ev.TicketOpened, now: datetime) -> TicketState:
    """The ticket as `opened` leaves it, for the rules on `opened`."""
    envelope = ev.DomainEvent(
        ticket_id=command.ticket.ticket_id,
        seq=1,
        event_id=UUID(int=0),  # never stored: the workflow records `opened` itself
        event_type=opened.event_type,
        payload=opened.model_dump(mode="json"),
        occurred_at=now,
    )
    return evolve(None, envelope)


def _acknowledged_by(
    state: TicketState, a: cmd.Action, events: list[ev.EventPayload]
) -> list[ev.EventPayload]:
    """Any action the auto-assigned agent takes acknowledges their assignment."""
    agent_id = getattr(a, "agent_id", None)
    if isinstance(a, cmd.Acknowledge) or not state.awaiting_ack or agent_id != state.assignee:
        return []
    assert agent_id is not None
    return [ev.AssignmentAcknowledged(agent_id=agent_id)]


def _open(command: Open) -> ev.TicketOpened:
    t, policy = command.ticket, command.policy
    if t.path is not None and not command.record_path:
        raise InvalidTicket("path: this ticket's workflow predates paths")
    path = t.path or policy.path_for(t.category)
    tiers = policy.path_tiers(path)
    if tiers is None:
        raise InvalidTicket(
            f"path: unknown path {path!r}; policy {policy.name!r} has paths "
            + ", ".join(policy.path_names())
        )
    return ev.TicketOpened(
        subject=t.subject,
        customer_id=t.customer_id,
        priority=t.priority,
        category=t.category,
        description=t.description,
        tags=t.tags,
        tier=tiers[0],
        policy=policy,
        path=path if command.record_path else None,
        tiers=tiers if command.record_path else None,
    )


def _assigned(state: TicketState, command: Assigned) -> list[ev.EventPayload]:
    """Record a choice, unless the ticket moved on meanwhile (assigned by hand, escalated,
    resolved): a choice for another visit or attempt is stale and records nothing."""
    r = command.request
    if (
        not state.wants_choice
        or state.assignee is not None
        or state.status in ("resolved", "closed")
        or (r.ticket_id, r.team, r.visit, r.attempt)
        != (state.ticket_id, state.tier, state.visit, state.choice_attempt)
    ):
        return []
    agent = command.choice.agent_id
    if agent is None:
        reason = command.choice.reason or f"no agent of team {state.tier} is available"
        return [ev.AssignmentUnavailable(tier=state.tier, reason=reason)]
    return [ev.TicketAssigned(agent_id=agent, assignee=agent, trigger="auto")]


def _apply_all(state: TicketState, events: list[ev.EventPayload], at: datetime) -> TicketState:
    for data in events:
        state = apply(state, data, at)
    return state


def _refuse(state: TicketState, action: cmd.Action) -> ActionRejected:
    verb = ACTION_VERBS[action_name(action)]
    return ActionRejected(f"ticket {state.ticket_id} is {state.status}; cannot {verb}")


def _decide_action(state: TicketState, a: cmd.Action) -> list[ev.EventPayload]:
    if state.is_terminal:
        raise _refuse(state, a)
    resolved = state.status == "resolved"
    rid = a.request_id
    match a:
        case cmd.Assign():
            if resolved:
                raise _refuse(state, a)
            assignee = a.assignee or a.agent_id
            return [
                ev.TicketAssigned(
                    agent_id=a.agent_id,
                    assignee=assignee,
                    previous_assignee=state.assignee,
                    request_id=rid,
                )
            ]
        case cmd.Respond():
            if resolved:
                raise _refuse(state, a)
            first = state.first_responded_at is None
            return [
                ev.AgentResponded(
                    agent_id=a.agent_id, message=a.message, first_response=first, request_id=rid
                )
            ]
        case cmd.RequestEscalation():
            if resolved:
                raise _refuse(state, a)
            return [_agent_escalation(state, a)]
        case cmd.AwaitCustomer():
            if resolved or state.status == "pending":
                raise _refuse(state, a)
            return [ev.CustomerAwaited(agent_id=a.agent_id, message=a.message, request_id=rid)]
        case cmd.CustomerReplied():
            return [ev.CustomerReplied(message=a.message, reopened=resolved, request_id=rid)]
        case cmd.ChangePriority():
            if resolved:
                raise _refuse(state, a)
            if a.priority == state.priority:
                raise ActionRejected(f"ticket {state.ticket_id} already has priority {a.priority}")
            return [
                ev.PriorityChanged(
                    agent_id=a.agent_id,
                    from_priority=state.priority,
                    to_priority=a.priority,
                    reason=a.reason,
                    request_id=rid,
                )
            ]
        case cmd.Resolve():
            if resolved:
                raise _refuse(state, a)
            return [ev.TicketResolved(agent_id=a.agent_id, resolution=a.resolution, request_id=rid)]
        case cmd.Reopen():
            if not resolved:
                raise _refuse(state, a)
            return [ev.TicketReopened(reason=a.reason, agent_id=a.agent_id, request_id=rid)]
        case cmd.Close():
            return [ev.TicketClosed(agent_id=a.agent_id, trigger="agent", request_id=rid)]
        case cmd.Transfer():
            if resolved:
                raise _refuse(state, a)
            return [_transfer(state, a)]
        case cmd.Acknowledge():
            if resolved:
                raise _refuse(state, a)
            return [_acknowledge(state, a)]
        case cmd.Tag():
            return [_tag(state, a)]
    raise ActionRejected(f"unknown action {type(a).__name__}")


def _transfer(state: TicketState, a: cmd.Transfer) -> ev.TicketTransferred:
    tiers = state.policy.path_tiers(a.path)
    if tiers is None:
        raise ActionRejected(
            f"path: unknown path {a.path!r}; policy {state.policy.name!r} has paths "
            + ", ".join(state.policy.path_names())
        )
    if a.to_tier is None:
        # The same position on the new path, clamped to its top.
        target = tiers[min(state.tiers.index(state.tier), len(tiers) - 1)]
    elif a.to_tier not in tiers:
        raise ActionRejected(
            f"to_tier: {a.to_tier!r} is not on path {a.path!r} (tiers: {', '.join(tiers)})"
        )
    else:
        target = a.to_tier
    if a.path == state.path_name and target == state.tier:
        raise ActionRejected(
            f"ticket {state.ticket_id} is already at tier {state.tier} of path {a.path};"
            " nothing to transfer"
        )
    return ev.TicketTransferred(
        from_path=state.path_name,
        to_path=a.path,
        from_tier=state.tier,
        to_tier=target,
        reason=a.reason,
        agent_id=a.agent_id,
        request_id=a.request_id,
    )


def _tag(state: TicketState, a: cmd.Tag) -> ev.TagsChanged:
    added, removed, tags = changed(state.tags, a.add, a.remove)
    if not added and not removed:
        have = ", ".join(state.tags) or "none"
        raise ActionRejected(
            f"ticket {state.ticket_id} tags would not change (tags: {have}); nothing to tag"
        )
    if len(tags) > MAX_TAGS:
        raise ActionRejected(
            f"add: ticket {state.ticket_id} would have {len(tags)} tags; at most {MAX_TAGS}"
        )
    return ev.TagsChanged(
        added=added, removed=removed, tags=tags, agent_id=a.agent_id, request_id=a.request_id
    )


def _acknowledge(state: TicketState, a: cmd.Acknowledge) -> ev.AssignmentAcknowledged:
    t = state.ticket_id
    if state.assignee is None:
        raise ActionRejected(f"ticket {t} has no assignee; nothing to acknowledge")
    if a.agent_id != state.assignee:
        raise ActionRejected(
            f"ticket {t} is assigned to {state.assignee}; only they can acknowledge it"
        )
    if not state.assigned_auto:
        raise ActionRejected(
            f"ticket {t} was assigned to {state.assignee} by an agent; nothing to acknowledge"
        )
    if state.acknowledged_at is not None:
        raise ActionRejected(f"{state.assignee} already acknowledged ticket {t}")
    return ev.AssignmentAcknowledged(agent_id=a.agent_id, request_id=a.request_id)


def _agent_escalation(state: TicketState, a: cmd.RequestEscalation) -> ev.TicketEscalated:
    tiers = state.tiers
    if state.at_top_tier:
        raise ActionRejected(
            f"ticket {state.ticket_id} is already at the top tier {state.tier}; cannot escalate"
        )
    if a.to_tier is None:
        target = state.next_tier()
    elif a.to_tier not in tiers:
        raise ActionRejected(
            f"to_tier: unknown tier {a.to_tier!r}; {_ladder(state)} has tiers " + ", ".join(tiers)
        )
    elif tiers.index(a.to_tier) <= tiers.index(state.tier):
        raise ActionRejected(
            f"to_tier: {a.to_tier} is not above the current tier {state.tier}"
            f" of ticket {state.ticket_id}"
        )
    else:
        target = a.to_tier
    assert target is not None  # not at the top tier, so there is a next one
    return ev.TicketEscalated(
        from_tier=state.tier,
        to_tier=target,
        trigger="agent_request",
        reason=a.reason,
        agent_id=a.agent_id,
        request_id=a.request_id,
    )


def _ladder(state: TicketState) -> str:
    """How a refusal names the tiers' owner: v1 wording for v1 tickets."""
    if state.path is None:
        return f"policy {state.policy.name!r}"
    return f"path {state.path!r} of policy {state.policy.name!r}"


def _tick(state: TicketState, now: datetime) -> list[ev.EventPayload]:
    """Everything due at `now`, in rule order; each event sees the state the previous one left."""
    out: list[ev.EventPayload] = []
    s = state

    def emit(data: ev.EventPayload) -> None:
        nonlocal s
        out.append(data)
        s = apply(s, data, now)

    def passed(due: datetime | None) -> bool:
        return due is not None and due <= now

    if s.is_terminal:
        return out
    if passed(auto_close_due(s)):
        emit(ev.TicketClosed(trigger="auto"))
        return out

    # Rule 5: a warning only when the breach itself is not already due.
    metrics: tuple[ev.Metric, ...] = ("first_response", "resolution", "next_reply")
    for metric in metrics:
        due = warning_due(s, metric)
        sla_due = SLA_DUE[metric](s)
        if passed(due) and not passed(sla_due):
            assert sla_due is not None
            emit(ev.SlaWarning(metric=metric, tier=s.tier, due_at=sla_due))

    def escalate_for(metric: ev.Metric, trigger: ev.Trigger, reason: str) -> bool:
        """A breach escalates one tier when there is one and `escalate_on` names the metric."""
        nxt = s.next_tier()
        if nxt is None or not s.policy.escalates_on(metric):
            return False
        emit(ev.TicketEscalated(from_tier=s.tier, to_tier=nxt, trigger=trigger, reason=reason))
        return True

    # Rule 2: first-response breach escalates one tier (unless the policy's escalate_on
    # leaves it out), which also restarts the tier clock.
    fr_due = first_response_due(s)
    escalated = False
    if passed(fr_due):
        assert fr_due is not None
        emit(ev.SlaBreached(metric="first_response", tier=s.tier, due_at=fr_due))
        budget = format_duration(s.targets.first_response)
        escalated = escalate_for(
            "first_response", "first_response_breach", f"no first response within {budget}"
        )

    # Next reply: its own clock beside first response; escalates only if escalate_on says.
    nr_due = next_reply_due(s)
    if passed(nr_due):
        assert nr_due is not None
        emit(ev.SlaBreached(metric="next_reply", tier=s.tier, due_at=nr_due))
        if not escalated:
            target = s.targets.next_reply
            assert target is not None
            escalated = escalate_for(
                "next_reply",
                "next_reply_breach",
                f"no reply to the customer within {format_duration(target)}",
            )

    # Rule 3: tier budget ran out.
    if not escalated and passed(tier_due(s)):
        nxt = s.next_tier()
        assert nxt is not None  # tier_due is None at the top tier
        budget = format_duration(s.targets.tier_budget)
        emit(
            ev.TicketEscalated(
                from_tier=s.tier,
                to_tier=nxt,
                trigger="tier_timeout",
                reason=f"tier {s.tier} budget of {budget} ran out",
            )
        )

    # Acknowledgement: a timeout reassigns (the workflow asks for a new choice) until the
    # team's max_reassign is used up; the timeout after that escalates one tier.
    if not escalated and passed(ack_due(s)):
        assert s.assignee is not None
        assignee, within = s.assignee, format_duration(s.team.ack_within)
        emit(ev.AssignmentTimedOut(assignee=assignee, tier=s.tier))
        nxt = s.next_tier()
        if not s.wants_choice and nxt is not None:
            emit(
                ev.TicketEscalated(
                    from_tier=s.tier,
                    to_tier=nxt,
                    trigger="ack_timeout",
                    reason=f"{assignee} did not acknowledge within {within}",
                )
            )

    # Rule 4: resolution breach.
    res_due = resolution_due(s)
    if passed(res_due):
        assert res_due is not None
        emit(ev.SlaBreached(metric="resolution", tier=s.tier, due_at=res_due))

    # Elapsed rules, each exactly at its due time and once per since moment.
    for rule, due, since in elapsed_rules_due(s):
        if due <= now and rule_engine.elapsed_still_due(s, rule, since):
            for data in rule_engine.fire(s, rule, now, since):
                emit(data)
    return out


def reject(action: str, reason: str, raw: object) -> ev.ActionRejected:
    """The event a signal records when its action is refused or its payload does not decode.
    What was received is kept, less NUL characters, which the event store cannot hold."""
    raw = scrub(raw)
    agent_id = raw.get("agent_id") if isinstance(raw, dict) else None
    request_id = raw.get("request_id") if isinstance(raw, dict) else None
    return ev.ActionRejected(
        action=scrub(action),
        reason=scrub(reason),
        agent_id=agent_id if isinstance(agent_id, str) else None,
        request_id=request_id if isinstance(request_id, str) else None,
        payload=raw,
    )


def scrub(value: Any) -> Any:
    """`value` with every U+0000 replaced by U+FFFD, in strings, keys and nested values."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value
