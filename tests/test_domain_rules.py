"""Tags, the next-reply clock and policy rules, decided by the pure decider (docs/rules.md).

Given a policy and a ticket, when an action or a timer happens, then exactly these events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from domain import events as ev
from domain.commands import OpenTicket, parse_action, parse_open_ticket
from domain.decider import Open, Tick, decide
from domain.errors import ActionRejected, InvalidTicket, PolicyError
from domain.policy import DEFAULT_POLICY, Policy, parse_policies
from domain.state import TicketState, deadlines, evolve, next_deadline
from domain.view import view
from tests.test_domain_decider import at, types

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


def policy(*rules: dict[str, Any], **overrides: Any) -> Policy:
    data = DEFAULT_POLICY.model_dump(mode="json")
    data["paths"] = {"billing": {"tiers": ["L1", "billing", "billing-manager"]}}
    data["rules"] = list(rules)
    data.update(overrides)
    return Policy.model_validate(data)


def with_next_reply(p: Policy, within: str = "30m", **overrides: Any) -> Policy:
    data = p.model_dump(mode="json")
    for targets in data["targets"].values():
        targets["next_reply"] = within
    data.update(overrides)
    return Policy.model_validate(data)


class Ticket:
    """A ticket's life under a policy, one command at a time (as tests/test_domain_decider)."""

    def __init__(self, p: Policy, opened_at: datetime = T0, **fields: Any) -> None:
        self.state: TicketState | None = None
        self.events: list[ev.DomainEvent] = []
        ticket = OpenTicket.model_validate(
            {"ticket_id": "T-1", "subject": "s", "customer_id": "acme", **fields}
        )
        self.opened = self.record(decide(None, Open(ticket=ticket, policy=p), opened_at), opened_at)

    def record(self, payloads: list[ev.EventPayload], now: datetime) -> list[ev.EventPayload]:
        for data in payloads:
            seq = len(self.events) + 1
            event = ev.DomainEvent(
                ticket_id="T-1",
                seq=seq,
                event_id=f"00000000-0000-0000-0000-{seq:012d}",
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

    def act(self, name: str, now: datetime, **payload: Any) -> list[ev.EventPayload]:
        return self.record(decide(self.state, parse_action(name, payload), now), now)

    def refuse(self, name: str, now: datetime, **payload: Any) -> str:
        with pytest.raises(ActionRejected) as info:
            decide(self.state, parse_action(name, payload), now)
        return str(info.value)

    def run_until(self, until: datetime) -> list[ev.EventPayload]:
        out: list[ev.EventPayload] = []
        for _ in range(1000):
            due = next_deadline(self.state)
            if due is None or due > until:
                return out
            decided = self.record(decide(self.state, Tick(), due), due)
            assert decided, f"tick at next_deadline {due} decided nothing (would spin)"
            out += decided
        raise AssertionError("more than 1000 deadlines")

    def fired(self) -> list[tuple[str, datetime]]:
        return [
            (e.payload["rule"], e.occurred_at) for e in self.events if e.event_type == "RuleFired"
        ]


# --- tags -----------------------------------------------------------------------------------


def test_tags_at_open_are_recorded_sorted_and_once() -> None:
    t = Ticket(DEFAULT_POLICY, tags=["vip", "eu", "vip"])
    opened = t.opened[0]
    assert isinstance(opened, ev.TicketOpened) and opened.tags == ("eu", "vip")
    assert view(t.s).tags == ["eu", "vip"]


def test_a_ticket_without_tags_records_and_sends_exactly_v1s_bytes() -> None:
    t = Ticket(DEFAULT_POLICY)
    assert "tags" not in t.events[0].payload
    ticket = OpenTicket(ticket_id="T-1", subject="s", customer_id="c")
    assert "tags" not in ticket.model_dump(mode="json")


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (["Vip"], "tags.0: String should match pattern"),
        (["-x"], "tags.0: String should match pattern"),
        (["a" * 41], "tags.0: String should match pattern"),
        ([f"t{i}" for i in range(21)], "tags: Tuple should have at most 20 items"),
        ("vip", None),  # one tag may be given as text
    ],
)
def test_bad_tags_at_open_are_refused_naming_the_field(tags: Any, message: str | None) -> None:
    raw = {"ticket_id": "T-1", "subject": "s", "customer_id": "c", "tags": tags}
    if message is None:
        assert parse_open_ticket(raw).tags == ("vip",)
        return
    with pytest.raises(InvalidTicket, match=message):
        parse_open_ticket(raw)


