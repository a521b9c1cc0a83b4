"""The decider, rule by rule (docs/contract.md#actions, #escalation-rules, #queries).

Pure: no Temporal, no clock. A `Story` opens a ticket, sends actions and ticks at chosen instants;
every decided payload is stamped into a `DomainEvent` envelope (seq, uuid, occurred_at=now),
serialised to JSON as the event store would hold it, and folded with `evolve`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.commands import ACTIONS, OpenTicket, parse_action
from domain.decider import Open, Tick, decide, reject
from domain.errors import ActionRejected
from domain.notifications import notifications_for
from domain.policy import DEFAULT_POLICY, Policy
from domain.state import (
    TicketState,
    evolve,
    first_response_due,
    next_deadline,
    reminded,
    renotify_due,
    resolution_due,
    tier_due,
)
from domain.view import view

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
SECOND = timedelta(seconds=1)


def at(**delta: float) -> datetime:
    """An instant relative to the ticket's open time T0."""
    return T0 + timedelta(**delta)


class Story:
    """A ticket's life, told one command at a time."""

    def __init__(
        self,
        priority: str = "normal",
        policy: Policy = DEFAULT_POLICY,
        ticket_id: str = "T-1",
        opened_at: datetime = T0,
    ) -> None:
        self.ticket_id = ticket_id
        self.state: TicketState | None = None
        self.events: list[ev.DomainEvent] = []
        ticket = OpenTicket(
            ticket_id=ticket_id,
            subject="Refund not received",
            customer_id="acme",
            priority=priority,
            category="billing",
        )
        self.record(decide(None, Open(ticket=ticket, policy=policy), opened_at), opened_at)

    # --- plumbing ------------------------------------------------------------------------------

    def record(self, payloads: list[ev.EventPayload], now: datetime) -> list[ev.EventPayload]:
        """Stamp payloads into envelopes (as the event store holds them) and evolve the state."""
        for data in payloads:
            seq = len(self.events) + 1
            event = ev.DomainEvent(
                ticket_id=self.ticket_id,
                seq=seq,
                event_id=uuid5(NAMESPACE_URL, f"ticket/{self.ticket_id}/{seq}"),
                event_type=data.event_type,
                payload=data.model_dump(mode="json"),
                occurred_at=now,
            )
            self.state = evolve(self.state, event)
            self.events.append(event)
        return payloads

    @property
    def s(self) -> TicketState:
        assert self.state is not None
        return self.state

    # --- what happens --------------------------------------------------------------------------

    def act(self, name: str, now: datetime, **payload: Any) -> list[ev.EventPayload]:
        """An action decided and recorded (the Update path)."""
        return self.record(decide(self.state, parse_action(name, payload), now), now)

    def refuse(self, name: str, now: datetime, **payload: Any) -> str:
        """An action that must be rejected; the state must not move. Returns the message."""
        before = self.state
        with pytest.raises(ActionRejected) as info:
            decide(self.state, parse_action(name, payload), now)
        assert self.state is before
        return str(info.value)

    def signal(self, name: str, now: datetime, **payload: Any) -> list[ev.EventPayload]:
        """The Signal path: a refused action is recorded as an ActionRejected event."""
        try:
            payloads = decide(self.state, parse_action(name, payload), now)
        except ActionRejected as exc:
            payloads = [reject(name, str(exc), payload)]
        return self.record(payloads, now)

    def tick(self, now: datetime) -> list[ev.EventPayload]:
        return self.record(decide(self.state, Tick(), now), now)

    def run_until(self, until: datetime) -> list[ev.EventPayload]:
        """Tick at every deadline up to and including `until`, as the workflow's timer would."""
        out: list[ev.EventPayload] = []
        for _ in range(1000):
            due = next_deadline(self.state)
            if due is None or due > until:
                return out
            decided = self.tick(due)
            assert decided, f"tick at next_deadline {due} decided nothing (would spin)"
            out += decided
        raise AssertionError("more than 1000 deadlines")

    def of_type(self, kind: type[ev.EventPayload]) -> list[ev.EventPayload]:
        return [e.data() for e in self.events if e.event_type == kind.event_type]


def types(payloads: list[ev.EventPayload]) -> list[str]:
    return [p.event_type for p in payloads]


def three_tiers(**overrides: Any) -> Policy:
    data = DEFAULT_POLICY.model_dump()
    data.update(overrides)
    return Policy.model_validate(data)


# ================================================================================================
# Rule 1: a ticket opens at the first tier of its policy
# ================================================================================================


def test_opens_new_at_first_tier_of_default_ladder() -> None:
    story = Story()
    opened = story.events[0]
    assert opened.seq == 1 and opened.event_type == "TicketOpened"
    assert story.s.tier == "L1"
    assert story.s.status == "new"
    assert story.s.version == 1
    assert story.s.opened_at == T0 and story.s.tier_entered_at == T0
    # TicketOpened carries the resolved policy, and it survives the JSON of the event store.
    assert opened.data().policy == DEFAULT_POLICY  # type: ignore[attr-defined]
    assert opened.payload["policy"]["targets"]["urgent"]["first_response"] == "15m"


def test_opens_at_first_tier_of_a_custom_ladder() -> None:
    story = Story(policy=three_tiers(name="custom", tiers=("front", "middle", "back")))
    assert story.s.tier == "front"
    assert story.s.policy.name == "custom"
    assert view(story.s).policy == "custom"


def test_open_twice_is_rejected() -> None:
    story = Story()
    ticket = OpenTicket(ticket_id="T-1", subject="again", customer_id="acme")
    with pytest.raises(ActionRejected, match="T-1 is already open"):
        decide(story.state, Open(ticket=ticket, policy=DEFAULT_POLICY), at(minutes=1))


