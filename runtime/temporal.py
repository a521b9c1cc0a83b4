"""Connecting to Temporal the same way everywhere: env config (Cloud, mTLS) + pydantic payloads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from runtime.config import Settings


def connect_options(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Client.connect kwargs; reads TEMPORAL_API_KEY and TEMPORAL_TLS_* like Temporal envconfig."""
    options: dict[str, Any] = dict(ClientConfig.load_client_connect_config(override_env_vars=env))
    options["target_host"] = options.get("target_host") or settings.temporal_address
    options["namespace"] = options.get("namespace") or settings.namespace
    return options


async def connect(
    settings: Settings, env: Mapping[str, str] | None = None, runtime: Runtime | None = None
) -> Client:
    """`runtime`: e.g. one that exports Prometheus metrics (runtime/metrics.py); default SDK's."""
    try:
        return await Client.connect(
            **connect_options(settings, env),
            data_converter=pydantic_data_converter,
            runtime=runtime,
        )
    except RuntimeError as exc:
        target = connect_options(settings, env)["target_host"]
        raise ConnectionError(
            f"cannot connect to Temporal at {target}: {exc}."
            " Is the server running? (`python3 dev.py up` starts one; TEMPORAL_ADDRESS sets it)"
        ) from exc