def test_tag_adds_and_removes_and_records_what_changed() -> None:
    t = Ticket(DEFAULT_POLICY, tags=["eu"])
    [changed] = t.act("tag", at(minutes=1), agent_id="ann", add=["vip", "eu"], remove=["x"])
    assert changed == ev.TagsChanged(added=("vip",), removed=(), tags=("eu", "vip"), agent_id="ann")
    [changed] = t.act("tag", at(minutes=2), agent_id="ann", remove=["eu"])
    assert isinstance(changed, ev.TagsChanged)
    assert (changed.added, changed.removed, changed.tags) == ((), ("eu",), ("vip",))
    assert t.s.tags == ("vip",)


def test_tag_refused_when_nothing_changes_when_closed_and_past_the_limit() -> None:
    t = Ticket(DEFAULT_POLICY, tags=["eu"])
    assert "tags would not change" in t.refuse("tag", at(minutes=1), agent_id="a", add=["eu"])
    assert "tags would not change" in t.refuse("tag", at(minutes=1), agent_id="a", remove=["x"])
    full = Ticket(DEFAULT_POLICY, tags=[f"t{i}" for i in range(20)])
    assert "at most 20" in full.refuse("tag", at(minutes=1), agent_id="a", add=["one-more"])
    with pytest.raises(ActionRejected, match="give add, remove or both"):
        parse_action("tag", {"agent_id": "a"})
    with pytest.raises(ActionRejected, match="both added and removed"):
        parse_action("tag", {"agent_id": "a", "add": ["x"], "remove": ["x"]})
    t.act("resolve", at(minutes=2), agent_id="a", resolution="r")
    t.act("tag", at(minutes=3), agent_id="a", add=["resolved-ok"])  # resolved: still taggable
    t.act("close", at(minutes=4), agent_id="a")
    assert t.refuse("tag", at(minutes=5), agent_id="a", add=["late"]) == (
        "ticket T-1 is closed; cannot tag"
    )


# --- next reply -------------------------------------------------------------------------------

NR = with_next_reply(DEFAULT_POLICY)


def test_without_a_next_reply_target_a_customer_reply_starts_no_clock() -> None:
    t = Ticket(DEFAULT_POLICY)
    t.act("customer_replied", at(minutes=1))
    assert view(t.s).sla.next_reply_due is None
    assert all("next reply" not in name for name, _ in deadlines(t.s))


def test_next_reply_is_due_after_a_customer_reply_and_met_by_the_next_respond() -> None:
    t = Ticket(NR)
    t.act("respond", at(minutes=5), agent_id="ann")
    t.act("customer_replied", at(minutes=10))
    assert view(t.s).sla.next_reply_due == at(minutes=40)
    assert view(t.s).sla.nearest_due() == at(minutes=40)  # TicketSlaDue includes it
    t.act("respond", at(minutes=20), agent_id="ann")
    assert view(t.s).sla.next_reply_due is None and t.s.next_replies_met == 1


def test_next_reply_warns_at_warn_at_and_breaches_without_escalating_by_default() -> None:
    t = Ticket(NR)
    t.act("respond", at(minutes=1), agent_id="ann")
    t.act("customer_replied", at(minutes=10))
    out = t.run_until(at(minutes=41))
    assert out == [
        ev.SlaWarning(metric="next_reply", tier="L1", due_at=at(minutes=40)),
        ev.SlaBreached(metric="next_reply", tier="L1", due_at=at(minutes=40)),
    ]
    assert t.events[-2].occurred_at == at(minutes=34)  # 0.8 of 30m
    assert t.s.tier == "L1"


def test_next_reply_breach_escalates_when_escalate_on_names_it() -> None:
    t = Ticket(with_next_reply(DEFAULT_POLICY, escalate_on=["first_response", "next_reply"]))
    t.act("respond", at(minutes=1), agent_id="ann")
    t.act("customer_replied", at(minutes=10))
    out = t.run_until(at(minutes=40))
    escalation = out[-1]
    assert isinstance(escalation, ev.TicketEscalated)
    assert (escalation.trigger, escalation.to_tier) == ("next_reply_breach", "L2")
    assert escalation.reason == "no reply to the customer within 30m"


