"""The worker's configuration files: SLA policies, the agent directory, notification channels.

The domain parses text (`parse_policies`, `parse_directory`, `parse_channels`) and never touches
the file system or the environment; reading the files, and the environment that channel
secrets come from, happens here. Every error names the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from domain.agents import AgentDirectory, DirectoryError, parse_directory
from domain.channels import NO_CHANNELS, ChannelConfig, ChannelError, parse_channels
from domain.errors import DomainError
from domain.policy import BUILTIN_POLICIES, Policy, PolicyError, parse_policies


def _read(file: Path, what: str, error: type[DomainError]) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{file}: cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{file}: cannot read {what}: not UTF-8 text ({exc.reason})") from exc


def load_policies(path: str | Path | None) -> dict[str, Policy]:
    """The policies a worker serves: the built-ins, plus the file's if a path is given."""
    if path is None or str(path) == "":
        return dict(BUILTIN_POLICIES)
    file = Path(path)
    return parse_policies(_read(file, "policy file", PolicyError), str(file))


def load_directory(path: str | Path) -> AgentDirectory:
    file = Path(path)
    return parse_directory(_read(file, "agent directory", DirectoryError), str(file))


def load_channels(path: str | Path | None, env: Mapping[str, str] | None = None) -> ChannelConfig:
    """The worker's channels: none (log and record only) without a file. Secrets named by
    `*_env` keys come from `env`, by default the process environment."""
    if path is None or str(path) == "":
        return NO_CHANNELS
    file = Path(path)
    text = _read(file, "channels file", ChannelError)
    return parse_channels(text, str(file), os.environ if env is None else env)
