"""Teams, paths, transfer, assignment and acknowledgement (CONTRACT.md v2, docs/teams.md).

Given events / when command / then events, with the `Story` of test_domain_decider.py; the
workflow's local activity (the choice) is played by `TeamStory.choose`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import events as ev
from domain.agents import Agent, AgentDirectory, DirectoryError, check_teams, parse_directory
from domain.assignment import Choice, choice_request, choose, eligible, members, nobody_reason
from domain.commands import OpenTicket
from domain.decider import Assigned, Open, decide
from domain.errors import InvalidTicket, PolicyError
from domain.notifications import notifications_for
from domain.policy import DEFAULT_POLICY, Policy, parse_policies
from domain.state import TicketState, ack_due, choice_due, deadlines, evolve, tier_due
from domain.view import view
from tests.policy_files import contract_targets
from tests.test_domain_decider import T0, Story, at, types

TEAMS_TOML = (
    """
[policies.default]
tiers = ["L1", "L2", "L3"]
"""
    + contract_targets("default")
    + """
[policies.default.paths.billing]
tiers = ["L1", "billing", "billing-manager"]

[policies.default.paths.fast]
tiers = ["billing", "billing-manager"]

[policies.default.teams.billing]
assignment = "least_loaded"
ack_within = "10m"
max_reassign = 1
tier_budget = "2h"

