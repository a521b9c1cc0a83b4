"""Property tests of policy rules on random ticket lives (docs/rules.md#rules).

- every rule fires exactly once per event of its trigger that an action or a timer caused, and
  never on an event a rule caused (no cascades), however the rules' effects feed each other;
- every event a rule caused follows that rule's RuleFired at the same instant;
- an elapsed rule fires at most once per since moment, and exactly at since + after of active
  time, against the minute-stepping oracle of tests/test_domain_business_hours.py with pauses
  and business hours.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain import events as ev
from domain.errors import ActionRejected
from domain.policy import Policy
from domain.rule_engine import TRIGGERS, caused_by_rule
from tests.test_domain_business_hours import MINUTE, Case, anchors, oracle_minutes, weeks
from tests.test_domain_rules import T0, Ticket, policy

# One rule on every trigger, with effects that are themselves triggers of other rules: a
# cascade, if there were one, would show as a firing without its own trigger event.
CHAIN: tuple[dict[str, Any], ...] = (
    {"name": "on-open", "on": "opened", "then": {"add_tags": ["seen"]}},
    {"name": "on-priority", "on": "priority_changed", "then": {"add_tags": ["re-prioritised"]}},
    {"name": "on-reply", "on": "customer_replied", "then": {"escalate_to": "next"}},
    {"name": "on-tags", "on": "tags_changed", "then": {"set_priority": "high"}},
    {"name": "on-warning", "on": "sla_warning", "then": {"transfer_to": "billing"}},
    {"name": "on-breach", "on": "sla_breached", "then": {"remove_tags": ["seen"]}},
    {"name": "on-escalated", "on": "escalated", "then": {"set_priority": "urgent"}},
    {"name": "on-transfer", "on": "transferred", "then": {"escalate_to": "next"}},
    {"name": "quiet", "on": "elapsed", "after": "45m", "since": "opened", "then": {"notify": "q"}},
    {
        "name": "stale",
        "on": "elapsed",
        "after": "20m",
        "since": "customer_replied",
        "then": {"escalate_to": "next", "add_tags": ["stale"]},
    },
    {
        "name": "tier",
        "on": "elapsed",
        "after": "30m",
        "since": "tier_entered",
        "then": {"notify": "t"},
    },
    {
        "name": "nudge",
        "on": "elapsed",
        "after": "15m",
        "since": "agent_responded",
        "then": {"add_tags": ["nudged"]},
    },
)

ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("assign", {"agent_id": "ann"}),
    ("respond", {"agent_id": "ann"}),
    ("await_customer", {"agent_id": "ann"}),
    ("customer_replied", {}),
    ("change_priority", {"agent_id": "ann", "priority": "urgent"}),
    ("change_priority", {"agent_id": "ann", "priority": "low"}),
    ("tag", {"agent_id": "ann", "add": ["vip"]}),
    ("tag", {"agent_id": "ann", "remove": ["vip", "seen"]}),
    ("request_escalation", {"agent_id": "ann", "reason": "x"}),
    ("transfer", {"agent_id": "ann", "path": "default", "reason": "back"}),
    ("transfer", {"agent_id": "ann", "path": "billing", "reason": "money"}),
    ("resolve", {"agent_id": "ann", "resolution": "done"}),
    ("reopen", {"agent_id": "ann"}),
]

lives = st.lists(st.tuples(st.integers(0, 90), st.sampled_from(range(len(ACTIONS)))), max_size=25)


def live(p: Policy, steps: list[tuple[int, int]], **ticket: Any) -> Ticket:
    t = Ticket(p, **ticket)
    now = T0
    for gap, index in steps:
        now += timedelta(minutes=gap)
        t.run_until(now)
        name, payload = ACTIONS[index]
        try:
            t.act(name, now, **payload)
        except ActionRejected:
            pass
    t.run_until(now + timedelta(hours=6))
    return t


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    steps=lives,
    priority=st.sampled_from(["urgent", "high", "normal", "low"]),
    tags=st.sampled_from([[], ["vip"]]),
)
@pytest.mark.slow
def test_each_rule_fires_once_per_trigger_and_never_on_what_rules_caused(
    steps: list[tuple[int, int]], priority: str, tags: list[str]
) -> None:
    t = live(policy(*CHAIN), steps, priority=priority, tags=tags)
    triggers: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    elapsed_moments: Counter[tuple[str, str]] = Counter()
    firing: dict[str, Any] = {}  # rule -> time of its last RuleFired
    for e in t.events:
        data = e.data()
        if isinstance(data, ev.RuleFired):
            fired[data.rule] += 1
            firing[data.rule] = e.occurred_at
            if data.on == "elapsed":
                assert data.since is not None
                elapsed_moments[(data.rule, data.since.isoformat())] += 1
            continue
        rule = getattr(data, "rule", None)
        if rule is not None:
            assert firing.get(rule) == e.occurred_at, f"{e.event_type} names {rule} unfired"
        elif type(data) in TRIGGERS:
            triggers[TRIGGERS[type(data)]] += 1
        assert not (caused_by_rule(data) and rule is None)
    for r in CHAIN:
        if r["on"] != "elapsed":
            assert fired[r["name"]] == triggers[r["on"]], r["name"]
    assert all(n == 1 for n in elapsed_moments.values())


# --- elapsed against the minute oracle ----------------------------------------------------------

ZONE = "Europe/Berlin"


@st.composite
def pauses(draw: st.DrawFn) -> list[tuple[int, int | None]]:
    """Pending periods in minutes from the open: ordered, may touch or be empty, the last may
    never end."""
    points = sorted(draw(st.lists(st.integers(0, 4 * 1440), max_size=6)))
    out: list[tuple[int, int | None]] = [
        (points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)
    ]
    if draw(st.booleans()):
        out.append((draw(st.integers(out[-1][1] if out and out[-1][1] else 0, 5 * 1440)), None))
    return out


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    week=weeks(ZONE),
    start=anchors(ZONE),
    after=st.integers(1, 2000),
    pending=pauses(),
)
@pytest.mark.slow
def test_an_elapsed_rule_fires_exactly_at_since_plus_after_of_active_time(
    week: Any, start: Any, after: int, pending: list[tuple[int, int | None]]
) -> None:
    case = Case(ZONE, week, set(), {}, "pep495", start, 0, pending)
    horizon = start + timedelta(days=40)
    active = (u for u, paused in oracle_minutes(case, horizon) if not paused)
    expected = None
    for n, u in enumerate(active, 1):
        if n == after:
            expected = u + MINUTE
            break
    assume(expected is not None)
    data = policy(
        {
            "name": "elapsed",
            "on": "elapsed",
            "after": f"{after}m",
            "since": "opened",
            "then": {"notify": "x"},
        }
    ).model_dump(mode="json")
    data.update(calendar="random", calendar_spec=case.spec.model_dump(mode="json"))
    p = Policy.model_validate(data)
    t = Ticket(p, opened_at=start)
    for pause_start, pause_end in pending:
        t.run_until(start + pause_start * MINUTE)
        t.act("await_customer", start + pause_start * MINUTE, agent_id="ann")
        if pause_end is None:
            break
        t.run_until(start + pause_end * MINUTE)
        t.act("customer_replied", start + pause_end * MINUTE)
    t.run_until(horizon)
    assert t.fired() == [("elapsed", expected)]