def test_action_or_tick_before_open_is_rejected() -> None:
    with pytest.raises(ActionRejected):
        decide(None, parse_action("assign", {"agent_id": "a"}), T0)
    with pytest.raises(ActionRejected):
        decide(None, Tick(), T0)


# ================================================================================================
# Rule 2: first response
# ================================================================================================


def test_first_response_breach_escalates_exactly_at_due_not_a_second_before() -> None:
    story = Story("urgent")
    due = at(minutes=15)
    assert first_response_due(story.s) == due
    assert view(story.s).sla.first_response_due == due

    assert story.run_until(due - SECOND) == [
        ev.SlaWarning(metric="first_response", tier="L1", due_at=due)
    ]
    assert next_deadline(story.s) == due
    assert story.tick(due - SECOND) == []

    decided = story.tick(due)
    assert decided == [
        ev.SlaBreached(metric="first_response", tier="L1", due_at=due),
        ev.TicketEscalated(
            from_tier="L1",
            to_tier="L2",
            trigger="first_response_breach",
            reason="no first response within 15m",
        ),
    ]
    assert story.s.tier == "L2"
    assert story.s.tier_entered_at == due
    assert first_response_due(story.s) is None  # a breached clock stops
    sla = view(story.s).sla
    assert sla.first_response_due is None
    assert [(b.metric, b.tier, b.due_at, b.at) for b in sla.breaches] == [
        ("first_response", "L1", due, due)
    ]


@pytest.mark.parametrize("priority,target", [("high", 1), ("normal", 4), ("low", 8)])
def test_first_response_due_follows_the_priority(priority: str, target: int) -> None:
    story = Story(priority)
    assert first_response_due(story.s) == at(hours=target)
    story.run_until(at(hours=target) - SECOND)
    assert story.of_type(ev.SlaBreached) == []
    assert types(story.tick(at(hours=target))) == ["SlaBreached", "TicketEscalated"]


def test_first_response_breaches_once() -> None:
    story = Story("urgent")
    story.run_until(at(hours=3))
    assert [b.metric for b in story.of_type(ev.SlaBreached)] == ["first_response"]  # type: ignore[attr-defined]


def test_respond_in_time_meets_first_response() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=14, seconds=59), agent_id="ann", message="on it")
    assert story.s.first_responded_at == at(minutes=14, seconds=59)
    assert first_response_due(story.s) is None
    assert view(story.s).sla.first_response_due is None
    story.run_until(at(minutes=59))
    assert story.of_type(ev.SlaBreached) == []
    assert story.of_type(ev.TicketEscalated) == []


def test_only_the_first_respond_is_the_first_response() -> None:
    story = Story()
    first = story.act("respond", at(minutes=5), agent_id="ann")
    second = story.act("respond", at(minutes=9), agent_id="bob")
    assert first[0].first_response is True  # type: ignore[attr-defined]
    assert second[0].first_response is False  # type: ignore[attr-defined]
    assert story.s.first_responded_at == at(minutes=5)


def test_first_response_breach_at_top_tier_breaches_without_escalating() -> None:
    story = Story("urgent")
    story.act("request_escalation", at(minutes=1), agent_id="ann", reason="vip", to_tier="L3")
    decided = story.tick(at(minutes=15))
    assert types(decided) == ["SlaBreached"]
    assert story.s.tier == "L3"


@pytest.mark.parametrize("late", [timedelta(0), timedelta(minutes=1)])
def test_respond_decided_at_or_after_first_response_due_still_breaches(late: timedelta) -> None:
    """Rule 2: breach "if no respond before first_response". `decide` must not let an action
    that arrives after a passed due time (no Tick in between: a signal in the same workflow
    activation as the timer, or a worker that was down) erase the breach."""
    story = Story("urgent")
    story.run_until(at(minutes=14))  # the warning only
    decided = story.act("respond", at(minutes=15) + late, agent_id="ann")
    assert "SlaBreached" in types(decided), types(decided)
    assert types(decided).index("SlaBreached") < types(decided).index("AgentResponded")


def test_resolve_decided_after_resolution_due_still_breaches() -> None:
    """Rule 4: breach "if not resolved within resolution": a late resolve must not hide it."""
    story = Story("urgent")
    story.act("respond", at(minutes=1), agent_id="ann")
    story.act("request_escalation", at(minutes=2), agent_id="ann", reason="x", to_tier="L3")
    story.run_until(at(hours=3, minutes=59))
    decided = story.act("resolve", at(hours=4, minutes=5), agent_id="ann", resolution="done")
    assert "SlaBreached" in types(decided), types(decided)


# ================================================================================================
# Rule 3: tier budget
# ================================================================================================


def test_tier_budget_chain_l1_l2_l3_and_no_further() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=1), agent_id="ann")  # no first-response escalation

    assert tier_due(story.s) == at(hours=1)
    assert story.run_until(at(hours=1) - SECOND) == []
    assert story.tick(at(hours=1) - SECOND) == []
    assert story.tick(at(hours=1)) == [
        ev.TicketEscalated(
            from_tier="L1",
            to_tier="L2",
            trigger="tier_timeout",
            reason="tier L1 budget of 1h ran out",
        )
    ]
    assert story.s.tier_entered_at == at(hours=1)
    assert tier_due(story.s) == at(hours=2)

    assert story.tick(at(hours=2) - SECOND) == []
    assert story.tick(at(hours=2)) == [
        ev.TicketEscalated(
            from_tier="L2",
            to_tier="L3",
            trigger="tier_timeout",
            reason="tier L2 budget of 1h ran out",
        )
    ]
    assert story.s.tier == "L3"
    assert tier_due(story.s) is None  # nothing above the top tier
    assert view(story.s).sla.tier_due is None

    story.run_until(at(days=30))
    assert [(e.from_tier, e.to_tier) for e in story.s.escalations] == [("L1", "L2"), ("L2", "L3")]
    assert story.s.tier == "L3"


