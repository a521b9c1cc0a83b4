"""`escalation-api`: the HTTP API and the agent console, served by uvicorn.

Environment (docs/api.md): ESCALATION_API_HOST (127.0.0.1), ESCALATION_API_PORT (8000),
ESCALATION_AGENTS_FILE (static tokens), ESCALATION_OIDC_* (JWTs), ESCALATION_PRINCIPAL_KEYS
(signs the caller into each Signal and Update), ESCALATION_API_RATE (20 actions/s per token),
ESCALATION_API_MAX_CONCURRENT (64), ESCALATION_API_TIMEOUT (30 s), ESCALATION_API_FORWARDED_IPS
(proxies whose X-Forwarded-* are believed), and the Temporal / DATABASE_URL variables every
process reads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg
import structlog
import uvicorn
from temporalio.client import Client

from api.app import create_app
from api.auth import Authenticator, Directory, OidcConfig, OidcVerifier
from api.limits import Limits, RateLimiter
from api.operations import Api
from api.principal_client import signing_client
from domain.agents import DirectoryError
from domain.principal import PrincipalKeyError
from runtime.config import Settings
from runtime.database import resolve_database_url
from runtime.http_server import bounded_h11
from runtime.logs import configure_logging
from runtime.principal import PrincipalSettings
from runtime.temporal import connect_options, data_converter
from store.connection import create_pool
from tickets.client import TicketClient

log = structlog.get_logger("api")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
IDLE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ApiSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    rate: float = 20.0
    limits: Limits = field(default_factory=Limits)
    forwarded_ips: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        e = os.environ if env is None else env

        def number(name: str, default: float, minimum: float) -> float:
            raw = (e.get(name) or "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None
            if value < minimum:
                raise ValueError(f"{name}={raw!r} must be at least {minimum:g}")
            return value

        port = int(number("ESCALATION_API_PORT", DEFAULT_PORT, 0))
        if port > 65535:
            raise ValueError(f"ESCALATION_API_PORT={port} is not a TCP port")
        return cls(
            host=(e.get("ESCALATION_API_HOST") or DEFAULT_HOST).strip(),
            port=port,
            rate=number("ESCALATION_API_RATE", 20.0, 0.1),
            limits=Limits(
                max_concurrent=int(number("ESCALATION_API_MAX_CONCURRENT", 64, 1)),
                timeout=number("ESCALATION_API_TIMEOUT", 30.0, 0.1),
            ),
            forwarded_ips=(e.get("ESCALATION_API_FORWARDED_IPS") or "127.0.0.1").strip(),
        )


class LazyPool:
    """The event store's pool, made on first use (so the API starts while PostgreSQL is down,
    and /readyz says so), and made again after a failed attempt."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                dsn = await asyncio.to_thread(resolve_database_url, self._settings)
                self._pool = await asyncio.wait_for(
                    create_pool(dsn, min_size=0, max_size=10), timeout=5
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def build_api(
    client: Client,
    task_queue: str,
    database: LazyPool,
    principals: PrincipalSettings,
    agents_file: str | None,
    oidc: OidcConfig | None,
    rate: float,
) -> Api:
    return Api(
        tickets=TicketClient(signing_client(client, principals.keys), task_queue),
        auth=Authenticator(Directory(agents_file), OidcVerifier(oidc) if oidc else None),
        rate=RateLimiter(rate),
        database=database,
    )


async def serve(settings: Settings, api_settings: ApiSettings) -> None:
    principals = PrincipalSettings.from_env()
    oidc = OidcConfig.from_env()
    # Lazy: the API starts (and /readyz answers 503) while Temporal is still coming up.
    client = await Client.connect(
        **connect_options(settings), data_converter=data_converter(settings), lazy=True
    )
    database = LazyPool(settings)
    api = build_api(
        client,
        settings.task_queue,
        database,
        principals,
        settings.agents_file,
        oidc,
        api_settings.rate,
    )
    if principals.keys is None:
        log.warning("no ESCALATION_PRINCIPAL_KEYS: actions reach the workflow unsigned")
    app = create_app(api, api_settings.limits)
    config = uvicorn.Config(
        app,
        host=api_settings.host,
        port=api_settings.port,
        # Connections bounded and idle ones closed (runtime/http_server.py); in-flight requests
        # beyond uvicorn's limit get 503; header size bounded.
        http=bounded_h11(api_settings.limits.max_concurrent * 4, IDLE_TIMEOUT_SECONDS),
        limit_concurrency=api_settings.limits.max_concurrent * 2,
        timeout_keep_alive=int(IDLE_TIMEOUT_SECONDS),
        h11_max_incomplete_event_size=16 * 1024,
        proxy_headers=True,
        forwarded_allow_ips=api_settings.forwarded_ips,
        server_header=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    log.info(
        "api listening",
        url=f"http://{api_settings.host}:{api_settings.port}",
        temporal=settings.temporal_address,
        oidc=bool(oidc),
        agents_file=settings.agents_file,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await database.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="escalation-api",
        description="The HTTP API and agent console for tickets (docs/api.md).",
    )
    parser.add_argument("--host", help=f"listen address (ESCALATION_API_HOST, {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port (ESCALATION_API_PORT, {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        api_settings = ApiSettings.from_env()
        if args.host:
            api_settings = ApiSettings(**{**api_settings.__dict__, "host": args.host})
        if args.port is not None:
            api_settings = ApiSettings(**{**api_settings.__dict__, "port": args.port})
        PrincipalSettings.from_env()
        OidcConfig.from_env()
        Directory(settings.agents_file)
    except (ValueError, DirectoryError, PrincipalKeyError, OSError) as exc:
        sys.exit(f"escalation-api: {exc}")
    asyncio.run(serve(settings, api_settings))


if __name__ == "__main__":
    main()