def test_next_reply_pauses_while_pending() -> None:
    t = Ticket(NR)
    t.act("respond", at(minutes=1), agent_id="ann")
    t.act("customer_replied", at(minutes=10))
    t.act("await_customer", at(minutes=20), agent_id="ann")
    assert view(t.s).sla.next_reply_due is None  # stopped while pending
    t.act("customer_replied", at(minutes=80))
    # 10 minutes ran before the pause, 20 remain; the clock kept its oldest unanswered reply
    assert view(t.s).sla.next_reply_due == at(minutes=100)


def test_zammad_3140_no_escalation_after_the_agent_replied() -> None:
    """zammad #3140: an escalation fired after an agent had replied. Here the reply meets the
    clock: nothing is due any more, however long the ticket then waits."""
    t = Ticket(with_next_reply(DEFAULT_POLICY, escalate_on=["first_response", "next_reply"]))
    t.act("respond", at(minutes=1), agent_id="ann")
    t.act("customer_replied", at(minutes=10))
    t.act("respond", at(minutes=39), agent_id="ann")  # a minute before it would breach
    out = t.run_until(at(hours=3))
    assert [e for e in out if isinstance(e, ev.SlaBreached | ev.TicketEscalated)] == []
    assert [e.event_type for e in t.events if e.payload.get("metric") == "next_reply"] == [
        "SlaWarning"  # at 0.8 of the 30 minutes, before the reply: only a warning
    ]


def test_zammad_5177_next_reply_never_replaces_first_response() -> None:
    """zammad #5177: the update time overrode the first-response time. Here a customer reply
    before any agent reply starts the next-reply clock beside first response: both run, each
    breaches on its own due time, and the first-response breach still escalates."""
    t = Ticket(with_next_reply(DEFAULT_POLICY, "2h"), priority="high")  # first response 1h
    t.act("customer_replied", at(minutes=10))
    sla = view(t.s).sla
    assert (sla.first_response_due, sla.next_reply_due) == (at(hours=1), at(hours=2, minutes=10))
    out = t.run_until(at(hours=2, minutes=10))
    breaches = [(e.metric, e.due_at) for e in out if isinstance(e, ev.SlaBreached)]
    assert breaches == [("first_response", at(hours=1)), ("next_reply", at(hours=2, minutes=10))]
    triggers = [e.trigger for e in out if isinstance(e, ev.TicketEscalated)]
    assert triggers == ["first_response_breach"]


def test_escalate_on_without_first_response_breaches_but_stays() -> None:
    t = Ticket(policy(escalate_on=["next_reply"]), priority="urgent")
    out = t.run_until(at(minutes=15))
    assert types(out) == ["SlaWarning", "SlaBreached"] and t.s.tier == "L1"


def test_a_policy_at_its_defaults_records_exactly_as_before() -> None:
    recorded = DEFAULT_POLICY.model_dump(mode="json")
    assert not {"rules", "escalate_on"} & set(recorded)
    assert all("next_reply" not in t for t in recorded["targets"].values())
    assert Policy.model_validate(recorded) == DEFAULT_POLICY


# --- rules: conditions ------------------------------------------------------------------------

TAG_IT = {"add_tags": ["hit"]}


def opened_rule(**conditions: Any) -> Policy:
    return policy({"name": "r", "on": "opened", "if": conditions, "then": TAG_IT})


