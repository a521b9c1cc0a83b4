"""The ticket's state, folded from its events (`evolve`), and its SLA clocks derived from it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from domain import events as ev
from domain.calendar import Calendar, Pause, add_active, calendar_for
from domain.policy import DEFAULT_PATH, Policy, Priority, Targets, TeamSettings, shared_policy
from domain.rules import Rule, Since, matches
from domain.vocabulary import Status as Status  # re-exported: callers import it from here


@dataclass(frozen=True)
class BreachRecord:
    metric: ev.Metric
    tier: str
    due_at: datetime
    at: datetime


@dataclass(frozen=True)
class EscalationRecord:
    from_tier: str
    to_tier: str
    trigger: ev.Trigger
    reason: str | None
    agent_id: str | None
    at: datetime


@dataclass(frozen=True)
class FiredRule:
    rule: str
    on: str
    at: datetime
    since: datetime | None  # an elapsed rule's since moment


@dataclass(frozen=True)
class TicketState:
    ticket_id: str
    subject: str
    customer_id: str
    priority: Priority
    category: str | None
    description: str | None
    policy: Policy
    status: Status
    tier: str
    opened_at: datetime
    tier_entered_at: datetime
    version: int
    assignee: str | None = None
    first_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    pauses: tuple[Pause, ...] = ()
    warned: frozenset[str] = frozenset()
    breaches: tuple[BreachRecord, ...] = ()
    escalations: tuple[EscalationRecord, ...] = ()
    request_ids: frozenset[str] = field(default=frozenset(), repr=False)
    # request_id -> its first use (commands.request_use), since patch `inbox`: kept by the
    # workflow with the state it carries; events do not hold it, so a fold of the store (a
    # reset) knows the ids but not their uses, and treats a repeat as before, as a no-op.
    request_uses: dict[str, str] = field(default_factory=dict, repr=False)
    # Reminders of a breached resolution at the top tier (rule 4): notices, not events, so a
    # fold of the store starts them at none; the workflow keeps them with the state it carries.
    reminders_sent: int = 0
    last_reminder_at: datetime | None = None
    # v2 paths and assignment. A v1 ticket has no recorded path: `path_name`/`tiers` derive it.
    path: str | None = None
    path_tiers: tuple[str, ...] | None = None
    visit: int = 1  # team visits so far: the current one's number (a choice's key)
    assigned_at: datetime | None = None
    assigned_auto: bool = False  # the current assignment was chosen by the team's assignment
    acknowledged_at: datetime | None = None
    timed_out: tuple[str, ...] = ()  # agents who did not acknowledge at this visit
    wants_choice: bool = False  # the team's assignment has to choose (again)
    choice_since: datetime | None = None
    unavailable_at: datetime | None = None  # the last choice at this visit found nobody
    choice_attempt: int = 0  # choices made at this visit
    # v2 tags, next reply and rules (docs/rules.md).
    tags: tuple[str, ...] = ()
    reply_due_since: datetime | None = None  # the oldest customer reply no respond answered
    next_reply_warned: bool = False  # for the running next-reply clock
    next_replies_met: int = 0  # next-reply clocks met by a respond (for reports)
    # An elapsed rule's since moments: the last customer reply until a respond answers it,
    # the last respond until the customer replies after it.
    customer_replied_at: datetime | None = None
    agent_responded_at: datetime | None = None
    fired: tuple[FiredRule, ...] = ()

    @property
    def is_terminal(self) -> bool:
        """Closed: nothing more happens to the ticket (resolved can still reopen)."""
        return self.status == "closed"

    @property
    def calendar(self) -> Calendar:
        return calendar_for(self.policy)

    @property
    def team(self) -> TeamSettings:
        return self.policy.team(self.tier)

    @property
    def targets(self) -> Targets:
        targets = self.policy.targets_for(self.priority)
        budget = self.team.tier_budget
        return targets if budget is None else targets.model_copy(update={"tier_budget": budget})

    @property
    def path_name(self) -> str:
        return self.path or DEFAULT_PATH

    @property
    def tiers(self) -> tuple[str, ...]:
        """The ticket's path: what rules 1-9 move up."""
        return self.path_tiers or self.policy.tiers

    @property
    def awaiting_ack(self) -> bool:
        return self.assignee is not None and self.assigned_auto and self.acknowledged_at is None

    @property
    def breached(self) -> frozenset[str]:
        return frozenset(b.metric for b in self.breaches)

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1].end is None

    @property
    def at_top_tier(self) -> bool:
        return self.tier == self.tiers[-1]

    def next_tier(self) -> str | None:
        index = self.tiers.index(self.tier)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None