def test_first_response_breach_restarts_the_tier_clock() -> None:
    story = Story("normal")  # first response 4h, tier budget 8h
    assert tier_due(story.s) == at(hours=8)
    story.run_until(at(hours=4))
    assert story.s.tier == "L2"
    assert tier_due(story.s) == at(hours=12)
    story.run_until(at(hours=11, minutes=59))
    assert story.s.tier == "L2"
    story.run_until(at(hours=12))
    assert story.s.tier == "L3"
    assert story.s.escalations[-1].trigger == "tier_timeout"


def test_tier_budget_stops_when_resolved() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=1), agent_id="ann")
    story.act("resolve", at(minutes=30), agent_id="ann", resolution="refunded")
    assert tier_due(story.s) is None
    story.run_until(at(hours=10))
    assert story.of_type(ev.TicketEscalated) == []


def test_single_tier_policy_never_escalates() -> None:
    story = Story("urgent", policy=three_tiers(name="flat", tiers=("only",)))
    assert tier_due(story.s) is None
    story.run_until(at(days=1))
    assert story.of_type(ev.TicketEscalated) == []
    assert [b.metric for b in story.s.breaches] == ["first_response", "resolution"]
    assert "top tier only" in story.refuse(
        "request_escalation", at(days=1), agent_id="ann", reason="help"
    )


# ================================================================================================
# Rule 4: resolution
# ================================================================================================


def test_resolution_breach_exactly_at_due() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=1), agent_id="ann")
    due = at(hours=4)
    assert resolution_due(story.s) == due
    story.run_until(due - SECOND)
    assert story.of_type(ev.SlaBreached) == []
    assert next_deadline(story.s) == due
    assert story.tick(due) == [ev.SlaBreached(metric="resolution", tier="L3", due_at=due)]
    assert resolution_due(story.s) is None
    assert view(story.s).sla.resolution_due is None
    assert [(b.metric, b.tier, b.at) for b in view(story.s).sla.breaches] == [
        ("resolution", "L3", due)
    ]
    # once only; nothing further for tick to decide (reminders are renotify_due's business)
    assert next_deadline(story.s) is None
    assert story.tick(at(days=3)) == []


def test_resolution_breach_notifies() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=1), agent_id="ann")
    story.run_until(at(hours=4))
    breach = next(e for e in story.events if e.event_type == "SlaBreached")
    notices = notifications_for(story.s, breach)
    assert [(n.kind, n.tier) for n in notices] == [("breach", "L3")]


def test_resolution_breach_at_top_tier_renotifies_every_renotify_every() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=1), agent_id="ann")
    story.run_until(at(hours=4))
    assert story.s.at_top_tier
    assert renotify_due(story.s) == at(hours=5)
    assert renotify_due(reminded(story.s, at(hours=5))) == at(hours=6)
    # paused while pending, counted in active time after the reply
    story.act("await_customer", at(hours=4, minutes=30), agent_id="ann")
    assert renotify_due(story.s) is None
    story.act("customer_replied", at(hours=5, minutes=30))
    assert renotify_due(story.s) == at(hours=6)
    # until resolved
    story.act("resolve", at(hours=5, minutes=45), agent_id="ann", resolution="done")
    assert renotify_due(story.s) is None


def test_no_renotify_below_the_top_tier_and_from_tier_entry_once_at_top() -> None:
    data = DEFAULT_POLICY.model_dump()
    data["name"] = "long-tiers"
    data["targets"]["urgent"]["tier_budget"] = timedelta(hours=10)
    story = Story("urgent", policy=Policy.model_validate(data))
    story.act("respond", at(minutes=1), agent_id="ann")
    story.run_until(at(hours=4))
    assert [(b.metric, b.tier) for b in story.s.breaches] == [("resolution", "L1")]
    assert renotify_due(story.s) is None  # breached, but not at the top tier
    story.act(
        "request_escalation", at(hours=4, minutes=30), agent_id="ann", reason="r", to_tier="L3"
    )
    assert renotify_due(story.s) == at(hours=5, minutes=30)
    fresh = Story("urgent")
    fresh.act("respond", at(minutes=1), agent_id="ann")
    fresh.act("request_escalation", at(minutes=2), agent_id="ann", reason="r", to_tier="L3")
    assert renotify_due(fresh.s) is None  # at the top tier, but not breached


# ================================================================================================
# Rule 5: warnings
# ================================================================================================


def test_warnings_at_warn_at_once_for_each_metric() -> None:
    story = Story("urgent")  # first response 15m, resolution 4h, warn_at 0.8
    story.act("assign", at(minutes=1), agent_id="ann")
    assert next_deadline(story.s) == at(minutes=12)
    assert story.tick(at(minutes=12) - SECOND) == []
    assert story.tick(at(minutes=12)) == [
        ev.SlaWarning(metric="first_response", tier="L1", due_at=at(minutes=15))
    ]
    assert story.tick(at(minutes=13)) == []  # once
    story.act("respond", at(minutes=14), agent_id="ann")

    warn = at(hours=3, minutes=12)
    story.run_until(warn - SECOND)
    assert len(story.of_type(ev.SlaWarning)) == 1
    assert next_deadline(story.s) == warn
    assert story.tick(warn) == [ev.SlaWarning(metric="resolution", tier="L3", due_at=at(hours=4))]
    story.run_until(at(days=1))
    assert [w.metric for w in story.of_type(ev.SlaWarning)] == ["first_response", "resolution"]  # type: ignore[attr-defined]


