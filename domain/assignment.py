"""Choosing an assignee for a team (pure): who is eligible, round robin and least loaded.

The inputs are I/O (the agent directory, every agent's load, the team's cursor), so the
workflow asks a local activity, which reads them under a lock and calls `choose`; the answer
is recorded as an event, and replay never reads the directory again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pydantic import BaseModel

from domain.agents import Agent
from domain.policy import Assignment
from domain.state import TicketState


class ChoiceRequest(BaseModel):
    """What the workflow asks for: a choice at one team visit. (ticket_id, visit, attempt)
    identifies it, so a retried activity returns the claim it already made."""

    ticket_id: str
    team: str
    mode: Assignment
    visit: int
    attempt: int
    excluded: tuple[str, ...] = ()
    seq: int  # the ticket's version when it asked: the claim reflects events up to it


class Choice(BaseModel):
    """The answer: an agent, or None with the reason nobody could take the ticket."""

    agent_id: str | None
    reason: str | None = None


def choice_request(state: TicketState) -> ChoiceRequest:
    return ChoiceRequest(
        ticket_id=state.ticket_id,
        team=state.tier,
        mode=state.team.assignment,
        visit=state.visit,
        attempt=state.choice_attempt,
        excluded=state.timed_out,
        seq=state.version,
    )


def members(agents: Mapping[str, Agent], team: str) -> list[Agent]:
    """The directory's agents of a team, in id order (the round robin's order)."""
    return sorted((a for a in agents.values() if team in a.tiers), key=lambda a: a.id)


def eligible(
    team_agents: Sequence[Agent], loads: Mapping[str, int], excluded: Collection[str] = ()
) -> list[Agent]:
    """Not away, below capacity (no limit if unset), not excluded; in the given order."""
    return [
        a
        for a in team_agents
        if not a.away
        and a.id not in excluded
        and (a.capacity is None or loads.get(a.id, 0) < a.capacity)
    ]


def _after(cursor: str | None, candidates: list[Agent]) -> list[Agent]:
    """Candidates in round-robin order: the first after `cursor` (by id), wrapping around."""
    if cursor is None:
        return candidates
    later = [a for a in candidates if a.id > cursor]
    return later + [a for a in candidates if a.id <= cursor]


def choose(
    team_agents: Sequence[Agent],
    loads: Mapping[str, int],
    cursor: str | None,
    excluded: Collection[str] = (),
    mode: Assignment = "round_robin",
) -> Agent | None:
    """`round_robin`: the next eligible agent after the team's last auto-assignee (`cursor`);
    `least_loaded`: the eligible agent with the fewest open tickets, ties by round robin."""
    if mode == "manual":
        return None
    ordered = _after(cursor, eligible(sorted(team_agents, key=lambda a: a.id), loads, excluded))
    if not ordered:
        return None
    if mode == "least_loaded":
        fewest = min(loads.get(a.id, 0) for a in ordered)
        ordered = [a for a in ordered if loads.get(a.id, 0) == fewest]
    return ordered[0]


def nobody_reason(
    team: str, team_agents: Sequence[Agent], loads: Mapping[str, int], excluded: Collection[str]
) -> str:
    """Why `choose` found nobody, for AssignmentUnavailable and the team's notice."""
    if not team_agents:
        return f"team {team} has no agents in the directory"
    away = sum(1 for a in team_agents if a.away)
    out = sum(1 for a in team_agents if a.id in excluded)
    full = sum(
        1
        for a in team_agents
        if not a.away and a.capacity is not None and loads.get(a.id, 0) >= a.capacity
    )
    parts = [f"{away} away" if away else "", f"{full} at capacity" if full else ""]
    parts.append(f"{out} did not acknowledge" if out else "")
    detail = ", ".join(p for p in parts if p)
    return f"no agent of team {team} is available ({len(team_agents)} agents: {detail})"