# --- evolve -----------------------------------------------------------------------------------


def _pause(state: TicketState, at: datetime) -> tuple[Pause, ...]:
    return state.pauses if state.paused else (*state.pauses, Pause(at))


def _resume(state: TicketState, at: datetime) -> tuple[Pause, ...]:
    if not state.paused:
        return state.pauses
    return (*state.pauses[:-1], Pause(state.pauses[-1].start, at))


def apply(state: TicketState | None, data: ev.EventPayload, at: datetime) -> TicketState:
    """Apply one typed event that happened at `at`. The single place state changes."""
    if isinstance(data, ev.TicketOpened):
        if state is not None:
            raise ValueError("TicketOpened applied to a ticket that is already open")
        raise ValueError("TicketOpened needs the ticket id: use evolve() with the envelope")
    if state is None:
        raise ValueError(f"{data.event_type} applied before TicketOpened")
    s = replace(state, version=state.version + 1)
    request_id = getattr(data, "request_id", None)
    if request_id and not isinstance(data, ev.ActionRejected):
        s = replace(s, request_ids=s.request_ids | {request_id})

    match data:
        case ev.TicketAssigned():
            status = "open" if s.status == "new" else s.status
            auto = data.trigger == "auto"
            return replace(
                s,
                assignee=data.assignee,
                status=status,
                assigned_at=at,
                assigned_auto=auto,
                acknowledged_at=None,
                wants_choice=False,
                choice_since=None,
                unavailable_at=None,
                choice_attempt=s.choice_attempt + (1 if auto else 0),
            )
        case ev.AssignmentAcknowledged():
            return replace(s, acknowledged_at=at)
        case ev.AssignmentTimedOut():
            timed_out = (*s.timed_out, data.assignee)
            again = len(timed_out) <= s.team.max_reassign
            return replace(
                s,
                assignee=None,
                assigned_at=None,
                assigned_auto=False,
                timed_out=timed_out,
                wants_choice=again,
                choice_since=at if again else None,
            )
        case ev.AssignmentUnavailable():
            return replace(s, unavailable_at=at, choice_attempt=s.choice_attempt + 1)
        case ev.TicketTransferred():
            tiers = s.policy.path_tiers(data.to_path)
            if tiers is None:
                raise ValueError(f"TicketTransferred to unknown path {data.to_path!r}")
            s = replace(s, path=data.to_path, path_tiers=tiers)
            return _enter(s, data.to_tier, at)
        case ev.AgentResponded():
            met = s.reply_due_since is not None and s.targets.next_reply is not None
            return replace(
                s,
                status="open",
                pauses=_resume(s, at),
                first_responded_at=s.first_responded_at or at,
                reply_due_since=None,
                next_replies_met=s.next_replies_met + (1 if met else 0),
                agent_responded_at=at,
                customer_replied_at=None,
            )
        case ev.CustomerAwaited():
            return replace(s, status="pending", pauses=_pause(s, at))
        case ev.CustomerReplied():
            s = replace(s, customer_replied_at=at, agent_responded_at=None)
            if s.reply_due_since is None:
                s = replace(s, reply_due_since=at, next_reply_warned=False)
            if s.status in ("pending", "resolved"):
                return replace(s, status="open", pauses=_resume(s, at), resolved_at=None)
            return s
        case ev.SlaWarning():
            if data.metric == "next_reply":
                return replace(s, next_reply_warned=True)
            return replace(s, warned=s.warned | {data.metric})
        case ev.SlaBreached():
            breach = BreachRecord(data.metric, data.tier, data.due_at, at)
            if data.metric == "next_reply":  # that clock is over; the next reply starts one
                s = replace(s, reply_due_since=None)
            return replace(s, breaches=(*s.breaches, breach))
        case ev.TagsChanged():
            return replace(s, tags=tuple(data.tags))
        case ev.RuleFired():
            return replace(s, fired=(*s.fired, FiredRule(data.rule, data.on, at, data.since)))
        case ev.TicketEscalated():
            escalation = EscalationRecord(
                data.from_tier, data.to_tier, data.trigger, data.reason, data.agent_id, at
            )
            return _enter(replace(s, escalations=(*s.escalations, escalation)), data.to_tier, at)
        case ev.PriorityChanged():
            return replace(s, priority=data.to_priority)
        case ev.TicketResolved():
            return replace(s, status="resolved", resolved_at=at, pauses=_pause(s, at))
        case ev.TicketReopened():
            return replace(s, status="open", resolved_at=None, pauses=_resume(s, at))
        case ev.TicketClosed():
            return replace(s, status="closed", closed_at=at, pauses=_pause(s, at))
        case ev.ActionRejected():
            return s
    raise ValueError(f"no evolve rule for {data.event_type}")