def test_warning_follows_the_policy_warn_at() -> None:
    story = Story("normal", policy=three_tiers(name="half", warn_at=0.5))
    assert next_deadline(story.s) == at(hours=2)
    assert story.tick(at(hours=2)) == [
        ev.SlaWarning(metric="first_response", tier="L1", due_at=at(hours=4))
    ]


def test_warning_emits_an_at_risk_notice() -> None:
    story = Story("urgent")
    story.run_until(at(minutes=12))
    warning = next(e for e in story.events if e.event_type == "SlaWarning")
    assert [(n.kind, n.tier) for n in notifications_for(story.s, warning)] == [("at_risk", "L1")]


def test_no_warning_after_the_clock_is_met() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=5), agent_id="ann")
    story.run_until(at(hours=1) - SECOND)
    assert story.of_type(ev.SlaWarning) == []


# ================================================================================================
# Rule 6: agent request
# ================================================================================================


def test_request_escalation_goes_to_the_next_tier_at_once() -> None:
    story = Story()
    decided = story.act(
        "request_escalation", at(minutes=3), agent_id="ann", reason="needs billing", request_id="r1"
    )
    assert decided == [
        ev.TicketEscalated(
            from_tier="L1",
            to_tier="L2",
            trigger="agent_request",
            reason="needs billing",
            agent_id="ann",
            request_id="r1",
        )
    ]
    esc = view(story.s).escalations
    assert [(e.from_tier, e.to_tier, e.trigger, e.reason, e.agent_id, e.at) for e in esc] == [
        ("L1", "L2", "agent_request", "needs billing", "ann", at(minutes=3))
    ]


def test_request_escalation_to_a_named_higher_tier() -> None:
    story = Story()
    decided = story.act("request_escalation", at(minutes=3), agent_id="a", reason="r", to_tier="L3")
    assert (decided[0].from_tier, decided[0].to_tier) == ("L1", "L3")  # type: ignore[attr-defined]
    assert story.s.tier == "L3"


@pytest.mark.parametrize("current,to_tier", [("L1", "L1"), ("L2", "L2"), ("L2", "L1")])
def test_request_escalation_to_a_tier_not_above_is_rejected(current: str, to_tier: str) -> None:
    story = Story()
    if current == "L2":
        story.act("request_escalation", at(minutes=1), agent_id="a", reason="r")
    message = story.refuse(
        "request_escalation", at(minutes=2), agent_id="a", reason="r", to_tier=to_tier
    )
    assert "to_tier" in message and "not above" in message and current in message


def test_request_escalation_to_an_unknown_tier_is_rejected() -> None:
    story = Story()
    message = story.refuse(
        "request_escalation", at(minutes=2), agent_id="a", reason="r", to_tier="L9"
    )
    assert "unknown tier 'L9'" in message
    assert "L1, L2, L3" in message


def test_request_escalation_at_top_tier_names_ticket_and_tier() -> None:
    story = Story()
    story.act("request_escalation", at(minutes=1), agent_id="a", reason="r", to_tier="L3")
    message = story.refuse("request_escalation", at(minutes=2), agent_id="a", reason="again")
    assert "T-1" in message and "L3" in message and "cannot escalate" in message


def test_request_escalation_on_resolved_ticket_has_the_contract_message() -> None:
    story = Story()
    story.act("resolve", at(minutes=1), agent_id="a", resolution="done")
    message = story.refuse("request_escalation", at(minutes=2), agent_id="a", reason="r")
    assert message == "ticket T-1 is resolved; cannot escalate"


# ================================================================================================
# Rule 7: every escalation clears the assignee and notifies the next tier
# ================================================================================================


@pytest.mark.parametrize("trigger", ["agent_request", "tier_timeout", "first_response_breach"])
def test_escalation_clears_assignee_restarts_tier_clock_and_notifies(trigger: str) -> None:
    story = Story("urgent")
    story.act("assign", at(minutes=1), agent_id="lead", assignee="ann")
    assert story.s.assignee == "ann"
    if trigger == "agent_request":
        when = at(minutes=5)
        story.act("request_escalation", when, agent_id="ann", reason="stuck")
    elif trigger == "tier_timeout":
        story.act("respond", at(minutes=2), agent_id="ann")
        when = at(hours=1)
        story.run_until(when)
    else:
        when = at(minutes=15)
        story.run_until(when)
    escalated = [e for e in story.events if e.event_type == "TicketEscalated"]
    assert len(escalated) == 1 and escalated[0].payload["trigger"] == trigger
    assert story.s.tier == "L2"
    assert story.s.assignee is None
    assert view(story.s).assignee is None
    assert story.s.tier_entered_at == when
    assert tier_due(story.s) == when + timedelta(hours=1)
    notices = notifications_for(story.s, escalated[0])
    assert [(n.kind, n.tier) for n in notices] == [("escalated", "L2")]


def test_agent_escalation_restarts_tier_clock_so_budget_counts_from_entry() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=1), agent_id="a")
    story.act("request_escalation", at(minutes=50), agent_id="a", reason="r")
    assert tier_due(story.s) == at(minutes=110)
    assert story.tick(at(minutes=60)) == []  # the old L1 budget is gone
    assert story.tick(at(minutes=110) - SECOND) == []
    assert types(story.tick(at(minutes=110))) == ["TicketEscalated"]


# ================================================================================================
# Rule 8: active time excludes pending and resolved
# ================================================================================================


