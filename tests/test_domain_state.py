"""The folded state's own checks (domain/state.py): the envelope of every event it applies, the
terminal status, and the reminder bookkeeping that rule 4's renotify_max decides on."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from domain import events as ev
from domain.commands import Assign, OpenTicket, RequestEscalation, request_use
from domain.decider import Open, decide
from domain.errors import ActionRejected
from domain.policy import DEFAULT_POLICY, Policy
from domain.state import EventMismatch, evolve, fold, reminded, renotify_due, request_used
from tests.test_domain_decider import Story, at
from workflows.carried import Carried


def _next(story: Story, **changes: object) -> ev.DomainEvent:
    """A well-formed next event for the story's ticket, then changed."""
    event = ev.DomainEvent(
        ticket_id=story.ticket_id,
        seq=len(story.events) + 1,
        event_id=uuid4(),
        event_type="CustomerReplied",
        payload={"message": "hi"},
        occurred_at=at(minutes=5),
    )
    return event.model_copy(update=changes)


def test_an_event_of_another_ticket_is_refused_naming_both() -> None:
    story = Story()
    with pytest.raises(EventMismatch, match="is of ticket 'T-2', not of ticket 'T-1'"):
        evolve(story.s, _next(story, ticket_id="T-2"))


@pytest.mark.parametrize("seq", [1, 3, 7])
def test_an_event_out_of_order_is_refused_naming_the_seq_expected(seq: int) -> None:
    story = Story()  # one event applied
    with pytest.raises(EventMismatch, match=rf"has seq {seq}, but 1 events are applied .*seq 2"):
        evolve(story.s, _next(story, seq=seq))
    assert evolve(story.s, _next(story)).version == 2


def test_ticket_opened_must_be_seq_1() -> None:
    opened = Story().events[0]
    with pytest.raises(EventMismatch, match="TicketOpened has seq 2"):
        evolve(None, opened.model_copy(update={"seq": 2}))
    assert fold([opened]) is not None


def test_only_a_closed_ticket_is_terminal() -> None:
    story = Story()
    assert not story.s.is_terminal
    story.act("resolve", at(minutes=1), agent_id="ann", resolution="done")
    assert not story.s.is_terminal  # a resolved ticket can still reopen
    story.act("close", at(minutes=2), agent_id="ann")
    assert story.s.is_terminal


def test_reminders_stop_at_renotify_max_as_the_state_counts_them() -> None:
    story = Story("urgent", policy=DEFAULT_POLICY.model_copy(update={"renotify_max": 2}))
    story.act("respond", at(minutes=1), agent_id="ann")
    story.run_until(at(hours=4))  # resolution breached at the top tier
    first = renotify_due(story.s)
    assert first == at(hours=5)
    once = reminded(story.s, first)
    assert (once.reminders_sent, once.last_reminder_at) == (1, first)
    second = renotify_due(once)
    assert second == first + timedelta(hours=1)
    assert renotify_due(reminded(once, second)) is None  # renotify_max reached


def test_the_count_survives_in_the_state_a_continued_run_carries() -> None:
    story = Story("urgent")
    state = reminded(story.s, at(hours=5))
    again = Carried.model_validate_json(Carried(state=state).model_dump_json()).state
    assert again is not None and again.reminders_sent == 1
    assert again.last_reminder_at == at(hours=5)


def test_a_request_id_is_bound_to_action_agent_and_payload() -> None:
    story = Story()
    story.act("assign", at(minutes=1), agent_id="amy", request_id="r-1")
    first = Assign(agent_id="amy", request_id="r-1")
    bound = request_used(story.s, "r-1", request_use(first))
    assert decide(bound, first, at(minutes=2)) == []  # the same again: a no-op
    for other in (
        Assign(agent_id="bob", request_id="r-1"),
        Assign(agent_id="amy", assignee="carl", request_id="r-1"),
        RequestEscalation(agent_id="amy", reason="x", request_id="r-1"),
    ):
        with pytest.raises(
            ActionRejected, match=r"^request_id r-1 was already used for assign by amy$"
        ):
            decide(bound, other, at(minutes=2))
    # a ticket folded from the store (or opened before) knows the id, not its use: a no-op
    assert decide(story.s, Assign(agent_id="bob", request_id="r-1"), at(minutes=2)) == []
    assert request_use(first) != request_use(Assign(agent_id="amy", assignee="amy", request_id="x"))


