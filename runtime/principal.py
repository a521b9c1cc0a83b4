"""ESCALATION_PRINCIPAL_KEYS and ESCALATION_REQUIRE_PRINCIPAL, read once at start by the
worker and the HTTP API (domain/principal.py says what they mean)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from domain.principal import KEYS_ENV, REQUIRE_ENV, PrincipalKeys, parse_keys
from runtime.config import OFF

ON = {"on", "1", "true", "yes"}


@dataclass(frozen=True)
class PrincipalSettings:
    keys: PrincipalKeys | None = None
    required: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PrincipalSettings:
        """ValueError naming the variable for a bad value, or for a requirement without keys."""
        e = os.environ if env is None else env
        keys = parse_keys(e.get(KEYS_ENV))
        raw = (e.get(REQUIRE_ENV) or "false").strip().lower()
        if raw not in ON | OFF:
            raise ValueError(f"{REQUIRE_ENV}={raw!r}: use true or false")
        required = raw in ON
        if required and keys is None:
            raise ValueError(f"{REQUIRE_ENV}=true needs {KEYS_ENV} to verify principals with")
        return cls(keys=keys, required=required)