def test_await_customer_freezes_every_clock_until_the_customer_replies() -> None:
    story = Story("normal")  # 4h / 24h / 8h
    story.act("assign", at(minutes=10), agent_id="ann")
    before = (first_response_due(story.s), resolution_due(story.s), tier_due(story.s))
    assert before == (at(hours=4), at(hours=24), at(hours=8))

    story.act("await_customer", at(hours=1), agent_id="ann", message="which order?")
    assert story.s.status == "pending"
    sla = view(story.s).sla
    assert sla.paused is True
    assert (sla.first_response_due, sla.resolution_due, sla.tier_due) == (None, None, None)
    assert next_deadline(story.s) is None
    assert story.tick(at(days=2)) == []  # nothing runs while pending

    story.act("customer_replied", at(hours=3), message="#123")
    assert story.s.status == "open"
    assert view(story.s).sla.paused is False
    shifted = tuple(d + timedelta(hours=2) for d in before if d is not None)
    assert (first_response_due(story.s), resolution_due(story.s), tier_due(story.s)) == shifted
    sla = view(story.s).sla
    assert (sla.first_response_due, sla.resolution_due, sla.tier_due) == shifted


def test_pauses_accumulate() -> None:
    story = Story("urgent")  # first response 15m
    story.act("await_customer", at(minutes=5), agent_id="a")
    story.act("customer_replied", at(minutes=20))
    story.act("await_customer", at(minutes=25), agent_id="a")
    story.act("customer_replied", at(minutes=55))
    # active: 0-5, 20-25, then 55 onwards: 10 minutes spent, 5 left
    assert first_response_due(story.s) == at(hours=1)
    assert story.tick(at(hours=1) - SECOND) == [
        ev.SlaWarning(metric="first_response", tier="L1", due_at=at(hours=1))
    ]
    assert types(story.tick(at(hours=1))) == ["SlaBreached", "TicketEscalated"]


def test_a_due_during_pending_does_not_fire() -> None:
    story = Story("urgent")
    story.act("await_customer", at(minutes=1), agent_id="a")
    story.run_until(at(hours=10))
    assert story.of_type(ev.SlaBreached) == [] and story.of_type(ev.SlaWarning) == []
    story.act("customer_replied", at(hours=10))
    assert first_response_due(story.s) == at(hours=10, minutes=14)


def test_respond_on_pending_resumes_the_clocks() -> None:
    story = Story("normal")
    story.act("await_customer", at(hours=1), agent_id="ann")
    story.act("respond", at(hours=2), agent_id="ann", message="any news?")
    assert story.s.status == "open"
    assert not story.s.paused
    assert view(story.s).sla.paused is False
    assert resolution_due(story.s) == at(hours=25)
    assert tier_due(story.s) == at(hours=9)


def test_resolved_pauses_and_reopen_resumes_keeping_active_time_spent() -> None:
    story = Story("normal")
    story.act("respond", at(minutes=30), agent_id="ann")
    story.act("resolve", at(hours=2), agent_id="ann", resolution="refunded")
    sla = view(story.s).sla
    assert (sla.first_response_due, sla.resolution_due, sla.tier_due) == (None, None, None)
    story.act("reopen", at(hours=6), agent_id="ann", reason="not received")
    assert story.s.status == "open"
    assert story.s.resolved_at is None
    # 2h spent before the resolve still count; the 4h resolved do not
    assert resolution_due(story.s) == at(hours=28)
    assert tier_due(story.s) == at(hours=12)


def test_resolve_while_pending_then_reopen_pauses_the_whole_stretch() -> None:
    story = Story("normal")
    story.act("await_customer", at(hours=1), agent_id="ann")
    story.act("resolve", at(hours=2), agent_id="ann", resolution="guess it is fine")
    story.act("reopen", at(hours=5), agent_id="ann")
    assert resolution_due(story.s) == at(hours=28)
    assert first_response_due(story.s) == at(hours=8)


def test_escalation_while_pending_starts_the_tier_clock_on_resume() -> None:
    story = Story("urgent")
    story.act("respond", at(minutes=1), agent_id="a")
    story.act("await_customer", at(minutes=10), agent_id="a")
    story.act("request_escalation", at(minutes=20), agent_id="a", reason="r")
    assert tier_due(story.s) is None
    story.act("customer_replied", at(minutes=50))
    assert tier_due(story.s) == at(minutes=110)


# ================================================================================================
# change_priority
# ================================================================================================


def test_change_priority_to_urgent_after_30_minutes_breaches_at_once() -> None:
    story = Story("low")
    story.act("assign", at(minutes=5), agent_id="ann")
    now = at(minutes=30)
    decided = story.act("change_priority", now, agent_id="lead", priority="urgent", reason="vip")
    assert decided == [
        ev.PriorityChanged(
            agent_id="lead", from_priority="low", to_priority="urgent", reason="vip"
        ),
        ev.SlaBreached(metric="first_response", tier="L1", due_at=at(minutes=15)),
        ev.TicketEscalated(
            from_tier="L1",
            to_tier="L2",
            trigger="first_response_breach",
            reason="no first response within 15m",
        ),
    ]
    assert story.s.priority == "urgent"
    assert story.s.tier == "L2"
    assert story.s.breaches[0].at == now
    # the other clocks are recomputed from the open time with the new targets
    assert resolution_due(story.s) == at(hours=4)
    assert tier_due(story.s) == now + timedelta(hours=1)


def test_change_priority_recomputes_dues_from_the_open_time() -> None:
    story = Story("normal")
    story.act("change_priority", at(minutes=10), agent_id="lead", priority="urgent")
    assert first_response_due(story.s) == at(minutes=15)
    assert resolution_due(story.s) == at(hours=4)
    assert tier_due(story.s) == at(hours=1)
    assert next_deadline(story.s) == at(minutes=12)


def test_change_priority_counts_active_time_only() -> None:
    story = Story("low")
    story.act("await_customer", at(minutes=10), agent_id="a")
    story.act("customer_replied", at(hours=5))
    story.act("change_priority", at(hours=5), agent_id="lead", priority="urgent")
    # 10 active minutes spent: 5 left, not breached
    assert first_response_due(story.s) == at(hours=5, minutes=5)


