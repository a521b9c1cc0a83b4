"""`escalation-readside rules explain`: a ticket's rules, as text (the logic is
domain/rules_explain.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from domain.durations import format_duration
from domain.rules import Rule
from domain.rules_explain import Verdict
from reports.printable import visible


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _heading(rule: Rule) -> str:
    on: str = rule.on
    if rule.after is not None and rule.since is not None:
        on = f"elapsed, {format_duration(rule.after)} after {rule.since}"
    conditions = rule.conditions.model_dump(mode="json")
    given = " and ".join(f"{k} {v}" for k, v in conditions.items()) or "always"
    effects = ", ".join(f"{k} {v}" for k, v in rule.then.model_dump(mode="json").items())
    return f"{visible(rule.name)} (on {on}; if {given}; then {effects})"


def render_explanation(
    ticket_id: str, source: str, verdicts: Sequence[Verdict], *, recorded: bool
) -> str:
    """One block per rule: when it fired (recorded rules) or would have (a policy file), the
    triggers it let pass and why, and when an elapsed rule would fire next."""
    did = "fired" if recorded else "would have fired"
    out = [f"ticket {visible(ticket_id)}: {len(verdicts)} rule(s) from {visible(source)}"]
    if not verdicts:
        out.append("  (no rules)")
    for v in verdicts:
        out.append("")
        out.append(_heading(v.rule))
        for at, what in v.fired:
            out.append(f"  {did} {_when(at)} on {what}")
        for at, what, why in v.missed:
            out.append(f"  not on {what} {_when(at)}: {visible(why)}")
        if v.next_due is not None:
            out.append(f"  would fire {_when(v.next_due)} if nothing changes before")
        if v.waiting is not None:
            out.append(f"  {visible(v.waiting)}")
        if not (v.fired or v.missed or v.next_due or v.waiting):
            trigger = "its clock has not started" if v.rule.on == "elapsed" else "no such event"
            out.append(f"  never triggered: {trigger}")
    return "\n".join(out) + "\n"
