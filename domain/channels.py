"""Notification channels: where a ticket's notices go, per policy, tier and kind.

Deployment configuration, not ticket data: channels hold URLs and signing secrets, so they live
in their own TOML file (`ESCALATION_CHANNELS_FILE`), are loaded by the worker, and are never
recorded in a ticket's events. The `notify` activity routes each notice by the ticket's policy
name, the notice's tier and its kind; changing the file (and restarting the worker) changes
where later notices go, for every ticket, without touching any workflow history.

    ticket_url = "https://support.example.com/tickets/{ticket_id}"   # optional link in messages

    [channels.ops-l1]
    type = "webhook"              # JSON body, HMAC-SHA256 signature, Idempotency-Key
    url = "https://ops.example.com/hooks/escalation"
    secret_env = "OPS_WEBHOOK_SECRET"   # or secret = "..." (one of the two; webhook only)
    timeout = "10s"               # optional, 1s..20s (default 10s)

    [channels.slack-l2]
    type = "slack"                # Slack-compatible incoming webhook: {"text": ...}
    url_env = "SLACK_L2_URL"      # or url = "..."

    [notify.default]              # tickets on policy "default"; "*" = any other policy
    L1 = ["ops-l1"]               # every kind of notice at tier L1
    "*" = ["ops-l1"]              # tiers not listed

    [notify.default.L2]           # per-kind form for tier L2
    breach = ["ops-l1", "slack-l2"]
    "*" = ["slack-l2"]            # at_risk, escalated, breach_reminder

    [agents.bea]                  # `assigned` notices for bea go to her own channels
    channels = ["slack-bea"]      # (an agent without a table: the team's route)

The most specific entry wins and entries never merge: `notify.<policy>` (else `notify."*"`),
then the tier (else `"*"`), then, in the per-kind form, the kind (else `"*"`). No entry: no
delivery (the notice is still logged and recorded in `notifications`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from domain.durations import parse_duration
from domain.errors import DomainError, describe_validation_error
from domain.notifications import Kind
from domain.policy import Policy

ANY = "*"
KINDS: tuple[str, ...] = get_args(Kind)
MAX_TIMEOUT = timedelta(seconds=20)  # every channel answers well inside notify's 30s attempt
DEFAULT_TIMEOUT = timedelta(seconds=10)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TOP_LEVEL = ("ticket_url", "channels", "notify", "agents")


class ChannelError(DomainError):
    """The channels file is not valid; the message names the file and the key."""


def _timeout(value: Any) -> Any:
    if isinstance(value, str):
        value = parse_duration(value)
    if not isinstance(value, timedelta):
        raise ValueError(f"timeout must be text such as '5s' or '10s', got {value!r}")
    if value > MAX_TIMEOUT:
        raise ValueError(f"timeout {value.total_seconds():g}s is above the 20s maximum")
    return value


Timeout = Annotated[timedelta, BeforeValidator(_timeout)]


class Channel(BaseModel):
    """One resolved delivery target: secrets already read from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: Literal["webhook", "slack"]
    url: str
    secret: str | None = None
    timeout: Timeout = DEFAULT_TIMEOUT

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The URL itself may be a secret (Slack's are): name the problem, not the value.
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    def __repr__(self) -> str:  # never print a secret or a tokened URL by accident
        return f"Channel(name={self.name!r}, type={self.type!r})"

    __str__ = __repr__


# A tier's entry: channel names for every kind, or a table kind -> channel names.
TierRoute = tuple[str, ...] | dict[str, tuple[str, ...]]


class ChannelConfig(BaseModel):
    """The worker's channels and routes; empty (no delivery) when no file is configured."""

    model_config = ConfigDict(frozen=True)

    channels: dict[str, Channel] = {}
    routes: dict[str, dict[str, TierRoute]] = {}
    ticket_url: str | None = None
    source: str = "<channels>"
    agents: dict[str, tuple[str, ...]] = {}  # agent id -> their own channels

    @property
    def configured(self) -> bool:
        return bool(self.routes) or bool(self.agents)

    def route_notice(
        self, policy: str | None, tier: str, kind: str, assignee: str | None
    ) -> list[Channel]:
        """`assigned` notices go to the assignee's own channels, else the team's route."""
        if kind == "assigned" and assignee is not None and assignee in self.agents:
            return [self.channels[n] for n in self.agents[assignee]]
        return self.route(policy, tier, kind)

    def route(self, policy: str | None, tier: str, kind: str) -> list[Channel]:
        """The channels a notice goes to; the most specific entry wins (module docstring)."""
        table = self.routes.get(policy or ANY)
        if table is None:
            table = self.routes.get(ANY, {})
        entry = table.get(tier, table.get(ANY))
        if entry is None:
            return []
        names = entry if isinstance(entry, tuple) else entry.get(kind, entry.get(ANY, ()))
        return [self.channels[n] for n in names]

    def link(self, ticket_id: str) -> str | None:
        return None if self.ticket_url is None else self.ticket_url.format(ticket_id=ticket_id)

    def check_policies(self, policies: Mapping[str, Policy]) -> None:
        """Every routed policy and tier must exist, so a typo never silently drops a notice."""
        all_tiers = {t for p in policies.values() for t in p.all_teams()}
        for name, table in self.routes.items():
            where = f"notify.{name}"
            if name != ANY and name not in policies:
                known = ", ".join(repr(n) for n in sorted(policies))
                raise ChannelError(
                    f"{self.source}: {where}: unknown policy {name!r} (known: {known}, or '*')"
                )
            tiers = set(policies[name].all_teams()) if name != ANY else all_tiers
            for tier in table:
                if tier != ANY and tier not in tiers:
                    known = ", ".join(repr(t) for t in sorted(tiers))
                    raise ChannelError(
                        f"{self.source}: {where}.{tier}: unknown tier {tier!r}"
                        f" (tiers: {known}, or '*')"
                    )


NO_CHANNELS = ChannelConfig()


def _from_env(table: dict[str, Any], key: str, where: str, env: Mapping[str, str]) -> Any:
    """`key` written directly, or `key_env` naming an environment variable: exactly one."""
    direct, indirect = key in table, f"{key}_env" in table
    if direct and indirect:
        raise ChannelError(f"{where}: give {key} or {key}_env, not both")
    if not indirect:
        return table.get(key)
    var = table[f"{key}_env"]
    if not isinstance(var, str) or not _ENV_NAME.match(var):
        raise ChannelError(f"{where}.{key}_env: must name an environment variable, got {var!r}")
    value = env.get(var)
    if not value:
        raise ChannelError(f"{where}.{key}_env: environment variable {var} is not set")
    return value


def _parse_channel(name: str, table: Any, source: str, env: Mapping[str, str]) -> Channel:
    where = f"channels.{name}"
    if not _NAME.match(name):
        raise ChannelError(f"{source}: {where}: name must be 1-64 letters, digits, '_', '.', '-'")
    if not isinstance(table, dict):
        raise ChannelError(f"{source}: {where} must be a table")
    if "name" in table:
        raise ChannelError(f"{source}: {where}.name: unknown field (the table key is the name)")
    fields = {k: v for k, v in table.items() if k not in ("url_env", "secret_env")}
    try:
        for key in ("url", "secret"):
            value = _from_env(table, key, f"{source}: {where}", env)
            if value is not None:
                fields[key] = value
        channel = Channel.model_validate({**fields, "name": name})
    except ValidationError as exc:
        raise ChannelError(f"{source}: {describe_validation_error(exc, where)}") from exc
    if channel.type == "webhook" and not channel.secret:
        raise ChannelError(
            f"{source}: {where}.secret: a webhook needs a signing secret (secret or secret_env)"
        )
    if channel.type == "slack" and channel.secret is not None:
        raise ChannelError(
            f"{source}: {where}.secret: slack channels are not signed (the URL is the secret)"
        )
    return channel


def _names(value: Any, where: str, channels: Mapping[str, Channel]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ChannelError(f'{where}: must be a list of channel names, e.g. ["ops-l1"]')
    for name in value:
        if name not in channels:
            known = ", ".join(repr(n) for n in channels) or "none"
            raise ChannelError(f"{where}: unknown channel {name!r} (defined: {known})")
    if len(set(value)) != len(value):
        raise ChannelError(f"{where}: a channel is listed twice")
    return tuple(value)


def _parse_routes(
    data: Any, source: str, channels: Mapping[str, Channel]
) -> dict[str, dict[str, TierRoute]]:
    if not isinstance(data, dict):
        raise ChannelError(f"{source}: notify must be a table of [notify.<policy>] tables")
    routes: dict[str, dict[str, TierRoute]] = {}
    for policy, table in data.items():
        where = f"{source}: notify.{policy}"
        if not isinstance(table, dict):
            raise ChannelError(f"{where}: must be a table of tier = [channels]")
        tiers: dict[str, TierRoute] = {}
        for tier, entry in table.items():
            if isinstance(entry, dict):
                unknown = sorted(set(entry) - {*KINDS, ANY})
                if unknown:
                    raise ChannelError(
                        f"{where}.{tier}.{unknown[0]}: unknown kind"
                        f" (kinds: {', '.join(KINDS)}, or '*')"
                    )
                tiers[tier] = {
                    k: _names(v, f"{where}.{tier}.{k}", channels) for k, v in entry.items()
                }
            else:
                tiers[tier] = _names(entry, f"{where}.{tier}", channels)
        routes[policy] = tiers
    return routes


def parse_channels(
    text: str, source: str = "<channels>", env: Mapping[str, str] | None = None
) -> ChannelConfig:
    """Parse a channels file; secrets named by `*_env` keys are looked up in `env` (none given:
    no secrets; runtime/config_files.py passes the process environment)."""
    env = {} if env is None else env
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChannelError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise ChannelError(
            f"{source}: unknown top-level key(s): {', '.join(unknown)}"
            f" (allowed: {', '.join(TOP_LEVEL)})"
        )
    tables = data.get("channels", {})
    if not isinstance(tables, dict):
        raise ChannelError(f"{source}: channels must be a table of [channels.<name>] tables")
    channels = {name: _parse_channel(name, t, source, env) for name, t in tables.items()}
    routes = _parse_routes(data.get("notify", {}), source, channels)
    agents = _parse_agents(data.get("agents", {}), source, channels)
    ticket_url = data.get("ticket_url")
    if ticket_url is not None:
        if not isinstance(ticket_url, str) or "{ticket_id}" not in ticket_url:
            raise ChannelError(
                f"{source}: ticket_url: must be text holding {{ticket_id}},"
                ' e.g. "https://support.example.com/tickets/{ticket_id}"'
            )
        try:
            ticket_url.format(ticket_id="T-1")
        except (KeyError, IndexError, ValueError):
            raise ChannelError(
                f"{source}: ticket_url: {{ticket_id}} is the only placeholder allowed"
            ) from None
    return ChannelConfig(
        channels=channels, routes=routes, ticket_url=ticket_url, source=source, agents=agents
    )


def _parse_agents(
    data: Any, source: str, channels: Mapping[str, Channel]
) -> dict[str, tuple[str, ...]]:
    if not isinstance(data, dict):
        raise ChannelError(f"{source}: agents must be a table of [agents.<id>] tables")
    agents: dict[str, tuple[str, ...]] = {}
    for agent_id, table in data.items():
        where = f"{source}: agents.{agent_id}"
        if not isinstance(table, dict):
            raise ChannelError(f'{where}: must be a table with channels = ["..."]')
        unknown = sorted(set(table) - {"channels"})
        if unknown:
            raise ChannelError(f"{where}.{unknown[0]}: unknown field (only channels)")
        if "channels" not in table:
            raise ChannelError(f"{where}.channels: required field is missing")
        agents[agent_id] = _names(table["channels"], f"{where}.channels", channels)
    return agents