def test_change_priority_while_pending_breaches_at_once_if_active_time_already_ran_out() -> None:
    story = Story("low")
    story.act("await_customer", at(minutes=20), agent_id="a")  # 20 active minutes spent
    decided = story.act("change_priority", at(hours=1), agent_id="l", priority="urgent")
    assert types(decided) == ["PriorityChanged", "SlaBreached", "TicketEscalated"]
    assert decided[1].due_at == at(minutes=15)  # type: ignore[attr-defined]
    assert story.s.status == "pending"


def test_change_priority_while_pending_runs_the_rest_after_resume() -> None:
    story = Story("low")
    story.act("await_customer", at(minutes=5), agent_id="a")  # 5 active minutes spent
    decided = story.act("change_priority", at(hours=1), agent_id="l", priority="urgent")
    assert types(decided) == ["PriorityChanged"]
    assert next_deadline(story.s) is None
    story.act("customer_replied", at(hours=2))
    assert first_response_due(story.s) == at(hours=2, minutes=10)
    assert next_deadline(story.s) == at(hours=2, minutes=7)  # the warning at 12 active minutes


def test_change_priority_to_lower_extends_the_dues() -> None:
    story = Story("urgent")
    story.act("change_priority", at(minutes=10), agent_id="lead", priority="low")
    assert first_response_due(story.s) == at(hours=8)
    assert story.run_until(at(hours=1)) == []


def test_change_priority_to_the_same_priority_or_on_resolved_is_rejected() -> None:
    story = Story("high")
    assert "already has priority high" in story.refuse(
        "change_priority", at(minutes=1), agent_id="a", priority="high"
    )
    story.act("resolve", at(minutes=2), agent_id="a", resolution="x")
    assert story.refuse("change_priority", at(minutes=3), agent_id="a", priority="low") == (
        "ticket T-1 is resolved; cannot change priority"
    )


# ================================================================================================
# Rule 9: auto close
# ================================================================================================


def test_resolve_then_auto_close_after_auto_close_after() -> None:
    story = Story()
    story.act("respond", at(minutes=10), agent_id="ann")
    decided = story.act("resolve", at(hours=1), agent_id="ann", resolution="refunded")
    assert types(decided) == ["TicketResolved"]
    assert story.s.status == "resolved" and story.s.resolved_at == at(hours=1)
    close_at = at(hours=73)
    assert next_deadline(story.s) == close_at
    assert story.tick(close_at - SECOND) == []
    assert story.tick(close_at) == [ev.TicketClosed(trigger="auto")]
    assert story.s.status == "closed"
    assert story.s.closed_at == close_at
    assert next_deadline(story.s) is None
    assert view(story.s).closed_at == close_at


def test_auto_close_follows_the_policy() -> None:
    story = Story(policy=three_tiers(name="quick", auto_close_after=timedelta(minutes=5)))
    story.act("resolve", at(hours=1), agent_id="ann", resolution="x")
    assert next_deadline(story.s) == at(hours=1, minutes=5)


def test_reopen_before_auto_close_cancels_it() -> None:
    story = Story()
    story.act("respond", at(minutes=10), agent_id="ann")
    story.act("resolve", at(hours=1), agent_id="ann", resolution="refunded")
    assert next_deadline(story.s) == at(hours=73)
    story.act("reopen", at(hours=2), agent_id="ann", reason="customer says no")
    assert story.s.status == "open"
    assert next_deadline(story.s) != at(hours=73)
    story.run_until(at(hours=80))
    assert story.of_type(ev.TicketClosed) == []


def test_customer_reply_reopens_a_resolved_ticket() -> None:
    story = Story()
    story.act("resolve", at(hours=1), agent_id="ann", resolution="refunded")
    decided = story.act("customer_replied", at(hours=2), message="still missing")
    assert decided == [ev.CustomerReplied(message="still missing", reopened=True)]
    assert story.s.status == "open"
    assert story.s.resolved_at is None
    assert next_deadline(story.s) != at(hours=73)
    assert resolution_due(story.s) == at(hours=25)


def test_customer_reply_on_an_open_ticket_changes_nothing_but_is_recorded() -> None:
    story = Story()
    story.act("assign", at(minutes=1), agent_id="ann")
    decided = story.act("customer_replied", at(minutes=2), message="hello?")
    assert decided == [ev.CustomerReplied(message="hello?", reopened=False)]
    assert story.s.status == "open" and story.s.version == 3


# ================================================================================================
# close, and every action on a closed ticket
# ================================================================================================


def _bring_to(story: Story, status: str) -> None:
    if status in ("open", "resolved"):
        story.act("assign", at(minutes=1), agent_id="ann")
    if status == "pending":
        story.act("await_customer", at(minutes=1), agent_id="ann")
    if status == "resolved":
        story.act("resolve", at(minutes=2), agent_id="ann", resolution="x")
    assert story.s.status == status


@pytest.mark.parametrize("status", ["new", "open", "pending", "resolved"])
def test_close_from_any_non_closed_status(status: str) -> None:
    story = Story()
    _bring_to(story, status)
    decided = story.act("close", at(minutes=5), agent_id="lead")
    assert decided == [ev.TicketClosed(agent_id="lead", trigger="agent")]
    assert story.s.status == "closed" and story.s.closed_at == at(minutes=5)
    assert next_deadline(story.s) is None
    sla = view(story.s).sla
    assert (sla.first_response_due, sla.resolution_due, sla.tier_due) == (None, None, None)
    assert story.tick(at(days=10)) == []


