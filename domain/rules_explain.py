"""`rules explain`: what a set of rules makes of a ticket's stored events (docs/rules.md).

The ticket's events are folded as stored (they are what happened, effects of the rules it had
included); at each event an action or a timer caused, every rule on that trigger is evaluated
against the state right after it, exactly as the decider does; elapsed rules are timed on the
same clocks between the events. The rules' effects are not replayed into the history (it would
be another history): the answer is when each rule fired or would have fired, and why not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from domain import events as ev
from domain.durations import format_duration
from domain.rule_engine import TRIGGERS, caused_by_rule
from domain.rules import Rule, mismatch
from domain.state import TicketState, elapsed_rule_due, evolve


@dataclass
class Verdict:
    """One rule on one ticket: `fired` (at, on what), `missed` (at, on what, why not), and for
    an elapsed rule the next time it would fire if nothing else happened."""

    rule: Rule
    fired: list[tuple[datetime, str]] = field(default_factory=list)
    missed: list[tuple[datetime, str, str]] = field(default_factory=list)
    next_due: datetime | None = None
    waiting: str | None = None  # an elapsed rule due, whose conditions do not hold now


def explain(
    events: Sequence[ev.DomainEvent], rules: Sequence[Rule] | None, now: datetime
) -> list[Verdict]:
    """Each of `rules` (None: the rules the ticket recorded at open) on `events` up to `now`."""
    if not events:
        return []
    state: TicketState | None = None
    verdicts: list[Verdict] = []
    done: set[tuple[str, datetime]] = set()  # elapsed (rule, since) fired in this explanation
    at = events[0].occurred_at

    def with_rules(s: TicketState) -> TicketState:
        return replace(s, policy=s.policy.model_copy(update={"rules": tuple(chosen)}), fired=())

    def elapsed(s: TicketState, until: datetime, final: bool) -> None:
        """Elapsed rules due by `until` (the next event, or now) on the state `s` since `at`."""
        for v in verdicts:
            if v.rule.on != "elapsed":
                continue
            clock = elapsed_rule_due(s, v.rule)
            if clock is None or (v.rule.name, clock[1]) in done:
                continue
            due, since = clock
            why = mismatch(v.rule, s)
            if due <= until and why is None:
                done.add((v.rule.name, since))
                after = format_duration(v.rule.after or timedelta(0))
                v.fired.append((max(due, at), f"elapsed: {after} after {v.rule.since} {_t(since)}"))
            elif final and why is None:
                v.next_due = due
            elif final and due <= until:
                v.waiting = f"due {_t(due)}, waits: {why}"

    chosen: Sequence[Rule] = ()
    for event in events:
        if state is not None:
            elapsed(with_rules(state), event.occurred_at, final=False)
        state = evolve(state, event)
        if rules is None and event.seq == 1:
            chosen = state.policy.rules
        elif event.seq == 1:
            chosen = rules or ()
        if event.seq == 1:
            verdicts = [Verdict(rule=r) for r in chosen]
        at = event.occurred_at
        data = event.data()
        on = TRIGGERS.get(type(data))
        if on is None or caused_by_rule(data):
            continue
        s = with_rules(state)
        metric = getattr(data, "metric", None)
        label = on + (f" ({metric})" if metric else "")
        for v in verdicts:
            if v.rule.on != on:
                continue
            why = mismatch(v.rule, s, metric)
            if why is None and not state.is_terminal:
                v.fired.append((at, label))
            else:
                v.missed.append((at, label, why or "the ticket is closed"))
    assert state is not None
    if not state.is_terminal:
        elapsed(with_rules(state), now, final=True)
    return verdicts


def _t(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")
