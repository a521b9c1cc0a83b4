"""Configuration from the environment (CONTRACT.md, Configuration). Read once at start."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
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
        )
