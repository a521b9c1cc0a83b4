"""Authorization against the agent directory file, re-read when it changes (no restart)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import structlog
from temporalio import activity

from domain.agents import (
    AgentDirectory,
    AuthorizationRequest,
    Decision,
    DirectoryError,
    authorize,
    check_tiers,
)
from domain.policy import Policy
from domain.principal import PrincipalKeys, verify
from runtime.config_files import load_directory

log = structlog.get_logger(__name__)


class AgentActivities:
    """Holds the directory; the workflow records each decision (a local activity marker), so a
    replay never consults the file again."""

    def __init__(
        self,
        path: str | Path | None,
        policies: Mapping[str, Policy] | None = None,
        *,
        principal_keys: PrincipalKeys | None = None,
        require_principal: bool = False,
    ) -> None:
        self._principal_keys = principal_keys
        self._require_principal = require_principal
        self._path = Path(path) if path else None
        self._policies = policies  # given: every tier in the directory must be one of theirs
        self._stamp: tuple[int, int] | None = None
        self._directory: AgentDirectory | None = None
        if self._path is not None:
            self._reload()  # a bad file stops the worker at start

    def _reload(self) -> None:
        assert self._path is not None
        stat = os.stat(self._path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        directory = load_directory(self._path)
        if self._policies is not None:
            check_tiers(directory, self._policies, str(self._path))
        self._directory = directory
        self._stamp = stamp
        log.info("agent directory loaded", path=str(self._path), agents=len(self._directory.agents))

    def directory(self) -> AgentDirectory | None:
        if self._path is None:
            return None
        try:
            self._reload()
        except (OSError, DirectoryError) as exc:
            # Keep deciding with the last good directory: never fall back to running open.
            log.error("agent directory not reloaded; keeping the previous one", error=str(exc))
        return self._directory

    @activity.defn(name="authorize")
    async def authorize(self, request: AuthorizationRequest) -> Decision:
        directory = self.directory()
        decision = self._check_principal(request, directory is not None)
        if decision is None:
            decision = authorize(directory, request)
        if not decision.allowed:
            log.info(
                "action refused",
                ticket_id=request.ticket_id,
                action=request.action,
                agent_id=request.agent_id,
                reason=decision.reason,
            )
        return decision

    @activity.defn(name="authorize_batch")
    async def authorize_batch(self, requests: list[AuthorizationRequest]) -> list[Decision]:
        """Several actions of one ticket in one call: a flood of actions costs the ticket one
        local activity (one marker) per batch instead of one each. Answers in request order."""
        return [await self.authorize(request) for request in requests]

    def _check_principal(self, request: AuthorizationRequest, directory: bool) -> Decision | None:
        """A refusal when a principal is required and this call's is missing or invalid."""
        if not self._require_principal:
            return None
        reason = verify(
            self._principal_keys,
            request.principal,
            workflow_id=request.workflow_id or "",
            action=request.action,
            agent_id=request.agent_id,
            digest=request.digest or "",
            now=int(time.time()),
        )
        if reason is None:
            return None
        return Decision(allowed=False, reason=reason, directory=directory)
