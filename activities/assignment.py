"""The team's choice of an assignee: a local activity reading the directory and the loads.

The workflow records the answer (a local-activity marker, then an event), so a replay never
reads the directory or the database again. The claim it writes is idempotent per (ticket,
team visit, attempt); see store/assignments.py for how concurrent choices stay consistent.
"""

from __future__ import annotations

import asyncpg
import structlog
from temporalio import activity

from activities.agents import AgentActivities
from domain.assignment import Choice, ChoiceRequest, choose, members, nobody_reason
from store.assignments import claim_assignee

log = structlog.get_logger(__name__)


class AssignmentActivities:
    def __init__(self, pool: asyncpg.Pool, agents: AgentActivities) -> None:
        self._pool = pool
        self._agents = agents

    @activity.defn(name="choose_assignee")
    async def choose_assignee(self, request: ChoiceRequest) -> Choice:
        directory = self._agents.directory()
        if directory is None:
            return Choice(
                agent_id=None,
                reason="no agent directory is configured (ESCALATION_AGENTS_FILE)",
            )
        team = members(directory.agents, request.team)
        by_id = {a.id: a for a in team}

        def pick(loads: dict[str, int], cursor: str | None) -> str | None:
            chosen = choose(team, loads, cursor, request.excluded, request.mode)
            return chosen.id if chosen is not None else None

        claim = await claim_assignee(
            self._pool,
            ticket_id=request.ticket_id,
            team=request.team,
            visit=request.visit,
            attempt=request.attempt,
            as_of_seq=request.seq,
            candidates=list(by_id),
            pick=pick,
        )
        if claim.agent_id is None:
            reason = nobody_reason(request.team, team, claim.loads, request.excluded)
            log.info("nobody to assign", ticket_id=request.ticket_id, team=request.team)
            return Choice(agent_id=None, reason=reason)
        log.info(
            "assignee chosen",
            ticket_id=request.ticket_id,
            team=request.team,
            agent_id=claim.agent_id,
            mode=request.mode,
            repeated=claim.repeated,
        )
        return Choice(agent_id=claim.agent_id)