[policies.default.teams.billing-manager]
assignment = "round_robin"
ack_within = "5m"
max_reassign = 0
"""
)
POLICY = parse_policies(TEAMS_TOML)["default"]


class TeamStory(Story):
    """A Story whose tickets can enter auto-assigned teams: `choose` answers the workflow's
    question, as the local activity would."""

    def __init__(self, priority: str = "normal", policy: Policy = POLICY, **ticket: Any) -> None:
        self.ticket_id = "T-1"
        self.state: TicketState | None = None
        self.events: list[ev.DomainEvent] = []
        t = OpenTicket(
            ticket_id="T-1",
            subject="Refund not received",
            customer_id="acme",
            priority=priority,
            **{"category": "billing", **ticket},
        )
        self.record(decide(None, Open(ticket=t, policy=policy), T0), T0)

    def choose(self, agent_id: str | None, now: datetime, reason: str | None = None) -> list[Any]:
        request = choice_request(self.s)
        choice = Choice(agent_id=agent_id, reason=reason)
        return self.record(decide(self.state, Assigned(request=request, choice=choice), now), now)

    def enter_billing(self, now: datetime) -> None:
        self.act("request_escalation", now, agent_id="ann", reason="billing dispute")
        assert self.s.tier == "billing"

    def notices(self, event_index: int = -1) -> list[str]:
        event = self.events[event_index]
        state = self.s
        return [n.kind for n in notifications_for(state, event)]


# ================================================================================================
# policy: paths and teams
# ================================================================================================


def test_paths_and_teams_parse_with_their_defaults() -> None:
    assert POLICY.path_names() == ("default", "billing", "fast")
    assert POLICY.path_tiers("billing") == ("L1", "billing", "billing-manager")
    billing = POLICY.team("billing")
    assert (billing.assignment, billing.ack_within, billing.max_reassign) == (
        "least_loaded",
        timedelta(minutes=10),
        1,
    )
    assert billing.tier_budget == timedelta(hours=2)
    manual = POLICY.team("L1")  # a team without settings
    assert (manual.assignment, manual.ack_within, manual.max_reassign) == (
        "manual",
        timedelta(minutes=10),
        1,
    )
    assert manual.tier_budget is None


def test_a_policy_without_paths_records_exactly_as_v1() -> None:
    data = DEFAULT_POLICY.model_dump(mode="json")
    assert "paths" not in data and "teams" not in data
    assert Policy.model_validate(data) == DEFAULT_POLICY
    recorded = POLICY.model_dump(mode="json")
    assert Policy.model_validate(recorded) == POLICY


def _policy_error(extra: str) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policies(TEAMS_TOML + extra, "teams.toml")
    return str(info.value)


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ('[policies.default.teams.L2]\nassign = "round_robin"\n', "teams.L2.assign: unknown field"),
        ('[policies.default.teams.L2]\nassignment = "random"\n', "teams.L2.assignment"),
        ('[policies.default.teams.L2]\nack_within = "soon"\n', "teams.L2.ack_within"),
        ("[policies.default.teams.L2]\nmax_reassign = -1\n", "teams.L2.max_reassign"),
        ('[policies.default.teams.L2]\ntier_budget = "0s"\n', "teams.L2.tier_budget"),
        ('[policies.default.teams.biling]\nassignment = "round_robin"\n', "teams.biling"),
        ('[policies.default.paths.default]\ntiers = ["L1"]\n', "paths"),
        ('[policies.default.paths.x]\ntiers = ["L 1"]\n', "paths.x.tiers"),
        ("[policies.default.paths.x]\ntiers = []\n", "paths.x.tiers"),
        ('[policies.default.paths.x]\ntiers = ["L1", "L1"]\n', "paths.x.tiers"),
        ('[policies.default.paths.x]\nteams = ["L1"]\n', "paths.x.teams: unknown field"),
    ],
)
def test_bad_paths_and_teams_name_the_key(extra: str, names: str) -> None:
    message = _policy_error(extra)
    assert message.startswith("teams.toml: policies.default")
    assert names in message


def test_a_team_not_on_any_path_is_named() -> None:
    message = _policy_error('[policies.default.teams.biling]\nassignment = "round_robin"\n')
    assert "team 'biling' is on no path" in message


def test_an_ack_clock_out_of_reach_of_the_calendar_is_named() -> None:
    text = TEAMS_TOML.replace(
        'tiers = ["L1", "L2", "L3"]\n', 'tiers = ["L1", "L2", "L3"]\ncalendar = "tiny"\n', 1
    )
    text += '[policies.default.teams.L2]\nack_within = "3650d"\n'
    text += '[calendars.tiny]\ntimezone = "UTC"\nmonday = "09:00-17:00"\n'
    with pytest.raises(PolicyError) as info:
        parse_policies(text, "teams.toml")
    assert "policies.default.teams.L2.ack_within" in str(info.value)


# ================================================================================================
# opening: the path chosen and recorded
# ================================================================================================


def test_the_category_chooses_the_path_and_it_is_recorded() -> None:
    story = TeamStory()
    opened = story.events[0].data()
    assert isinstance(opened, ev.TicketOpened)
    assert (opened.path, opened.tiers) == ("billing", ("L1", "billing", "billing-manager"))
    assert story.s.tier == "L1"
    assert view(story.s).path == "billing"
    assert view(story.s).tiers == ["L1", "billing", "billing-manager"]


def test_an_explicit_path_beats_the_category() -> None:
    story = TeamStory(path="fast")
    assert (story.s.path_name, story.s.tier) == ("fast", "billing")


def test_no_matching_category_takes_the_default_path() -> None:
    story = TeamStory(category="hardware")
    assert (story.s.path_name, story.s.tiers) == ("default", ("L1", "L2", "L3"))


def test_an_unknown_explicit_path_is_an_invalid_ticket_naming_the_path() -> None:
    t = OpenTicket(ticket_id="T-1", subject="s", customer_id="c", path="shipping")
    with pytest.raises(InvalidTicket) as info:
        decide(None, Open(ticket=t, policy=POLICY), T0)
    assert str(info.value) == (
        "path: unknown path 'shipping'; policy 'default' has paths default, billing, fast"
    )


def test_a_ticket_opened_as_v1_records_no_path_and_follows_the_policy_tiers() -> None:
    t = OpenTicket(ticket_id="T-1", subject="s", customer_id="c", category="billing")
    [opened] = decide(None, Open(ticket=t, policy=DEFAULT_POLICY, record_path=False), T0)
    assert isinstance(opened, ev.TicketOpened)
    assert "path" not in opened.model_dump(exclude_none=True)
    # What a v1 event store holds: no path, no tiers.
    stored = {k: v for k, v in opened.model_dump(mode="json").items() if k not in ("path", "tiers")}
    state = evolve(
        None,
        ev.DomainEvent(
            ticket_id="T-1",
            seq=1,
            event_id=UUID(int=1),
            event_type="TicketOpened",
            payload=stored,
            occurred_at=T0,
        ),
    )
    assert (state.path_name, state.tiers, state.wants_choice) == (
        "default",
        ("L1", "L2", "L3"),
        False,
    )
    assert choice_due(state) is None and ack_due(state) is None


# ================================================================================================
# rules 1-9 follow the ticket's path
# ================================================================================================


def test_request_escalation_moves_up_the_path() -> None:
    story = TeamStory()
    story.enter_billing(at(minutes=1))
    assert story.s.next_tier() == "billing-manager"


def test_request_escalation_to_a_tier_off_the_path_is_refused_naming_the_path() -> None:
    story = TeamStory()
    message = story.refuse(
        "request_escalation", at(minutes=1), agent_id="a", reason="x", to_tier="L3"
    )
    assert message == (
        "to_tier: unknown tier 'L3'; path 'billing' of policy 'default' has tiers"
        " L1, billing, billing-manager"
    )


def test_the_tier_budget_moves_up_the_path_with_the_team_budget() -> None:
    story = TeamStory()
    story.act("respond", at(minutes=1), agent_id="ann")
    story.tick(at(hours=8))  # L1's budget (normal: 8h)
    assert story.s.tier == "billing"
    assert tier_due(story.s) == at(hours=10)  # billing's own tier_budget of 2h
    story.act("assign", at(hours=8, minutes=1), agent_id="bea")  # manual: no ack clock
    story.tick(at(hours=10))
    assert story.s.tier == "billing-manager"
    assert story.s.at_top_tier and tier_due(story.s) is None


# ================================================================================================
# assignment
# ================================================================================================


def test_entering_an_auto_team_asks_for_a_choice_at_once() -> None:
    story = TeamStory()
    assert choice_due(story.s) is None  # L1 is manual
    story.enter_billing(at(minutes=1))
    assert choice_due(story.s) == at(minutes=1)
    assert ("assignment", at(minutes=1)) in deadlines(story.s)


def test_a_choice_is_recorded_as_an_auto_assignment_with_an_ack_clock() -> None:
    story = TeamStory()
    story.enter_billing(at(minutes=1))
    assert types(story.choose("bea", at(minutes=1))) == ["TicketAssigned"]
    assigned = story.events[-1].data()
    assert isinstance(assigned, ev.TicketAssigned)
    assert (assigned.assignee, assigned.agent_id, assigned.trigger) == ("bea", "bea", "auto")
    assert story.notices() == ["assigned"]
    assert notifications_for(story.s, story.events[-1])[0].assignee == "bea"
    assert ack_due(story.s) == at(minutes=11)
    assert choice_due(story.s) is None
    a = view(story.s).assignment
    assert a is not None
    assert (a.mode, a.assignee, a.assigned_at, a.ack_due, a.timeouts) == (
        "least_loaded",
        "bea",
        at(minutes=1),
        at(minutes=11),
        0,
    )


def test_a_manual_assignment_records_trigger_agent_and_no_ack_clock() -> None:
    story = TeamStory()
    story.act("assign", at(minutes=1), agent_id="ann")
    assigned = story.events[-1].data()
    assert isinstance(assigned, ev.TicketAssigned) and assigned.trigger == "agent"
    assert ack_due(story.s) is None


def test_a_stale_choice_records_nothing() -> None:
    story = TeamStory()
    story.enter_billing(at(minutes=1))
    request = choice_request(story.s)
    story.act("assign", at(minutes=1), agent_id="lead", assignee="carl")  # by hand meanwhile
    late = decide(
        story.state, Assigned(request=request, choice=Choice(agent_id="bea")), at(minutes=1)
    )
    assert late == []
    other_visit = request.model_copy(update={"visit": request.visit + 1})
    story2 = TeamStory()
    story2.enter_billing(at(minutes=1))
    assert (
        decide(story2.state, Assigned(request=other_visit, choice=Choice(agent_id="x")), T0) == []
    )


def test_nobody_available_is_recorded_and_tried_again_every_ack_within() -> None:
    story = TeamStory()
    story.enter_billing(at(minutes=1))
    assert types(story.choose(None, at(minutes=1), "all away")) == ["AssignmentUnavailable"]
    assert story.notices() == ["unassigned"]
    assert choice_due(story.s) == at(minutes=11)
    story.choose(None, at(minutes=11), "all away")
    assert choice_due(story.s) == at(minutes=21)
    assert story.s.choice_attempt == 2
    story.choose("bea", at(minutes=21))
    assert story.s.assignee == "bea" and choice_due(story.s) is None


def test_a_manual_assignment_ends_the_retries() -> None:
    story = TeamStory()
    story.enter_billing(at(minutes=1))
    story.choose(None, at(minutes=1))
    story.act("assign", at(minutes=2), agent_id="lead", assignee="carl")
    assert choice_due(story.s) is None and ack_due(story.s) is None


def test_no_choice_while_resolved() -> None:
    story = TeamStory()
    story.enter_billing(at(minutes=1))
    story.act("resolve", at(minutes=1), agent_id="ann", resolution="x")
    assert choice_due(story.s) is None


# ================================================================================================
# acknowledgement
# ================================================================================================


def _assigned_to_bea() -> TeamStory:
    story = TeamStory()
    story.enter_billing(at(minutes=1))
    story.choose("bea", at(minutes=1))
    return story


def test_the_assignee_acknowledges() -> None:
    story = _assigned_to_bea()
    assert types(story.act("acknowledge", at(minutes=3), agent_id="bea")) == [
        "AssignmentAcknowledged"
    ]
    assert story.s.acknowledged_at == at(minutes=3)
    assert ack_due(story.s) is None
    a = view(story.s).assignment
    assert a is not None and a.acknowledged_at == at(minutes=3)


def test_any_other_action_of_the_assignee_acknowledges_first() -> None:
    story = _assigned_to_bea()
    assert types(story.act("respond", at(minutes=3), agent_id="bea")) == [
        "AssignmentAcknowledged",
        "AgentResponded",
    ]
    assert ack_due(story.s) is None


def test_another_agents_action_does_not_acknowledge() -> None:
    story = _assigned_to_bea()
    assert types(story.act("respond", at(minutes=3), agent_id="carl")) == ["AgentResponded"]
    assert ack_due(story.s) == at(minutes=11)


@pytest.mark.parametrize(
    ("setup", "agent", "message"),
    [
        ("none", "bea", "ticket T-1 has no assignee; nothing to acknowledge"),
        ("auto", "carl", "ticket T-1 is assigned to bea; only they can acknowledge it"),
        ("manual", "bea", "ticket T-1 was assigned to bea by an agent; nothing to acknowledge"),
        ("acked", "bea", "bea already acknowledged ticket T-1"),
        ("resolved", "bea", "ticket T-1 is resolved; cannot acknowledge"),
        ("closed", "bea", "ticket T-1 is closed; cannot acknowledge"),
    ],
)
def test_acknowledge_refusals(setup: str, agent: str, message: str) -> None:
    story = TeamStory()
    if setup != "none":
        story.enter_billing(at(minutes=1))
        if setup == "manual":
            story.act("assign", at(minutes=1), agent_id="bea")
        else:
            story.choose("bea", at(minutes=1))
    if setup == "acked":
        story.act("acknowledge", at(minutes=2), agent_id="bea")
    if setup == "resolved":
        story.act("resolve", at(minutes=2), agent_id="carl", resolution="x")
    if setup == "closed":
        story.act("close", at(minutes=2), agent_id="carl")
    assert story.refuse("acknowledge", at(minutes=3), agent_id=agent) == message


def test_an_ack_timeout_asks_for_a_new_choice_excluding_who_timed_out() -> None:
    story = _assigned_to_bea()
    assert types(story.tick(at(minutes=11))) == ["AssignmentTimedOut"]
    timed_out = story.events[-1].data()
    assert isinstance(timed_out, ev.AssignmentTimedOut)
    assert (timed_out.assignee, timed_out.tier) == ("bea", "billing")
    assert story.s.assignee is None
    assert choice_due(story.s) == at(minutes=11)
    assert choice_request(story.s).excluded == ("bea",)
    assert story.notices() == []
    a = view(story.s).assignment
    assert a is not None and a.timeouts == 1


def test_the_timeout_after_the_last_reassignment_escalates_with_ack_timeout() -> None:
    story = _assigned_to_bea()
    story.tick(at(minutes=11))
    story.choose("carl", at(minutes=11))
    assert types(story.tick(at(minutes=21))) == ["AssignmentTimedOut", "TicketEscalated"]
    escalated = story.events[-1].data()
    assert isinstance(escalated, ev.TicketEscalated)
    assert (escalated.from_tier, escalated.to_tier, escalated.trigger) == (
        "billing",
        "billing-manager",
        "ack_timeout",
    )
    assert escalated.reason == "carl did not acknowledge within 10m"
    # A new visit: nobody excluded, the manager team chooses at once.
    assert story.s.timed_out == () and choice_due(story.s) == at(minutes=21)


def test_at_the_top_tier_the_last_timeout_leaves_it_unassigned_and_tells_the_team() -> None:
    story = _assigned_to_bea()
    story.tick(at(minutes=11))
    story.choose("carl", at(minutes=11))
    story.tick(at(minutes=21))
    story.choose("max", at(minutes=21))
    assert ack_due(story.s) == at(minutes=26)  # the managers' ack_within is 5m
    assert types(story.tick(at(minutes=26))) == ["AssignmentTimedOut"]  # max_reassign 0
    assert story.notices() == ["unacknowledged"]
    assert story.s.assignee is None
    assert choice_due(story.s) is None and ack_due(story.s) is None


def test_max_reassign_zero_escalates_on_the_first_timeout() -> None:
    story = TeamStory(path="fast")
    story.choose("bea", T0)
    text = TEAMS_TOML.replace("max_reassign = 1", "max_reassign = 0")
    story0 = TeamStory(path="fast", policy=parse_policies(text)["default"])
    story0.choose("bea", T0)
    assert types(story0.tick(at(minutes=10))) == ["AssignmentTimedOut", "TicketEscalated"]
    assert types(story.tick(at(minutes=10))) == ["AssignmentTimedOut"]


def test_the_ack_clock_pauses_while_pending() -> None:
    story = _assigned_to_bea()
    story.act("await_customer", at(minutes=5), agent_id="carl")
    assert ack_due(story.s) is None
    story.act("customer_replied", at(hours=2, minutes=5))
    assert ack_due(story.s) == at(hours=2, minutes=11)


def test_the_ack_clock_runs_on_business_hours() -> None:
    office = TEAMS_TOML.replace(
        'tiers = ["L1", "L2", "L3"]\n', 'tiers = ["L1", "L2", "L3"]\ncalendar = "office"\n', 1
    )
    office += '[calendars.office]\ntimezone = "UTC"\n'
    office += "".join(
        f'{d} = "09:00-17:00"\n' for d in ("monday", "tuesday", "wednesday", "thursday", "friday")
    )
    policy = parse_policies(office)["default"]
    friday = datetime(2026, 3, 6, 16, 55, tzinfo=UTC)
    story = TeamStory(path="fast", policy=policy)
    story.choose("bea", friday)
    # 5 minutes on Friday, 5 on Monday morning.
    assert ack_due(story.s) == datetime(2026, 3, 9, 9, 5, tzinfo=UTC)


def test_an_escalation_clears_the_assignment_and_starts_a_new_visit() -> None:
    story = _assigned_to_bea()
    visit = story.s.visit
    story.act("request_escalation", at(minutes=2), agent_id="carl", reason="needs a manager")
    assert story.s.assignee is None and ack_due(story.s) is None
    assert story.s.visit == visit + 1 and story.s.choice_attempt == 0


# ================================================================================================
# transfer
# ================================================================================================


def test_transfer_enters_the_same_position_on_the_new_path() -> None:
    story = TeamStory(category="hardware")
    story.act("assign", at(minutes=1), agent_id="ann")
    story.act("request_escalation", at(minutes=2), agent_id="ann", reason="x")
    assert story.s.tier == "L2"
    out = story.act("transfer", at(minutes=30), agent_id="ann", path="billing", reason="refund")
    assert types(out) == ["TicketTransferred"]
    moved = story.events[-1].data()
    assert isinstance(moved, ev.TicketTransferred)
    assert moved.model_dump() == {
        "from_path": "default",
        "to_path": "billing",
        "from_tier": "L2",
        "to_tier": "billing",
        "reason": "refund",
        "agent_id": "ann",
        "request_id": None,
    }
    assert story.notices() == ["escalated"]
    assert (story.s.path_name, story.s.tiers) == ("billing", ("L1", "billing", "billing-manager"))
    assert story.s.assignee is None
    assert story.s.tier_entered_at == at(minutes=30)
    assert tier_due(story.s) == at(hours=2, minutes=30)  # billing's budget, restarted
    assert choice_due(story.s) == at(minutes=30)  # billing chooses
    assert view(story.s).path == "billing"


def test_transfer_clamps_to_the_top_of_a_shorter_path() -> None:
    story = TeamStory(category="hardware")
    story.act("request_escalation", at(minutes=1), agent_id="a", reason="x", to_tier="L3")
    story.act("transfer", at(minutes=2), agent_id="a", path="fast", reason="refund")
    assert (story.s.path_name, story.s.tier) == ("fast", "billing-manager")


def test_transfer_to_a_named_tier_and_the_clocks_that_go_on() -> None:
    story = TeamStory("urgent", category="hardware")
    before = story.s.opened_at
    story.act(
        "transfer",
        at(minutes=1),
        agent_id="a",
        path="billing",
        to_tier="billing-manager",
        reason="x",
    )
    assert story.s.tier == "billing-manager"
    assert story.s.opened_at == before
    story.choose("max", at(minutes=1))
    story.act("acknowledge", at(minutes=2), agent_id="max")
    assert types(story.tick(at(minutes=15))) == ["SlaBreached"]  # that clock went on
    assert "first_response" in story.s.breached


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"path": "shipping"},
            "path: unknown path 'shipping'; policy 'default' has paths default, billing, fast",
        ),
        (
            {"path": "billing", "to_tier": "L2"},
            "to_tier: 'L2' is not on path 'billing' (tiers: L1, billing, billing-manager)",
        ),
        (
            {"path": "billing"},
            "ticket T-1 is already at tier L1 of path billing; nothing to transfer",
        ),
        (
            {"path": "billing", "to_tier": "L1"},
            "ticket T-1 is already at tier L1 of path billing; nothing to transfer",
        ),
    ],
)
def test_transfer_refusals(payload: dict[str, str], message: str) -> None:
    story = TeamStory()
    assert story.refuse("transfer", at(minutes=1), agent_id="a", reason="x", **payload) == message


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_transfer_of_a_resolved_or_closed_ticket_is_refused(status: str) -> None:
    story = TeamStory()
    if status == "resolved":
        story.act("resolve", at(minutes=1), agent_id="a", resolution="x")
    else:
        story.act("close", at(minutes=1), agent_id="a")
    message = story.refuse("transfer", at(minutes=2), agent_id="a", path="fast", reason="x")
    assert message == f"ticket T-1 is {status}; cannot transfer"


def test_transfer_payload_is_validated() -> None:
    story = TeamStory()
    with pytest.raises(Exception, match="reason"):
        story.act("transfer", at(minutes=1), agent_id="a", path="fast", reason="")
    with pytest.raises(Exception, match="reason"):
        story.act("transfer", at(minutes=1), agent_id="a", path="fast", reason="x" * 2001)


def test_a_signal_transfer_refused_is_recorded() -> None:
    story = TeamStory()
    out = story.signal("transfer", at(minutes=1), agent_id="a", path="nope", reason="x")
    assert types(out) == ["ActionRejected"]


# ================================================================================================
# the choice: a pure function of (team agents, loads, cursor, excluded)
# ================================================================================================


def agent(id: str, **kw: Any) -> Agent:
    return Agent(id=id, name=id, tiers=("billing",), **kw)


def test_round_robin_takes_the_next_after_the_cursor_wrapping_around() -> None:
    team = [agent("a"), agent("b"), agent("c")]
    assert choose(team, {}, None).id == "a"  # type: ignore[union-attr]
    assert choose(team, {}, "a").id == "b"  # type: ignore[union-attr]
    assert choose(team, {}, "c").id == "a"  # type: ignore[union-attr]
    assert choose(team, {}, "gone").id == "a"  # type: ignore[union-attr]  # after 'gone' by id


def test_least_loaded_takes_the_fewest_ties_by_round_robin() -> None:
    team = [agent("a"), agent("b"), agent("c")]
    loads = {"a": 2, "b": 1, "c": 1}
    assert choose(team, loads, None, mode="least_loaded").id == "b"  # type: ignore[union-attr]
    assert choose(team, loads, "b", mode="least_loaded").id == "c"  # type: ignore[union-attr]


def test_nobody_eligible_and_why() -> None:
    team = [agent("a", away=True), agent("b", capacity=1), agent("c")]
    assert choose(team, {"b": 1}, None, excluded={"c"}) is None
    assert nobody_reason("billing", team, {"b": 1}, {"c"}) == (
        "no agent of team billing is available"
        " (3 agents: 1 away, 1 at capacity, 1 did not acknowledge)"
    )
    assert nobody_reason("billing", [], {}, ()) == "team billing has no agents in the directory"
    assert choose(team, {}, None, mode="manual") is None


agents_st = st.lists(
    st.builds(
        lambda i, away, cap: agent(f"a{i:02d}", away=away, capacity=cap),
        st.integers(0, 30),
        st.booleans(),
        st.one_of(st.none(), st.integers(1, 4)),
    ),
    max_size=8,
    unique_by=lambda a: a.id,
)


@given(
    agents_st,
    st.dictionaries(st.sampled_from([f"a{i:02d}" for i in range(31)]), st.integers(0, 6)),
    st.one_of(st.none(), st.sampled_from([f"a{i:02d}" for i in range(31)])),
    st.sets(st.sampled_from([f"a{i:02d}" for i in range(31)]), max_size=3),
    st.sampled_from(["round_robin", "least_loaded"]),
)
def test_the_choice_is_never_away_over_capacity_or_excluded(
    team: list[Agent], loads: dict[str, int], cursor: str | None, excluded: set[str], mode: Any
) -> None:
    chosen = choose(team, loads, cursor, excluded, mode)
    candidates = eligible(team, loads, excluded)
    if chosen is None:
        assert candidates == []
        return
    assert not chosen.away and chosen.id not in excluded
    assert chosen.capacity is None or loads.get(chosen.id, 0) < chosen.capacity
    if mode == "least_loaded":
        assert loads.get(chosen.id, 0) == min(loads.get(a.id, 0) for a in candidates)


@given(st.integers(1, 6), st.integers(1, 60))
def test_round_robin_is_fair_over_n_choices(size: int, n: int) -> None:
    team = [agent(f"a{i}") for i in range(size)]
    cursor, counts = None, dict.fromkeys((a.id for a in team), 0)
    for _ in range(n):
        chosen = choose(team, {}, cursor)
        assert chosen is not None
        counts[chosen.id] += 1
        cursor = chosen.id
    assert max(counts.values()) - min(counts.values()) <= 1


@given(
    agents_st,
    st.integers(0, 3),
    st.one_of(st.none(), st.sampled_from([f"a{i:02d}" for i in range(31)])),
)
def test_least_loaded_ties_go_by_round_robin(
    team: list[Agent], load: int, cursor: str | None
) -> None:
    loads = {a.id: load for a in team}  # everyone equally loaded: a tie among all
    assert choose(team, loads, cursor, mode="least_loaded") == choose(
        team, loads, cursor, mode="round_robin"
    )


@given(st.integers(1, 6), st.integers(1, 40))
def test_least_loaded_with_growing_loads_stays_balanced(size: int, n: int) -> None:
    team = [agent(f"a{i}") for i in range(size)]
    cursor, loads = None, dict.fromkeys((a.id for a in team), 0)
    for _ in range(n):
        chosen = choose(team, loads, cursor, mode="least_loaded")
        assert chosen is not None
        loads[chosen.id] += 1
        cursor = chosen.id
    assert max(loads.values()) - min(loads.values()) <= 1


# ================================================================================================
# the directory: away, capacity, teams of the policies
# ================================================================================================

DIRECTORY = """
[agents.bea]
name = "Bea"
tiers = ["billing"]
capacity = 2
[agents.carl]
name = "Carl"
tiers = ["billing"]
away = true
[agents.max]
name = "Max"
tiers = ["billing-manager"]
[agents.ann]
name = "Ann"
tiers = ["L1"]
"""


def test_the_directory_reads_away_and_capacity() -> None:
    directory = parse_directory(DIRECTORY)
    assert directory.agents["bea"].capacity == 2 and not directory.agents["bea"].away
    assert directory.agents["carl"].away and directory.agents["carl"].capacity is None
    assert [a.id for a in members(directory.agents, "billing")] == ["bea", "carl"]


@pytest.mark.parametrize(
    ("line", "names"),
    [("capacity = 0", "agents.bea.capacity"), ('away = "maybe"', "agents.bea.away")],
)
def test_bad_away_or_capacity_is_named(line: str, names: str) -> None:
    text = '[agents.bea]\nname = "Bea"\ntiers = ["billing"]\n' + line + "\n"
    with pytest.raises(DirectoryError) as info:
        parse_directory(text, "agents.toml")
    assert names in str(info.value)


def test_every_team_of_paths_and_teams_must_be_in_the_directory() -> None:
    check_teams(parse_directory(DIRECTORY), {"default": POLICY}, "agents.toml")
    missing = AgentDirectory(agents={"bea": agent("bea")})
    with pytest.raises(DirectoryError) as info:
        check_teams(missing, {"default": POLICY}, "agents.toml")
    assert str(info.value) == (
        "agents.toml: policies.default.paths.billing.tiers: team 'L1' has no agent in the agent"
        " directory (add an agent with 'L1' in its tiers)"
    )


# ================================================================================================
# notices: the assignee's own channels, else the team's route
# ================================================================================================

CHANNELS = """
[channels.team]
type = "slack"
url = "https://hooks.example.com/team"

