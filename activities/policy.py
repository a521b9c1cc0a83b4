"""Resolve an SLA policy by name from the worker's configuration (file or built-ins)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.policy import Policy


class PolicyActivities:
    def __init__(self, policies: dict[str, Policy]) -> None:
        self._policies = policies

    @activity.defn(name="resolve_policy")
    async def resolve_policy(self, name: str) -> Policy:
        policy = self._policies.get(name)
        if policy is None:
            known = ", ".join(sorted(self._policies))
            raise ApplicationError(
                f"policy: unknown policy {name!r}; this worker knows: {known}",
                type="UnknownPolicy",
                non_retryable=True,
            )
        return policy