class EventMismatch(ValueError):
    """An event that does not belong where it is applied: another ticket's, or out of order.
    A bug of the caller (the store and the workflow keep seqs gapless), never a refusal."""


def _enter(s: TicketState, tier: str, at: datetime) -> TicketState:
    """A new team visit: tier clock restarts, the assignment is cleared (rules 3 and 7)."""
    auto = s.policy.team(tier).automatic
    return replace(
        s,
        tier=tier,
        tier_entered_at=at,
        assignee=None,
        visit=s.visit + 1,
        assigned_at=None,
        assigned_auto=False,
        acknowledged_at=None,
        timed_out=(),
        wants_choice=auto,
        choice_since=at if auto else None,
        unavailable_at=None,
        choice_attempt=0,
    )


def evolve(state: TicketState | None, event: ev.DomainEvent) -> TicketState:
    """The Decider's evolve: state after one stored event, whose envelope must follow it."""
    if state is not None:
        if event.ticket_id != state.ticket_id:
            raise EventMismatch(
                f"event {event.event_id} (seq {event.seq}) is of ticket {event.ticket_id!r},"
                f" not of ticket {state.ticket_id!r}"
            )
        if event.seq != state.version + 1:
            raise EventMismatch(
                f"ticket {state.ticket_id}: event {event.event_type} has seq {event.seq}, but"
                f" {state.version} events are applied (the next is seq {state.version + 1})"
            )
    data = event.data()
    if isinstance(data, ev.TicketOpened):
        if state is not None:
            raise ValueError(f"ticket {event.ticket_id} is already open (seq {event.seq})")
        if event.seq != 1:
            raise EventMismatch(
                f"ticket {event.ticket_id}: TicketOpened has seq {event.seq}; it is seq 1"
            )
        policy = shared_policy(data.policy)  # one object per policy, not one per ticket
        return TicketState(
            ticket_id=event.ticket_id,
            subject=data.subject,
            customer_id=data.customer_id,
            priority=data.priority,
            category=data.category,
            description=data.description,
            policy=policy,
            status="new",
            tier=data.tier,
            opened_at=event.occurred_at,
            tier_entered_at=event.occurred_at,
            version=1,
            path=data.path,
            path_tiers=data.tiers,
            wants_choice=policy.team(data.tier).automatic,
            choice_since=event.occurred_at,
            tags=tuple(data.tags),
        )
    return apply(state, data, event.occurred_at)


def fold(events: Iterable[ev.DomainEvent], state: TicketState | None = None) -> TicketState | None:
    for event in events:
        state = evolve(state, event)
    return state


# --- clocks -----------------------------------------------------------------------------------


def _due(state: TicketState, since: datetime, budget: timedelta) -> datetime | None:
    return add_active(since, budget, state.calendar, state.pauses)


def first_response_due(state: TicketState) -> datetime | None:
    if (
        state.first_responded_at is not None
        or "first_response" in state.breached
        or state.status in ("resolved", "closed")
    ):
        return None
    return _due(state, state.opened_at, state.targets.first_response)


def resolution_due(state: TicketState) -> datetime | None:
    if "resolution" in state.breached or state.status in ("resolved", "closed"):
        return None
    return _due(state, state.opened_at, state.targets.resolution)


def tier_due(state: TicketState) -> datetime | None:
    if state.at_top_tier or state.status in ("resolved", "closed"):
        return None
    return _due(state, state.tier_entered_at, state.targets.tier_budget)


def next_reply_due(state: TicketState) -> datetime | None:
    """The respond due after the oldest unanswered customer reply: only with a next_reply
    target; independent of the first-response clock (both may run at once)."""
    target = state.targets.next_reply
    if target is None or state.reply_due_since is None or state.status in ("resolved", "closed"):
        return None
    return _due(state, state.reply_due_since, target)


SLA_DUE = {
    "first_response": first_response_due,
    "resolution": resolution_due,
    "next_reply": next_reply_due,
}


def warning_due(state: TicketState, metric: ev.Metric) -> datetime | None:
    if SLA_DUE[metric](state) is None:
        return None
    if metric == "next_reply":
        if state.next_reply_warned or state.reply_due_since is None:
            return None
        assert state.targets.next_reply is not None
        return _due(state, state.reply_due_since, state.targets.next_reply * state.policy.warn_at)
    if metric in state.warned:
        return None
    target: timedelta = getattr(state.targets, metric)
    return _due(state, state.opened_at, target * state.policy.warn_at)


