"""Configuration from the environment (docs/contract.md#configuration). Read once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.codec import CodecKeys

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"
EMBEDDED_PG_DIR = DATA_DIR / "postgres"
OFF = {"off", "0", "false", "no"}


@dataclass(frozen=True)
class Settings:
    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "escalation"
    database_url: str | None = None  # None: the dev stack's embedded PostgreSQL
    policy_file: str | None = None
    agents_file: str | None = None  # None: no directory, every agent may act (runs open)
    log_format: str | None = None  # None: console on a TTY, else json
    log_level: str = "info"
    projector: bool = True  # ESCALATION_PROJECTOR=off: the worker runs no read-side projector
    # Worker tuning (docs/configuration.md#environment-variables). None / 1000: the Temporal
    # SDK's own defaults.
    max_concurrent_activities: int | None = None
    max_concurrent_workflow_tasks: int | None = None
    max_cached_workflows: int = 1000
    shutdown_grace: float = 10.0  # seconds running activities get to finish after SIGTERM
    # Notifications and metrics (docs/configuration.md#notification-channels, #metrics).
    channels_file: str | None = None  # None: notices are logged and recorded, not delivered
    metrics_port: int | None = None  # None: no Prometheus endpoint
    metrics_host: str = "0.0.0.0"
    # Payload encryption (docs/configuration.md#encrypting-ticket-text-pii). None: plain JSON.
    codec_keys: CodecKeys | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        cached = _int_env(e, "ESCALATION_MAX_CACHED_WORKFLOWS", 0)
        return cls(
            temporal_address=e.get("TEMPORAL_ADDRESS") or cls.temporal_address,
            namespace=e.get("TEMPORAL_NAMESPACE") or cls.namespace,
            task_queue=e.get("ESCALATION_TASK_QUEUE") or cls.task_queue,
            database_url=e.get("DATABASE_URL") or None,
            policy_file=e.get("ESCALATION_POLICY_FILE") or None,
            agents_file=e.get("ESCALATION_AGENTS_FILE") or None,
            log_format=(e.get("LOG_FORMAT") or "").lower() or None,
            log_level=(e.get("LOG_LEVEL") or cls.log_level).lower(),
            projector=(e.get("ESCALATION_PROJECTOR") or "on").lower() not in OFF,
            max_concurrent_activities=_int_env(e, "ESCALATION_MAX_CONCURRENT_ACTIVITIES", 1),
            max_concurrent_workflow_tasks=_int_env(
                e, "ESCALATION_MAX_CONCURRENT_WORKFLOW_TASKS", 2
            ),
            max_cached_workflows=cls.max_cached_workflows if cached is None else cached,
            shutdown_grace=_seconds_env(e, "ESCALATION_SHUTDOWN_GRACE", cls.shutdown_grace),
            channels_file=e.get("ESCALATION_CHANNELS_FILE") or None,
            metrics_port=_port_env(e, "METRICS_PORT"),
            metrics_host=e.get("METRICS_HOST") or cls.metrics_host,
            codec_keys=_codec_env(e.get("ESCALATION_CODEC_KEYS"), e.get("ESCALATION_CODEC_KEY_ID")),
        )


def _int_env(e: Mapping[str, str], name: str, minimum: int) -> int | None:
    """An integer variable, None when unset or empty; ValueError naming the variable if bad."""
    raw = (e.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _seconds_env(e: Mapping[str, str], name: str, default: float) -> float:
    """Seconds as `30`, `2.5`, or a duration such as `30s`, `2m`; ValueError naming the variable."""
    raw = (e.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        from domain.durations import parse_duration  # the policy file's `90s`, `1m30s`

        try:
            return parse_duration(raw).total_seconds()
        except ValueError:
            raise ValueError(
                f"{name}={raw!r} is not a duration: give seconds (`30`) or `30s`, `2m`"
            ) from None
    if not 0 <= value < 86400:
        raise ValueError(f"{name}={raw!r} must be between 0 and 86400 seconds")
    return value


def _port_env(e: Mapping[str, str], name: str) -> int | None:
    """A TCP port, None when unset or empty; ValueError naming the variable if bad."""
    raw = (e.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{name}={raw!r} is not a TCP port (1-65535)")
    return int(raw)


def _codec_env(keys: str | None, key_id: str | None) -> CodecKeys | None:
    """The payload codec's keys, None when unset; ValueError naming the variable if bad."""
    if not (keys or "").strip() and not (key_id or "").strip():
        return None  # the common case: no need to load the cryptography package
    from runtime.codec import parse_keys

    return parse_keys(keys, key_id)
