"""SLA policies: targets per priority, the tier ladder, and loading them from TOML.

A policy is resolved once when a ticket opens and recorded in `TicketOpened`, so a later change
to the policy file never changes the clocks of tickets already open.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from domain.durations import MAX_DURATION, format_duration, parse_duration
from domain.errors import PolicyError, describe_validation_error

Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")
ALWAYS = "always"
_TIER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _to_timedelta(value: Any) -> Any:
    """Durations are written as text (`15m`); a timedelta is accepted from code, whole seconds."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        if value.microseconds or value <= timedelta(0) or value > MAX_DURATION:
            raise ValueError(f"duration {value} must be whole seconds between 1s and 3650d")
        return value
    raise ValueError(f"duration must be text such as '90s', '4h' or '1h30m', got {value!r}")


# Written and read as `15m`/`1h30m`, so a recorded policy reads like the file it came from.
Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str),
]


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    first_response: Duration
    resolution: Duration
    tier_budget: Duration

    @field_validator("first_response", "resolution", "tier_budget")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be greater than zero")
        return value


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tiers: tuple[str, ...] = Field(min_length=1)
    calendar: str = ALWAYS
    warn_at: float = Field(0.8, gt=0, lt=1)
    auto_close_after: Duration = timedelta(hours=72)
    renotify_every: Duration = timedelta(hours=1)
    targets: dict[Priority, Targets]

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: tuple[str, ...]) -> tuple[str, ...]:
        for tier in tiers:
            if not _TIER_NAME.match(tier):
                raise ValueError(f"tier name {tier!r} must be 1-32 letters, digits, '_' or '-'")
        if len(set(tiers)) != len(tiers):
            raise ValueError(f"tier names must be unique, got {list(tiers)}")
        return tiers

    @field_validator("targets")
    @classmethod
    def _all_priorities(cls, targets: dict[str, Targets]) -> dict[str, Targets]:
        missing = [p for p in PRIORITIES if p not in targets]
        if missing:
            raise ValueError(f"missing targets for priorities: {', '.join(missing)}")
        return targets

    @property
    def top_tier(self) -> str:
        return self.tiers[-1]

    def targets_for(self, priority: Priority) -> Targets:
        return self.targets[priority]


def _targets(fr: str, res: str, budget: str) -> dict[str, str]:
    return {"first_response": fr, "resolution": res, "tier_budget": budget}


DEFAULT_POLICY = Policy.model_validate(
    {
        "name": "default",
        "tiers": ["L1", "L2", "L3"],
        "targets": {
            "urgent": _targets("15m", "4h", "1h"),
            "high": _targets("1h", "8h", "2h"),
            "normal": _targets("4h", "24h", "8h"),
            "low": _targets("8h", "72h", "24h"),
        },
    }
)

# Seconds instead of hours, so the dev stack shows warnings, breaches and escalations in a minute.
DEMO_POLICY = Policy.model_validate(
    {
        "name": "demo",
        "tiers": ["L1", "L2", "L3"],
        "warn_at": 0.8,
        "auto_close_after": "2m",
        "renotify_every": "30s",
        "targets": {
            "urgent": _targets("20s", "2m", "30s"),
            "high": _targets("30s", "3m", "45s"),
            "normal": _targets("45s", "5m", "1m"),
            "low": _targets("1m", "10m", "2m"),
        },
    }
)

BUILTIN_POLICIES: dict[str, Policy] = {p.name: p for p in (DEFAULT_POLICY, DEMO_POLICY)}


def parse_policies(text: str, source: str = "<policy>") -> dict[str, Policy]:
    """Parse a policy file; the built-in policies stay available unless the file redefines them."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"policies"})
    if unknown:
        raise PolicyError(f"{source}: unknown top-level key(s): {', '.join(unknown)}")
    tables = data.get("policies", {})
    if not isinstance(tables, dict) or not tables:
        raise PolicyError(f"{source}: no [policies.<name>] table found")
    policies = dict(BUILTIN_POLICIES)
    for name, table in tables.items():
        where = f"policies.{name}"
        if not isinstance(table, dict):
            raise PolicyError(f"{source}: {where} must be a table")
        if "name" in table:
            raise PolicyError(f"{source}: {where}.name: unknown field (the table key is the name)")
        try:
            policy = Policy.model_validate({**table, "name": name})
        except ValidationError as exc:
            raise PolicyError(f"{source}: {describe_validation_error(exc, where)}") from exc
        if policy.calendar != ALWAYS:
            raise PolicyError(
                f"{source}: {where}.calendar: unknown calendar {policy.calendar!r}"
                f" (defined: {ALWAYS!r})"
            )
        policies[name] = policy
    return policies


def load_policies(path: str | Path | None) -> dict[str, Policy]:
    """The policies a worker serves: the built-ins, plus the file's if a path is given."""
    if path is None or str(path) == "":
        return dict(BUILTIN_POLICIES)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read policy file: {exc.strerror or exc}") from exc
    return parse_policies(text, str(file))
