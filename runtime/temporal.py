"""Connecting to Temporal the same way everywhere: env config (Cloud, mTLS) + pydantic payloads,
encrypted when ESCALATION_CODEC_KEYS is set (runtime/codec.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from runtime.config import Settings


def data_converter(settings: Settings, *, worker: bool = False) -> DataConverter:
    """Pydantic JSON payloads; with codec keys configured, each one encrypted. A worker's codec
    hands on what does not decrypt for the workflow to refuse (runtime/codec.py)."""
    if settings.codec_keys is None:
        return pydantic_data_converter
    from runtime.codec import EncryptionCodec

    codec = EncryptionCodec(settings.codec_keys, refusable=worker)
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


def connect_options(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Client.connect kwargs; reads TEMPORAL_API_KEY and TEMPORAL_TLS_* like Temporal envconfig."""
    options: dict[str, Any] = dict(ClientConfig.load_client_connect_config(override_env_vars=env))
    options["target_host"] = options.get("target_host") or settings.temporal_address
    options["namespace"] = options.get("namespace") or settings.namespace
    return options


async def connect(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    runtime: Runtime | None = None,
    *,
    worker: bool = False,
) -> Client:
    """`runtime`: e.g. one that exports Prometheus metrics (runtime/metrics.py); default SDK's.
    `worker`: the client a worker polls with (see data_converter)."""
    try:
        return await Client.connect(
            **connect_options(settings, env),
            data_converter=data_converter(settings, worker=worker),
            runtime=runtime,
        )
    except RuntimeError as exc:
        target = connect_options(settings, env)["target_host"]
        raise ConnectionError(
            f"cannot connect to Temporal at {target}: {exc}."
            " Is the server running? (`python3 dev.py up` starts one; TEMPORAL_ADDRESS sets it)"
        ) from exc