@pytest.mark.parametrize(
    ("conditions", "ticket", "fires"),
    [
        ({"priority": ["urgent"]}, {"priority": "urgent"}, True),
        ({"priority": "urgent"}, {"priority": "high"}, False),
        ({"category": ["billing"]}, {"category": "billing"}, True),
        ({"category": ["billing"]}, {}, False),
        ({"customer": ["acme"]}, {}, True),
        ({"customer": ["other"]}, {}, False),
        ({"tags_any": ["vip", "gold"]}, {"tags": ["gold"]}, True),
        ({"tags_any": ["vip"]}, {"tags": ["gold"]}, False),
        ({"tags_all": ["vip", "eu"]}, {"tags": ["eu", "vip", "x"]}, True),
        ({"tags_all": ["vip", "eu"]}, {"tags": ["vip"]}, False),
        ({"tier": ["L1"]}, {}, True),
        ({"tier": ["L2"]}, {}, False),
        ({"path": ["billing"]}, {"category": "billing"}, True),
        ({"path": ["billing"]}, {}, False),
        ({"status": ["new"]}, {}, True),
        ({"status": ["open"]}, {}, False),
        ({"priority": ["urgent"], "tags_any": ["vip"]}, {"priority": "urgent"}, False),
        ({}, {}, True),
    ],
)
def test_each_condition_key(
    conditions: dict[str, Any], ticket: dict[str, Any], fires: bool
) -> None:
    t = Ticket(opened_rule(**conditions), **ticket)
    assert ("hit" in t.s.tags) is fires
    assert t.fired() == ([("r", T0)] if fires else [])


@pytest.mark.parametrize(("metric", "fires"), [("first_response", True), ("resolution", False)])
def test_the_metric_condition_on_a_breach(metric: str, fires: bool) -> None:
    p = policy({"name": "m", "on": "sla_breached", "if": {"metric": metric}, "then": TAG_IT})
    t = Ticket(p, priority="urgent")
    t.run_until(at(minutes=15))
    assert ("hit" in t.s.tags) is fires


# --- rules: triggers and effects ----------------------------------------------------------------


def test_vip_urgent_skips_l1_at_open() -> None:
    p = policy(
        {
            "name": "vip-urgent-skips-l1",
            "on": "opened",
            "if": {"priority": ["urgent"], "tags_any": ["vip"]},
            "then": {"escalate_to": "L2"},
        }
    )
    t = Ticket(p, priority="urgent", tags=["vip"])
    assert types(t.opened) == ["TicketOpened", "RuleFired", "TicketEscalated"]
    escalation = t.opened[2]
    assert escalation == ev.TicketEscalated(
        from_tier="L1",
        to_tier="L2",
        trigger="rule",
        reason="rule vip-urgent-skips-l1",
        rule="vip-urgent-skips-l1",
    )
    assert Ticket(p, priority="urgent").s.tier == "L1"


def test_a_priority_raised_to_urgent_escalates_at_once() -> None:
    p = policy(
        {
            "name": "urgent-escalates",
            "on": "priority_changed",
            "if": {"priority": ["urgent"]},
            "then": {"escalate_to": "next"},
        }
    )
    t = Ticket(p)
    out = t.act("change_priority", at(minutes=5), agent_id="ann", priority="urgent")
    assert types(out) == ["PriorityChanged", "RuleFired", "TicketEscalated"]
    assert t.s.tier == "L2" and t.s.escalations[-1].trigger == "rule"
    assert types(t.act("change_priority", at(minutes=6), agent_id="ann", priority="low")) == [
        "PriorityChanged"
    ]


@pytest.mark.parametrize(
    ("then", "expect"),
    [
        ({"escalate_to": "L3"}, lambda s: s.tier == "L3"),
        ({"escalate_to": "next"}, lambda s: s.tier == "L2"),
        ({"set_priority": "urgent"}, lambda s: s.priority == "urgent"),
        ({"add_tags": ["a", "b"]}, lambda s: s.tags == ("a", "b", "eu")),
        ({"remove_tags": ["eu"]}, lambda s: s.tags == ()),
        ({"transfer_to": "billing"}, lambda s: (s.path_name, s.tier) == ("billing", "L1")),
        ({"notify": "stale"}, lambda s: s.fired[-1].rule == "r"),
    ],
)
def test_each_effect_on_a_customer_reply(then: dict[str, Any], expect: Any) -> None:
    t = Ticket(policy({"name": "r", "on": "customer_replied", "then": then}), tags=["eu"])
    out = t.act("customer_replied", at(minutes=1))
    assert expect(t.s)
    assert types(out)[:2] == ["CustomerReplied", "RuleFired"]
    for data in out[2:]:
        assert getattr(data, "rule", None) == "r"  # every caused event names its rule
    fired = out[1]
    assert isinstance(fired, ev.RuleFired) and fired.notify == then.get("notify")