def since_moment(state: TicketState, since: Since) -> datetime | None:
    """The moment an elapsed rule's `after` counts from, if there is one now."""
    match since:
        case "opened":
            return state.opened_at
        case "customer_replied":
            return state.customer_replied_at
        case "agent_responded":
            return state.agent_responded_at
        case "tier_entered":
            return state.tier_entered_at


def elapsed_rule_due(state: TicketState, rule: Rule) -> tuple[datetime, datetime] | None:
    """(due, since moment) of an elapsed rule: `after` of active time on the policy's
    calendar from its since moment, unless it fired for that moment already. Its conditions
    are not part of it (see elapsed_rules_due)."""
    if rule.after is None or rule.since is None or state.status == "closed":
        return None
    since = since_moment(state, rule.since)
    if since is None or any(f.rule == rule.name and f.since == since for f in state.fired):
        return None
    due = _due(state, since, rule.after)
    return None if due is None else (due, since)


def elapsed_rules_due(state: TicketState) -> list[tuple[Rule, datetime, datetime]]:
    """The elapsed rules that will fire, with (due, since), earliest first: those whose
    conditions hold now (one that does not hold at its due time fires when it comes to)."""
    out = []
    for rule in state.policy.rules:
        if rule.on != "elapsed" or not matches(rule, state):
            continue
        clock = elapsed_rule_due(state, rule)
        if clock is not None:
            out.append((rule, *clock))
    return sorted(out, key=lambda r: r[1])


def auto_close_due(state: TicketState) -> datetime | None:
    if state.status != "resolved" or state.resolved_at is None:
        return None
    return state.resolved_at + state.policy.auto_close_after


def renotify_due(state: TicketState) -> datetime | None:
    """Next reminder for a resolution breach at the top tier (rule 4), in active time; none
    once `renotify_max` reminders were sent, so nothing spams forever."""
    if state.status in ("resolved", "closed") or not state.at_top_tier:
        return None
    if state.reminders_sent >= state.policy.renotify_max:
        return None
    last_notice_at = state.last_reminder_at
    breach_at = [b.at for b in state.breaches if b.metric == "resolution"]
    if not breach_at:
        return None
    since = max(breach_at[-1], state.tier_entered_at, last_notice_at or breach_at[-1])
    return _due(state, since, state.policy.renotify_every)


def request_used(state: TicketState, request_id: str, use: str) -> TicketState:
    """The state after an action with this request id was applied for the first time."""
    return replace(state, request_uses={**state.request_uses, request_id: use})


def reminded(state: TicketState, at: datetime) -> TicketState:
    """The state after the reminder due at `at` went out."""
    return replace(state, reminders_sent=state.reminders_sent + 1, last_reminder_at=at)


def ack_due(state: TicketState) -> datetime | None:
    """When the auto-assigned agent must have acknowledged (active time of the calendar)."""
    if not state.awaiting_ack or state.assigned_at is None:
        return None
    if state.status in ("resolved", "closed"):
        return None
    return _due(state, state.assigned_at, state.team.ack_within)


def choice_due(state: TicketState) -> datetime | None:
    """When the team's assignment must choose: at once on entering the team or after a
    timeout; `ack_within` after a choice that found nobody, while the ticket stays unassigned."""
    if not state.wants_choice or state.assignee is not None or state.choice_since is None:
        return None
    if state.status in ("resolved", "closed"):
        return None
    if state.unavailable_at is None:
        return state.choice_since
    return _due(state, state.unavailable_at, state.team.ack_within)


def deadlines(state: TicketState | None) -> list[tuple[str, datetime]]:
    """Every running deadline with its name, earliest first: what `tick` will decide and when."""
    if state is None or state.is_terminal:
        return []
    candidates = [
        ("first response warning", warning_due(state, "first_response")),
        ("resolution warning", warning_due(state, "resolution")),
        ("first response", first_response_due(state)),
        ("resolution", resolution_due(state)),
        ("tier budget", tier_due(state)),
        ("auto close", auto_close_due(state)),
        ("acknowledgement", ack_due(state)),
        ("assignment", choice_due(state)),
        ("next reply warning", warning_due(state, "next_reply")),
        ("next reply", next_reply_due(state)),
        *((f"rule {rule.name}", due) for rule, due, _ in elapsed_rules_due(state)),
    ]
    return sorted(((name, due) for name, due in candidates if due is not None), key=lambda c: c[1])


def next_deadline(state: TicketState | None) -> datetime | None:
    """The earliest instant at which `tick` will have something to decide."""
    pending = deadlines(state)
    return pending[0][1] if pending else None