VALID_PAYLOADS: dict[str, dict[str, Any]] = {
    "assign": {"agent_id": "ann"},
    "respond": {"agent_id": "ann", "message": "hi"},
    "request_escalation": {"agent_id": "ann", "reason": "stuck"},
    "await_customer": {"agent_id": "ann"},
    "customer_replied": {"message": "hello"},
    "change_priority": {"agent_id": "ann", "priority": "urgent"},
    "resolve": {"agent_id": "ann", "resolution": "done"},
    "reopen": {"agent_id": "ann"},
    "close": {"agent_id": "ann"},
    "transfer": {"agent_id": "ann", "path": "default", "to_tier": "L2", "reason": "x"},
    "acknowledge": {"agent_id": "ann"},
    "tag": {"agent_id": "ann", "add": ["vip"]},
}
VERBS = {
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


def test_every_action_is_covered() -> None:
    assert set(VALID_PAYLOADS) == set(ACTIONS)


@pytest.mark.parametrize("name", sorted(VALID_PAYLOADS))
def test_every_action_on_a_closed_ticket_is_rejected(name: str) -> None:
    story = Story()
    story.act("close", at(minutes=1), agent_id="lead")
    message = story.refuse(name, at(minutes=2), **VALID_PAYLOADS[name])
    assert message == f"ticket T-1 is closed; cannot {VERBS[name]}"


@pytest.mark.parametrize(
    "name", ["assign", "respond", "request_escalation", "change_priority", "resolve"]
)
def test_agent_actions_on_a_resolved_ticket_are_rejected(name: str) -> None:
    story = Story()
    story.act("resolve", at(minutes=1), agent_id="ann", resolution="x")
    message = story.refuse(name, at(minutes=2), **VALID_PAYLOADS[name])
    assert message == f"ticket T-1 is resolved; cannot {VERBS[name]}"


def test_reopen_a_ticket_that_is_not_resolved_is_rejected() -> None:
    story = Story()
    assert story.refuse("reopen", at(minutes=1)) == "ticket T-1 is new; cannot reopen"


def test_await_customer_twice_is_rejected() -> None:
    story = Story()
    story.act("await_customer", at(minutes=1), agent_id="a")
    assert story.refuse("await_customer", at(minutes=2), agent_id="a") == (
        "ticket T-1 is pending; cannot wait for the customer"
    )


# ================================================================================================
# request_id idempotency
# ================================================================================================


def test_a_request_id_already_applied_is_a_no_op() -> None:
    story = Story()
    first = story.act("assign", at(minutes=1), agent_id="ann", request_id="req-1")
    assert types(first) == ["TicketAssigned"]
    version = story.s.version
    again = decide(
        story.state,
        parse_action("assign", {"agent_id": "bob", "request_id": "req-1"}),
        at(minutes=2),
    )
    assert again == []
    # any action: the id is per ticket, not per action
    other = parse_action("close", {"agent_id": "bob", "request_id": "req-1"})
    assert decide(story.state, other, at(minutes=3)) == []
    assert story.s.version == version and story.s.assignee == "ann"


def test_a_request_id_is_a_no_op_even_after_close() -> None:
    story = Story()
    story.act("close", at(minutes=1), agent_id="a", request_id="c-1")
    assert story.act("close", at(minutes=2), agent_id="a", request_id="c-1") == []


def test_a_rejected_action_does_not_burn_its_request_id() -> None:
    story = Story()
    story.refuse(
        "request_escalation",
        at(minutes=1),
        agent_id="a",
        reason="r",
        to_tier="L9",
        request_id="e-1",
    )
    decided = story.act(
        "request_escalation", at(minutes=2), agent_id="a", reason="r", request_id="e-1"
    )
    assert types(decided) == ["TicketEscalated"]


def test_a_signal_recorded_as_action_rejected_does_not_burn_its_request_id() -> None:
    story = Story()
    rejected = story.signal("reopen", at(minutes=1), agent_id="a", request_id="x-1")
    assert rejected == [
        ev.ActionRejected(
            action="reopen",
            reason="ticket T-1 is new; cannot reopen",
            agent_id="a",
            request_id="x-1",
            payload={"agent_id": "a", "request_id": "x-1"},
        )
    ]
    assert story.s.version == 2 and story.s.status == "new"
    assert types(story.act("assign", at(minutes=2), agent_id="a", request_id="x-1")) == [
        "TicketAssigned"
    ]


def test_time_driven_events_carry_no_request_id() -> None:
    story = Story("urgent")
    story.act("assign", at(minutes=1), agent_id="a", request_id="a-1")
    story.run_until(at(minutes=15))
    assert story.s.request_ids == frozenset({"a-1"})


# ================================================================================================
# version, status, view
# ================================================================================================


def test_version_counts_every_event_applied() -> None:
    story = Story("urgent")
    story.act("assign", at(minutes=1), agent_id="a")
    story.signal("reopen", at(minutes=2), agent_id="a")  # ActionRejected counts too
    story.run_until(at(hours=5))
    story.act("resolve", at(hours=5), agent_id="a", resolution="x")
    story.run_until(at(days=5))
    assert story.s.status == "closed"
    assert story.s.version == len(story.events) == story.events[-1].seq
    assert [e.seq for e in story.events] == list(range(1, len(story.events) + 1))
    assert view(story.s).version == story.s.version
    assert len({e.event_id for e in story.events}) == len(story.events)


def test_view_has_exactly_the_contract_fields() -> None:
    story = Story("urgent")
    story.act("assign", at(minutes=1), agent_id="a")
    story.run_until(at(hours=5))
    data = view(story.s).model_dump(mode="json")
    assert set(data) == {
        "ticket_id",
        "subject",
        "customer_id",
        "priority",
        "category",
        "policy",
        "status",
        "tier",
        "assignee",
        "opened_at",
        "first_responded_at",
        "resolved_at",
        "closed_at",
        "version",
        "sla",
        "escalations",
        "path",
        "tiers",
        "assignment",
        "tags",
        "rules",
        "timezone",  # docs/contract.md#calendar-date-overrides-and-the-dst-gap-rule
    }
    assert set(data["assignment"]) == {
        "mode",
        "assignee",
        "assigned_at",
        "ack_due",
        "acknowledged_at",
        "timeouts",
    }
    assert set(data["sla"]) == {
        "first_response_due",
        "resolution_due",
        "tier_due",
        "paused",
        "breaches",
        "next_reply_due",
    }
    assert set(data["sla"]["breaches"][0]) == {"metric", "tier", "due_at", "at"}
    assert set(data["escalations"][0]) == {
        "from_tier",
        "to_tier",
        "trigger",
        "reason",
        "agent_id",
        "at",
    }
    assert data["opened_at"] == "2026-03-02T09:00:00Z" or data["opened_at"].endswith("+00:00")
    assert (data["ticket_id"], data["customer_id"], data["category"]) == ("T-1", "acme", "billing")


def test_view_dues_while_running_paused_and_met() -> None:
    story = Story("high")  # 1h / 8h / 2h
    sla = view(story.s).sla
    assert (sla.first_response_due, sla.resolution_due, sla.tier_due, sla.paused) == (
        at(hours=1),
        at(hours=8),
        at(hours=2),
        False,
    )
    story.act("respond", at(minutes=30), agent_id="a")
    sla = view(story.s).sla
    assert sla.first_response_due is None  # met
    assert sla.resolution_due == at(hours=8)
    story.act("await_customer", at(hours=1), agent_id="a")
    sla = view(story.s).sla
    assert sla.paused is True
    assert (sla.first_response_due, sla.resolution_due, sla.tier_due) == (None, None, None)


@pytest.mark.parametrize("action", ["assign", "respond"])
def test_new_becomes_open_on_assign_or_respond(action: str) -> None:
    story = Story()
    assert story.s.status == "new"
    story.act(action, at(minutes=1), **VALID_PAYLOADS[action])
    assert story.s.status == "open"
    assert view(story.s).status == "open"


def test_assign_sets_assignee_defaulting_to_agent() -> None:
    story = Story()
    first = story.act("assign", at(minutes=1), agent_id="ann")
    assert first == [ev.TicketAssigned(agent_id="ann", assignee="ann")]
    second = story.act("assign", at(minutes=2), agent_id="lead", assignee="bob")
    assert second == [ev.TicketAssigned(agent_id="lead", assignee="bob", previous_assignee="ann")]
    assert story.s.assignee == "bob"


def test_assign_on_pending_keeps_it_pending() -> None:
    story = Story()
    story.act("await_customer", at(minutes=1), agent_id="a")
    story.act("assign", at(minutes=2), agent_id="b")
    assert story.s.status == "pending" and story.s.paused


def test_a_tick_when_nothing_is_due_returns_nothing() -> None:
    story = Story()
    assert story.tick(at(minutes=1)) == []
    assert story.tick(T0) == []
    assert story.s.version == 1


# ================================================================================================
# Property: the deadline loop never spins and never fires early
# ================================================================================================

ACTION_STEPS = st.sampled_from(
    [
        ("assign", {"agent_id": "ann"}),
        ("respond", {"agent_id": "ann"}),
        ("request_escalation", {"agent_id": "ann", "reason": "r"}),
        ("request_escalation", {"agent_id": "ann", "reason": "r", "to_tier": "L3"}),
        ("await_customer", {"agent_id": "ann"}),
        ("customer_replied", {}),
        ("change_priority", {"agent_id": "ann", "priority": "urgent"}),
        ("change_priority", {"agent_id": "ann", "priority": "low"}),
        ("resolve", {"agent_id": "ann", "resolution": "x"}),
        ("reopen", {}),
        ("close", {"agent_id": "ann"}),
    ]
)


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    priority=st.sampled_from(["urgent", "high", "normal", "low"]),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=6 * 3600), ACTION_STEPS), max_size=12
    ),
)
def test_deadlines_fire_exactly_and_state_stays_consistent(
    priority: str, steps: list[tuple[int, tuple[str, dict[str, Any]]]]
) -> None:
    story = Story(priority)
    now = T0
    for gap, (name, payload) in steps:
        target = now + timedelta(seconds=gap)
        for _ in range(100):
            due = next_deadline(story.s)
            if due is None or due > target:
                break
            if due > now:
                assert decide(story.state, Tick(), due - SECOND) == []
            decided = story.tick(max(due, now))
            assert decided, "a tick at next_deadline must decide something"
            now = max(due, now)
        else:
            raise AssertionError("the deadline loop never settles")
        now = target
        story.signal(name, now, **payload)
        assert next_deadline(story.s) is None or story.s.status != "closed"
    story.run_until(now + timedelta(days=30))

    s = story.s
    assert s.version == len(story.events)
    assert s.status != "resolved"  # auto-closed long ago
    metrics = [b.metric for b in s.breaches]
    assert len(metrics) == len(set(metrics))
    ladder = s.policy.tiers
    for esc in s.escalations:
        assert ladder.index(esc.to_tier) > ladder.index(esc.from_tier)
    for metric in ("first_response", "resolution"):
        warnings = [e for e in story.of_type(ev.SlaWarning) if isinstance(e, ev.SlaWarning)]
        assert sum(1 for e in warnings if e.metric == metric) <= 1
    # the state folded from the stored events equals the state built step by step
    replayed: TicketState | None = None
    for event in story.events:
        replayed = evolve(replayed, ev.DomainEvent.model_validate_json(event.model_dump_json()))
    assert replayed == s