def test_a_rule_notify_is_a_notice_of_that_kind() -> None:
    from domain.notifications import notifications_for

    t = Ticket(policy({"name": "r", "on": "customer_replied", "then": {"notify": "stale"}}))
    t.act("customer_replied", at(minutes=1))
    [notice] = notifications_for(t.s, t.events[-1])
    assert (notice.kind, notice.tier) == ("stale", "L1")
    assert "rule r" in notice.message


def test_effects_that_change_nothing_record_only_the_firing() -> None:
    p = policy(
        {"name": "r", "on": "opened", "then": {"escalate_to": "L1", "set_priority": "normal"}}
    )
    t = Ticket(p)
    assert types(t.opened) == ["TicketOpened", "RuleFired"]


def test_triggers_tags_changed_sla_warning_escalated_transferred() -> None:
    p = policy(
        {
            "name": "on-tags",
            "on": "tags_changed",
            "if": {"tags_any": "vip"},
            "then": {"set_priority": "high"},
        },
        {"name": "on-warning", "on": "sla_warning", "then": {"add_tags": ["at-risk"]}},
        {"name": "on-escalated", "on": "escalated", "if": {"tier": "L2"}, "then": {"notify": "up"}},
        {"name": "on-transfer", "on": "transferred", "then": {"add_tags": ["moved"]}},
    )
    t = Ticket(p)
    t.act("tag", at(minutes=1), agent_id="a", add=["vip"])
    assert t.s.priority == "high"
    t.run_until(at(minutes=48))  # 0.8 of high's 1h first response
    assert "at-risk" in t.s.tags
    t.act("request_escalation", at(minutes=50), agent_id="a", reason="x")
    t.act("transfer", at(minutes=51), agent_id="a", path="billing", reason="y")
    assert [r for r, _ in t.fired()] == ["on-tags", "on-warning", "on-escalated", "on-transfer"]
    assert "moved" in t.s.tags


def test_rules_never_react_to_what_rules_caused() -> None:
    p = policy(
        {
            "name": "up",
            "on": "customer_replied",
            "then": {"escalate_to": "next", "add_tags": ["x"]},
        },
        {"name": "again", "on": "escalated", "then": {"escalate_to": "next"}},
        {"name": "tagged", "on": "tags_changed", "then": {"set_priority": "urgent"}},
    )
    t = Ticket(p)
    t.act("customer_replied", at(minutes=1))
    assert [r for r, _ in t.fired()] == ["up"]
    assert t.s.tier == "L2" and t.s.priority == "normal"
    t.act("request_escalation", at(minutes=2), agent_id="a", reason="x")  # an agent's: reacts
    assert [r for r, _ in t.fired()] == ["up", "again"]


# --- rules: elapsed -----------------------------------------------------------------------------

STALE = {
    "name": "stale-after-customer-reply",
    "on": "elapsed",
    "after": "2h",
    "since": "customer_replied",
    "if": {"status": ["open"]},
    "then": {"escalate_to": "next", "notify": "stale"},
}


def test_two_hours_after_the_customer_replied_with_no_agent_answer_it_escalates() -> None:
    t = Ticket(policy(STALE))
    t.act("respond", at(minutes=1), agent_id="ann")
    t.act("customer_replied", at(minutes=10))
    upcoming = view(t.s).rules.next_elapsed
    assert upcoming is not None and upcoming.due == at(hours=2, minutes=10)
    assert ("rule stale-after-customer-reply", at(hours=2, minutes=10)) in deadlines(t.s)
    out = t.run_until(at(hours=2, minutes=10))
    assert types(out) == ["RuleFired", "TicketEscalated"]
    assert t.events[-1].occurred_at == at(hours=2, minutes=10)
    assert t.s.tier == "L2"
    t.run_until(at(hours=6))
    assert len(t.fired()) == 1  # once per since moment


def test_an_agent_answer_stops_the_elapsed_rule_and_a_new_customer_reply_starts_it_again() -> None:
    t = Ticket(policy(STALE))
    t.act("respond", at(minutes=1), agent_id="ann")
    t.act("customer_replied", at(minutes=10))
    t.act("respond", at(hours=2), agent_id="ann")
    assert view(t.s).rules.next_elapsed is None
    t.act("customer_replied", at(hours=3))
    t.run_until(at(hours=5))
    assert t.fired() == [("stale-after-customer-reply", at(hours=5))]