def test_tickets_that_recorded_the_same_policy_share_one_policy_object() -> None:
    first, second = Story(ticket_id="T-1"), Story(ticket_id="T-2")
    # Each evolved its own TicketOpened payload (a dict), yet they hold one object.
    assert first.events[0].payload["policy"] is not second.events[0].payload["policy"]
    assert first.s.policy is second.s.policy
    folded = fold(first.events)  # a replay's fold shares it too
    assert folded is not None and folded.policy is first.s.policy


def test_a_changed_policy_is_not_shared_with_the_old_one() -> None:
    changed = DEFAULT_POLICY.model_copy(update={"warn_at": 0.5})
    old, new = Story(ticket_id="T-1"), Story(ticket_id="T-2", policy=changed)
    assert new.s.policy is not old.s.policy
    assert new.s.policy.warn_at == 0.5 and old.s.policy.warn_at == DEFAULT_POLICY.warn_at
    assert Story(ticket_id="T-3", policy=changed).s.policy is new.s.policy


def test_a_shared_policy_is_never_one_that_differs_by_value() -> None:
    """Even when two policies record alike (the key), the one handed out equals the asked."""
    from domain import policy as pol

    one = DEFAULT_POLICY.model_copy(update={"name": "one"})
    assert pol.shared_policy(one) is one
    key = one.model_dump_json()
    impostor = one.model_copy(update={"renotify_max": one.renotify_max + 1})
    pol._SHARED[key] = impostor  # as if a lossy record made two unequal policies collide
    try:
        assert pol.shared_policy(one) is one
    finally:
        pol._SHARED.pop(key, None)


def test_a_state_carried_across_continue_as_new_shares_its_policy() -> None:
    story = Story()
    text = Carried(state=story.s).model_dump_json()
    one, two = (Carried.model_validate_json(text).state for _ in range(2))
    assert one is not None and two is not None and one is not two
    assert one.policy is two.policy is story.s.policy
    assert one == story.s  # nothing else changed on the way


def _opened(ticket_id: str, policy: Policy = DEFAULT_POLICY) -> ev.DomainEvent:
    """TicketOpened as the workflow records it (ev.recorded_payload)."""
    ticket = OpenTicket(ticket_id=ticket_id, subject="s", customer_id="acme")
    [data] = [
        d
        for d in decide(None, Open(ticket=ticket, policy=policy), at())
        if d.event_type == "TicketOpened"
    ]
    return ev.DomainEvent(
        ticket_id=ticket_id,
        seq=1,
        event_id=uuid4(),
        event_type=data.event_type,
        payload=ev.recorded_payload(data),
        occurred_at=at(),
    )


def test_recorded_ticket_opened_payloads_share_the_policy_dict_and_record_the_same() -> None:
    one, two = _opened("T-1"), _opened("T-2")
    assert one.payload["policy"] is two.payload["policy"]
    assert one.payload["policy"] == DEFAULT_POLICY.model_dump(mode="json")
    assert ev.DomainEvent.model_validate_json(one.model_dump_json()) == one  # records alike
    changed = _opened("T-3", DEFAULT_POLICY.model_copy(update={"warn_at": 0.5}))
    assert changed.payload["policy"] is not one.payload["policy"]
    assert changed.payload["policy"]["warn_at"] == 0.5


def test_the_shared_recorded_policies_stay_bounded() -> None:
    from domain import policy as pol

    for n in range(pol.RECORDED_POLICIES_KEPT + 10):
        pol.shared_recorded_policy({"name": f"p{n}"})
    assert len(pol._RECORDED) == pol.RECORDED_POLICIES_KEPT
    assert '{"name":"p0"}' not in pol._RECORDED  # the oldest went first
