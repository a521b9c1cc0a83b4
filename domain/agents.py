"""The agent directory and who may act on which ticket (pure; loaded from TOML).

An agent may act on a ticket at a tier it belongs to; a lead also on every tier below its
highest one; a manager anywhere. Unknown agents are refused. Without a directory the system runs
open and everyone may act.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.errors import DomainError, describe_validation_error
from domain.policy import Policy

Role = Literal["agent", "lead", "manager"]
_AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# What a token may do: every action by its name, and `open` (the right to open tickets).
OPEN_RIGHT = "open"


def _token_sha256(value: str | None) -> str | None:
    if value is not None and not _SHA256_HEX.match(value):
        raise ValueError("token_sha256 must be 64 lowercase hex digits (sha256sum of the token)")
    return value


class DirectoryError(DomainError):
    """The agent directory file is not valid."""


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str = Field(min_length=1, max_length=200)
    tiers: tuple[str, ...] = ()  # the teams the agent works in
    role: Role = "agent"
    away: bool = False  # never chosen by a team's assignment while away
    capacity: int | None = Field(None, ge=1, le=100_000)  # open tickets assigned, at most
    # The HTTP API's static token (its SHA-256, never the token) and what it may do; an
    # agent without `may` may open tickets and take every action (the workflow still
    # decides, by tier, whether this agent may act on a given ticket).
    token_sha256: str | None = None
    may: tuple[str, ...] | None = None

    _token = field_validator("token_sha256")(_token_sha256)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _AGENT_ID.match(value):
            raise ValueError(
                f"agent id {value!r} must be 1-128 letters, digits, '.', '_', '@', '-'"
            )
        return value


class Service(BaseModel):
    """A backend service calling the HTTP API: no tiers, only the rights listed in `may`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str | None = Field(None, min_length=1, max_length=200)
    token_sha256: str | None = None
    may: tuple[str, ...]

    _token = field_validator("token_sha256")(_token_sha256)


class AgentDirectory(BaseModel):
    model_config = ConfigDict(frozen=True)

    agents: dict[str, Agent]
    services: dict[str, Service] = {}


class AuthorizationRequest(BaseModel):
    ticket_id: str
    action: str
    agent_id: str
    assignee: str | None = None
    tier: str
    tiers: tuple[str, ...]  # the ticket's policy ladder, lowest first
    # The call itself, for the signed principal (domain/principal.py); None from old callers.
    workflow_id: str | None = None
    principal: str | None = None  # the `escalation-principal` header as it came
    digest: str | None = None  # principal.payload_digest of the action's payload


class Decision(BaseModel):
    allowed: bool
    reason: str | None = None
    directory: bool  # False: no directory configured, the system runs open