def test_an_elapsed_rule_waits_for_its_conditions() -> None:
    t = Ticket(policy(STALE))
    t.act("customer_replied", at(minutes=10))  # still new: status is not open
    t.run_until(at(hours=3))
    assert not t.fired()
    t.act("assign", at(hours=4), agent_id="ann")  # open now: due since 02:10, fires at once
    assert t.fired() == [("stale-after-customer-reply", at(hours=4))]


def test_elapsed_since_opened_and_tier_entered_pause_while_pending() -> None:
    p = policy(
        {
            "name": "o",
            "on": "elapsed",
            "after": "1h",
            "since": "opened",
            "then": {"add_tags": ["o"]},
        },
        {
            "name": "t",
            "on": "elapsed",
            "after": "30m",
            "since": "tier_entered",
            "then": {"add_tags": ["t"]},
        },
    )
    t = Ticket(p)
    t.act("await_customer", at(minutes=10), agent_id="a")
    t.act("customer_replied", at(minutes=40))
    t.run_until(at(hours=2))
    assert t.fired() == [("t", at(minutes=60)), ("o", at(minutes=90))]


def test_elapsed_since_agent_responded() -> None:
    p = policy(
        {
            "name": "nudge",
            "on": "elapsed",
            "after": "1d",
            "since": "agent_responded",
            "then": {"notify": "nudge"},
        }
    )
    t = Ticket(p)
    t.act("respond", at(hours=1), agent_id="a")
    t.run_until(at(days=3))
    assert t.fired() == [("nudge", at(days=1, hours=1))]


# --- rules: validation --------------------------------------------------------------------------

FILE = """
[policies.default]
tiers = ["L1", "L2", "L3"]
[policies.default.targets.urgent]
first_response = "15m"
resolution = "4h"
tier_budget = "1h"
next_reply = "30m"
[policies.default.targets.high]
first_response = "1h"
resolution = "8h"
tier_budget = "2h"
[policies.default.targets.normal]
first_response = "4h"
resolution = "24h"
tier_budget = "8h"
[policies.default.targets.low]
first_response = "8h"
resolution = "72h"
tier_budget = "24h"
[[policies.default.rules]]
name = "r1"
on = "opened"
if = { priority = ["urgent"], tags_any = ["vip"] }
then = { escalate_to = "L2" }
"""