[channels.bea-phone]
type = "slack"
url = "https://hooks.example.com/bea"

[notify.default]
"*" = ["team"]
billing = ["team"]

[agents.bea]
channels = ["bea-phone"]
"""


def test_assigned_notices_go_to_the_assignees_own_channels_else_the_team() -> None:
    from domain.channels import parse_channels

    config = parse_channels(CHANNELS, "channels.toml")
    config.check_policies({"default": POLICY})  # billing is a team of a path: routable
    assert [c.name for c in config.route_notice("default", "billing", "assigned", "bea")] == [
        "bea-phone"
    ]
    assert [c.name for c in config.route_notice("default", "billing", "assigned", "carl")] == [
        "team"
    ]
    assert [c.name for c in config.route_notice("default", "billing", "unassigned", None)] == [
        "team"
    ]
    # Only `assigned` is personal: bea's other notices follow the team's route.
    assert [c.name for c in config.route_notice("default", "billing", "breach", "bea")] == ["team"]


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ('[agents.bea]\nchannels = ["nope"]\n', "agents.bea.channels: unknown channel 'nope'"),
        ('[agents.bea]\nchanels = ["team"]\n', "agents.bea.chanels: unknown field"),
        ("[agents.bea]\n", "agents.bea.channels: required field is missing"),
        ('[agents]\nbea = "team"\n', "agents.bea: must be a table"),
    ],
)
def test_bad_agent_channels_name_the_key(table: str, names: str) -> None:
    from domain.channels import ChannelError, parse_channels

    text = CHANNELS.split("[agents.bea]")[0] + table
    with pytest.raises(ChannelError) as info:
        parse_channels(text, "channels.toml")
    assert names in str(info.value)