def parse_directory(
    text: str, source: str = "<agents>", rights: frozenset[str] | None = None
) -> AgentDirectory:
    """`rights`: the names `may` lists may use (the actions and `open`); None: not checked."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"agents", "services"})
    if unknown:
        raise DirectoryError(f"{source}: unknown top-level key(s): {', '.join(unknown)}")
    tables = data.get("agents")
    if not isinstance(tables, dict) or not tables:
        raise DirectoryError(f"{source}: no [agents.<id>] table found")
    services = _parse_services(data.get("services", {}), source, rights)
    agents: dict[str, Agent] = {}
    for agent_id, table in tables.items():
        where = f"agents.{agent_id}"
        if not isinstance(table, dict):
            raise DirectoryError(f"{source}: {where} must be a table")
        if "id" in table:
            raise DirectoryError(f"{source}: {where}.id: unknown field (the table key is the id)")
        try:
            agent = Agent.model_validate({**table, "id": agent_id})
        except ValidationError as exc:
            raise DirectoryError(f"{source}: {describe_validation_error(exc, where)}") from exc
        if agent.role != "manager" and not agent.tiers:
            raise DirectoryError(
                f"{source}: {where}.tiers: role {agent.role} needs at least one tier"
            )
        _check_rights(agent.may, f"{source}: {where}.may", rights)
        agents[agent_id] = agent
    digests = [a.token_sha256 for a in agents.values() if a.token_sha256]
    digests += [s.token_sha256 for s in services.values() if s.token_sha256]
    if len(digests) != len(set(digests)):
        raise DirectoryError(f"{source}: two tables have the same token_sha256")
    return AgentDirectory(agents=agents, services=services)


def _parse_services(
    tables: object, source: str, rights: frozenset[str] | None
) -> dict[str, Service]:
    if not isinstance(tables, dict):
        raise DirectoryError(f"{source}: services must be tables [services.<id>]")
    services: dict[str, Service] = {}
    for service_id, table in tables.items():
        where = f"services.{service_id}"
        if not isinstance(table, dict):
            raise DirectoryError(f"{source}: {where} must be a table")
        if "id" in table:
            raise DirectoryError(f"{source}: {where}.id: unknown field (the table key is the id)")
        if not _AGENT_ID.match(service_id):
            raise DirectoryError(
                f"{source}: {where}: the id must be letters, digits, '.', '_', '@', '-'"
            )
        try:
            service = Service.model_validate({**table, "id": service_id})
        except ValidationError as exc:
            raise DirectoryError(f"{source}: {describe_validation_error(exc, where)}") from exc
        _check_rights(service.may, f"{source}: {where}.may", rights)
        services[service_id] = service
    return services


def _check_rights(may: tuple[str, ...] | None, where: str, rights: frozenset[str] | None) -> None:
    if may is None or rights is None:
        return
    unknown = [r for r in may if r not in rights]
    if unknown:
        raise DirectoryError(
            f"{where}: unknown right(s) {', '.join(map(repr, unknown))};"
            f" known: {', '.join(sorted(rights))}"
        )


def check_tiers(directory: AgentDirectory, policies: Mapping[str, Policy], source: str) -> None:
    """Every tier (team) an agent works must be on some policy's path: a typo (`L9`) would
    otherwise leave that agent refused everywhere, silently."""
    known = {t for p in policies.values() for t in p.all_teams()}
    for agent in directory.agents.values():
        for tier in agent.tiers:
            if tier not in known:
                names = ", ".join(sorted(known))
                raise DirectoryError(
                    f"{source}: agents.{agent.id}.tiers: {tier!r} is not a tier of any policy"
                    f" (tiers: {names})"
                )


def check_teams(directory: AgentDirectory, policies: Mapping[str, Policy], source: str) -> None:
    """Every team a policy names in `paths` or `teams` must have an agent in the directory,
    so a typo never leaves a team nobody can be assigned in."""
    known = {t for a in directory.agents.values() for t in a.tiers}
    for name, policy in policies.items():
        named = [(f"paths.{p}.tiers", t) for p, spec in policy.paths.items() for t in spec.tiers]
        named += [(f"teams.{t}", t) for t in policy.teams]
        for key, team in named:
            if team not in known:
                raise DirectoryError(
                    f"{source}: policies.{name}.{key}: team {team!r} has no agent in the"
                    f" agent directory (add an agent with {team!r} in its tiers)"
                )


def _may_work(agent: Agent, tier: str, ladder: tuple[str, ...]) -> bool:
    if agent.role == "manager" or tier in agent.tiers:
        return True
    if agent.role == "lead" and tier in ladder:
        known = [ladder.index(t) for t in agent.tiers if t in ladder]
        return bool(known) and ladder.index(tier) < max(known)
    return False


def authorize(directory: AgentDirectory | None, req: AuthorizationRequest) -> Decision:
    if directory is None:
        return Decision(allowed=True, directory=False)

    def deny(reason: str) -> Decision:
        return Decision(allowed=False, reason=reason, directory=True)

    agent = directory.agents.get(req.agent_id)
    if agent is None:
        return deny(f"unknown agent {req.agent_id!r}; cannot {req.action} ticket {req.ticket_id}")
    if not _may_work(agent, req.tier, req.tiers):
        return deny(
            f"agent {agent.id} may not act on ticket {req.ticket_id} at tier {req.tier}"
            f" ({agent.id} is {agent.role} of {', '.join(agent.tiers) or 'no tier'})"
        )
    if req.assignee is not None and req.assignee != req.agent_id:
        assignee = directory.agents.get(req.assignee)
        if assignee is None:
            return deny(f"unknown assignee {req.assignee!r} for ticket {req.ticket_id}")
        if not _may_work(assignee, req.tier, req.tiers):
            return deny(
                f"assignee {assignee.id} does not work tier {req.tier} of ticket {req.ticket_id}"
            )
    return Decision(allowed=True, directory=True)