def test_a_rules_file_parses_and_round_trips_as_recorded() -> None:
    p = parse_policies(FILE, "rules.toml")["default"]
    assert [r.name for r in p.rules] == ["r1"]
    recorded = p.model_dump(mode="json")
    assert recorded["rules"] == [
        {
            "name": "r1",
            "on": "opened",
            "if": {"priority": ["urgent"], "tags_any": ["vip"]},
            "then": {"escalate_to": "L2"},
        }
    ]
    assert Policy.model_validate(recorded) == p


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('escalate_to = "L2"', 'escalate_to = "L9"'),
            "rules.toml: policies.default.rules[0] (r1).then.escalate_to: unknown tier 'L9'",
        ),
        (("tags_any", "tags_some"), "policies.default.rules[0] (r1).if.tags_some: unknown field"),
        (('on = "opened"', 'on = "closed"'), "policies.default.rules[0] (r1).on: Input should be"),
        (('on = "opened"', 'on = "elapsed"'), "rules[0] (r1): after: an elapsed rule needs"),
        (('on = "opened"', 'on = "opened"\nafter = "1h"'), "after: only an elapsed rule"),
        (
            ('priority = ["urgent"]', 'priority = ["asap"]'),
            "rules[0] (r1).if.priority.0: Input should be",
        ),
        (('then = { escalate_to = "L2" }', "then = {}"), "rules[0] (r1).then: no effect"),
        (
            ('then = { escalate_to = "L2" }', 'then = { transfer_to = "nope" }'),
            "rules[0] (r1).then.transfer_to: unknown path 'nope'",
        ),
        (('then = { escalate_to = "L2" }', 'then = { notify = "Bad Kind" }'), "then.notify"),
        (("if = {", 'if = { tier = ["L7"], '), "rules[0] (r1).if.tier: unknown tier 'L7'"),
        (("if = {", 'if = { metric = ["resolution"], '), "if.metric: only a rule on sla_warning"),
        (('next_reply = "30m"', 'next_reply = "soon"'), "targets.urgent.next_reply"),
    ],
)
def test_a_bad_rule_stops_the_worker_naming_file_rule_and_key(
    change: tuple[str, str], message: str
) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policies(FILE.replace(*change, 1), "rules.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("rules.toml: ")


def test_rule_names_are_unique_and_escalate_on_is_checked() -> None:
    twice = FILE + FILE[FILE.index("[[policies") :]
    with pytest.raises(
        PolicyError, match=r"rules\[1\] \(r1\)\.name: 'r1' is also the name of rules\[0\]"
    ):
        parse_policies(twice, "rules.toml")
    bad = FILE.replace(
        'tiers = ["L1", "L2", "L3"]', 'tiers = ["L1", "L2", "L3"]\nescalate_on = ["resolution"]'
    )
    with pytest.raises(PolicyError, match=r"policies\.default\.escalate_on\.0"):
        parse_policies(bad, "rules.toml")


def test_an_elapsed_after_no_calendar_can_reach_stops_the_worker() -> None:
    text = (
        FILE.replace("calendar", "x")
        + """
[calendars.tiny]
timezone = "UTC"
monday = "09:00-10:00"
"""
    )
    text = text.replace(
        'tiers = ["L1", "L2", "L3"]', 'tiers = ["L1", "L2", "L3"]\ncalendar = "tiny"', 1
    )
    text += """
[[policies.default.rules]]
name = "far"
on = "elapsed"
after = "3000d"
since = "opened"
then = { notify = "far" }
"""
    with pytest.raises(PolicyError, match=r"rules\[1\] \(far\)\.after: 3000d of business time"):
        parse_policies(text, "rules.toml")


# --- rules explain ------------------------------------------------------------------------------

THREE = (
    {
        "name": "vip-urgent-skips-l1",
        "on": "opened",
        "if": {"priority": ["urgent"], "tags_any": ["vip"]},
        "then": {"escalate_to": "L2"},
    },
    STALE,
    {
        "name": "urgent-escalates-at-once",
        "on": "priority_changed",
        "if": {"priority": ["urgent"]},
        "then": {"escalate_to": "next"},
    },
)


def test_explain_with_the_recorded_rules_tells_exactly_what_fired() -> None:
    from domain.rules_explain import explain

    t = Ticket(policy(*THREE), tags=["vip"])
    t.act("respond", at(minutes=1), agent_id="ann")
    t.act("change_priority", at(minutes=2), agent_id="ann", priority="high")
    t.act("change_priority", at(minutes=3), agent_id="ann", priority="urgent")
    t.act("customer_replied", at(minutes=10))
    t.run_until(at(hours=3))
    verdicts = {v.rule.name: v for v in explain(t.events, None, at(hours=3))}
    explained = sorted((at_, name) for name, v in verdicts.items() for at_, _ in v.fired)
    assert explained == sorted((when, name) for name, when in t.fired())
    assert verdicts["vip-urgent-skips-l1"].missed == [
        (T0, "opened", "priority is 'normal', not 'urgent'")
    ]
    assert verdicts["urgent-escalates-at-once"].missed == [
        (at(minutes=2), "priority_changed", "priority is 'high', not 'urgent'")
    ]
    assert verdicts["stale-after-customer-reply"].fired == [
        (at(hours=2, minutes=10), "elapsed: 2h after customer_replied 2026-03-02 09:10:00")
    ]


def test_explain_tries_other_rules_on_the_same_history() -> None:
    from domain.rules import Rule
    from domain.rules_explain import explain

    t = Ticket(DEFAULT_POLICY, priority="urgent", tags=["vip"])
    t.act("respond", at(minutes=1), agent_id="ann")
    t.act("customer_replied", at(minutes=10))
    assert t.fired() == []  # the ticket's policy has no rules
    tried = [Rule.model_validate(r) for r in THREE]
    verdicts = {v.rule.name: v for v in explain(t.events, tried, at(hours=1))}
    assert verdicts["vip-urgent-skips-l1"].fired == [(T0, "opened")]
    assert verdicts["urgent-escalates-at-once"].fired == []
    assert verdicts["stale-after-customer-reply"].next_due == at(hours=2, minutes=10)
    t.act("respond", at(hours=2), agent_id="ann")
    verdicts = {v.rule.name: v for v in explain(t.events, tried, at(hours=5))}
    assert verdicts["stale-after-customer-reply"].next_due is None  # answered in time
    assert verdicts["stale-after-customer-reply"].fired == []


def test_a_policy_with_rules_round_trips_through_the_temporal_data_converter() -> None:
    """The policy reaches the workflow as a local activity's result: by alias, as the SDK's
    pydantic converter writes it."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    p = policy(*THREE)
    converter = pydantic_data_converter.payload_converter
    [back] = converter.from_payloads(converter.to_payloads([p]), [Policy])
    assert back == p


def test_a_rule_notify_kind_is_routed_by_the_list_form_and_the_per_kind_star() -> None:
    from domain.channels import parse_channels

    config = parse_channels(
        """
[channels.ops]
type = "webhook"
url = "https://ops.example.com/hook"
secret = "s1"
[channels.pager]
type = "webhook"
url = "https://pager.example.com/hook"
secret = "s2"
[notify.default]
L1 = ["ops"]
[notify.default.L2]
breach = ["pager"]
"*" = ["ops"]
""",
        "channels.toml",
    )
    assert [c.name for c in config.route("default", "L1", "stale")] == ["ops"]
    assert [c.name for c in config.route("default", "L2", "stale")] == ["ops"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('rules = "escalate"', "policies.default.rules must be an array of tables"),
        ("rules = [1, 2]", "policies.default.rules must be an array of tables"),
        (
            '[[policies.default.rules]]\nname = "x y"\non = "opened"\nthen = { notify = "n" }',
            "policies.default.rules[0] (x y).name: String should match pattern",
        ),
        (
            '[[policies.default.rules]]\non = "opened"\nthen = { notify = "n" }',
            "policies.default.rules[0].name: required field is missing",
        ),
        (
            '[[policies.default.rules]]\nname = "a"\non = "opened"\nif = "urgent"\n'
            'then = { notify = "n" }',
            "policies.default.rules[0] (a).if: Input should be",
        ),
        (
            '[[policies.default.rules]]\nname = "a"\non = "elapsed"\nafter = "-1h"\n'
            'since = "opened"\nthen = { notify = "n" }',
            "policies.default.rules[0] (a).after: invalid duration '-1h'",
        ),
        (
            '[[policies.default.rules]]\nname = "a"\non = "elapsed"\nafter = "1h"\n'
            'since = "closed"\nthen = { notify = "n" }',
            "policies.default.rules[0] (a).since: Input should be",
        ),
        (
            '[[policies.default.rules]]\nname = "a"\non = "opened"\n'
            'then = { add_tags = ["x"], remove_tags = ["x"] }',
            "then: tags x are both added and removed",
        ),
    ],
)
def test_hostile_rule_tables_are_refused_naming_the_key(rules: str, message: str) -> None:
    head = FILE[: FILE.index("[[policies")]
    text = (
        head.replace('tiers = ["L1", "L2", "L3"]', 'tiers = ["L1", "L2", "L3"]\n' + rules)
        if (rules.startswith("rules ="))
        else head + rules + "\n"
    )
    with pytest.raises(PolicyError) as info:
        parse_policies(text, "rules.toml")
    assert message in str(info.value)


def test_explain_says_when_an_elapsed_rule_waits_for_its_conditions() -> None:
    from domain.rules import Rule
    from domain.rules_explain import explain

    t = Ticket(DEFAULT_POLICY)
    t.act("customer_replied", at(minutes=10))  # status new: the stale rule wants open
    [verdict] = explain(t.events, [Rule.model_validate(STALE)], at(hours=3))
    assert verdict.fired == [] and verdict.next_due is None
    assert verdict.waiting == "due 2026-03-02 11:10:00, waits: status is 'new', not 'open'"
