"""Codec server: the Temporal UI and CLI send it encrypted payloads and show what comes back.

Temporal's remote codec protocol: `POST /encode` and `POST /decode` (also under a namespace
prefix, `/{namespace}/decode`, as the CLI's `--codec-endpoint` templating sends), JSON body
`{"payloads": [...]}` with payloads in proto JSON (bytes as base64), answered in the same shape.
The keys are the worker's (ESCALATION_CODEC_KEYS), so whoever can reach this server can read
ticket text: give it ESCALATION_CODEC_AUTH_TOKENS (callers send `Authorization: Bearer <token>`),
or it listens on 127.0.0.1 only.

    escalation-codec-server [--host H] [--port P]

Environment: ESCALATION_CODEC_KEYS / _KEY_ID (runtime/codec.py), ESCALATION_CODEC_AUTH_TOKENS
(comma-separated), ESCALATION_CODEC_CORS_ORIGINS (comma-separated origins of the UI; default
http://localhost:8233 and http://127.0.0.1:8233), ESCALATION_CODEC_HOST, ESCALATION_CODEC_PORT.
Served by uvicorn as a FastAPI app (the HTTP API's stack) with bounds: open connections
(ESCALATION_CODEC_MAX_CONNECTIONS, 100), idle and header time (5 s), body time (30 s), body
size (32 MiB, judged before reading), authorization before the body, JSON depth (400).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi import Response as StarletteResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from api.limits import json_depth
from runtime.codec import CodecKeyError, EncryptionCodec
from runtime.config import Settings
from runtime.http_server import bounded_h11
from runtime.logs import configure_logging
from runtime.process import stop_on_signals

log = structlog.get_logger("codec_server")

TOKENS_ENV = "ESCALATION_CODEC_AUTH_TOKENS"
ORIGINS_ENV = "ESCALATION_CODEC_CORS_ORIGINS"
HOST_ENV = "ESCALATION_CODEC_HOST"
PORT_ENV = "ESCALATION_CODEC_PORT"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
DEFAULT_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
ALLOWED_HEADERS = "content-type,x-namespace,authorization"
MAX_BODY = 32 * 1024 * 1024  # a page of history: many payloads of up to 2 MB each
MAX_HEADER_BYTES = 64 * 1024
MAX_DEPTH = 32  # a codec body nests 4 levels; deeper is not one
MAX_CONNECTIONS_ENV = "ESCALATION_CODEC_MAX_CONNECTIONS"
ROUTE = re.compile(r"^(?:/[^/]+)?/(encode|decode)/?$")


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    origins: tuple[str, ...] = DEFAULT_ORIGINS
    tokens: tuple[str, ...] = field(default=(), repr=False)
    max_connections: int = 100
    idle_timeout: float = 5.0  # seconds a connection may sit outside a request
    body_timeout: float = 30.0  # seconds a request's body may take to arrive

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, host: str | None = None, port: int | None = None
    ) -> ServerConfig:
        """ValueError naming the variable for a bad value, or for an open host without tokens."""
        e = os.environ if env is None else env
        tokens = tuple(t.strip() for t in (e.get(TOKENS_ENV) or "").split(",") if t.strip())
        origins = tuple(
            o.strip().rstrip("/") for o in (e.get(ORIGINS_ENV) or "").split(",") if o.strip()
        )
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(
                    f"{ORIGINS_ENV}: {origin!r} is not an origin such as http://localhost:8233"
                )
        host = host or (e.get(HOST_ENV) or "").strip() or DEFAULT_HOST
        if port is None:
            raw = (e.get(PORT_ENV) or "").strip() or str(DEFAULT_PORT)
            if not raw.isdigit() or not 0 <= int(raw) < 65536:
                raise ValueError(f"{PORT_ENV}={raw!r} is not a TCP port")
            port = int(raw)
        raw_max = (e.get(MAX_CONNECTIONS_ENV) or "100").strip()
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise ValueError(f"{MAX_CONNECTIONS_ENV}={raw_max!r} is not a positive number")
        if not tokens and not _is_loopback(host):
            raise ValueError(
                f"refusing to listen on {host} without {TOKENS_ENV}: anyone who reaches the "
                "codec server can decrypt ticket text; set tokens or listen on 127.0.0.1"
            )
        return cls(
            host=host,
            port=port,
            origins=origins or DEFAULT_ORIGINS,
            tokens=tokens,
            max_connections=int(raw_max),
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Response:
    status: HTTPStatus
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class CodecServer:
    """The HTTP side of EncryptionCodec, a FastAPI app on uvicorn; `start()` listens on the
    configured port (0: one the OS picks), `handle()` answers one request."""

    def __init__(self, codec: EncryptionCodec, config: ServerConfig) -> None:
        self.codec = codec
        self.config = config
        self.app = self._app()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS picked for port 0)."""
        assert self._server is not None and self._server.servers, "not started"
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.config.host,
            port=self.config.port,
            http=bounded_h11(self.config.max_connections, self.config.idle_timeout),
            timeout_keep_alive=int(max(1, self.config.idle_timeout)),
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        # Signals stay the caller's (stop_on_signals() in main, the test runner's own).
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # the bind failed: raise its OSError
                raise OSError(f"cannot listen on {self.config.host}:{self.config.port}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    async def __aenter__(self) -> CodecServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # --- HTTP: uvicorn parses, the edge below bounds, handle() answers -----------------------

    def _app(self) -> Any:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.api_route(
            "/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        )
        async def codec(request: Request) -> StarletteResponse:
            headers = {k.lower(): v for k, v in request.headers.items()}
            body = await request.body()
            target = request.url.path
            answer = self.handle(request.method, target, headers, body)
            cors = self._cors(headers.get("origin"))
            if answer.body:
                answer.headers.setdefault("Content-Type", "application/json")
            return StarletteResponse(
                answer.body, status_code=answer.status.value, headers={**cors, **answer.headers}
            )

        return _Edge(app, self)

    def _cors(self, origin: str | None) -> dict[str, str]:
        """Only a configured origin may read answers; credentials, so the UI may send a token."""
        if not origin or origin.rstrip("/") not in self.config.origins:
            return {"Vary": "Origin"}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    # --- the protocol ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """One request to its response; never raises for anything the client sent."""
        path = urlsplit(target).path
        route = ROUTE.match(path)
        if route is None:
            return _error(HTTPStatus.NOT_FOUND, f"no such path {path!r}: POST /encode or /decode")
        if method == "OPTIONS":  # CORS preflight: no credentials come with it
            return Response(
                HTTPStatus.NO_CONTENT,
                headers={
                    "Access-Control-Allow-Methods": "POST, OPTIONS",
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": "600",
                },
            )
        if method != "POST":
            response = _error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path}: use POST")
            response.headers["Allow"] = "POST, OPTIONS"
            return response
        denied = self._check_token(headers.get("authorization"))
        if denied is not None:
            return denied
        try:
            payloads = _parse_payloads(body)
        except ValueError as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        action = route.group(1)
        try:
            if action == "encode":
                out = [self.codec.encrypt(p) for p in payloads]
            else:
                out = [self.codec.decrypt(p) for p in payloads]
        except CodecKeyError as exc:
            return _error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
        except Exception as exc:  # a payload whose plaintext is not a Payload: not ours
            return _error(HTTPStatus.UNPROCESSABLE_ENTITY, f"cannot {action}: {exc}")
        # Never the payloads themselves: the log must not become the leak.
        log.info(
            "codec request", action=action, payloads=len(out), namespace=headers.get("x-namespace")
        )
        body_out = {"payloads": [json_format.MessageToDict(p) for p in out]}
        return Response(HTTPStatus.OK, json.dumps(body_out).encode())

    def _check_token(self, authorization: str | None) -> Response | None:
        if not self.config.tokens:
            return None  # loopback only (ServerConfig.from_env)
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = _error(
                HTTPStatus.UNAUTHORIZED, "send `Authorization: Bearer <token>`; no token came"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        given = token.strip().encode()
        # Compare against every token in constant time, so timing tells nothing about any.
        matches = [hmac.compare_digest(given, t.encode()) for t in self.config.tokens]
        if not any(matches):
            return _error(HTTPStatus.FORBIDDEN, f"the bearer token is not one of {TOKENS_ENV}")
        return None


class _Edge:
    """ASGI middleware in front of the route: a POST to /encode or /decode is authorized
    from its headers before a byte of its body is read, its size is judged by Content-Length
    (and counted while read), the body must arrive within `body_timeout`, and JSON nested
    deeper than MAX_DEPTH is a 400, never a parser's RecursionError."""

    def __init__(self, app: Any, server: CodecServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not ROUTE.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        cors = self.server._cors(headers.get("origin"))
        denied = self.server._check_token(headers.get("authorization"))
        if denied is not None:
            await _send(send, denied, cors)
            return
        length = headers.get("content-length")
        if length is not None and not length.isdigit():
            await _send(send, _error(HTTPStatus.BAD_REQUEST, "bad Content-Length"), cors)
            return
        too_large = _error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"body over {MAX_BODY} bytes; send fewer payloads at a time",
        )
        if length is not None and int(length) > MAX_BODY:
            await _send(send, too_large, cors)
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self.server.config.body_timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    if len(body) > MAX_BODY:
                        await _send(send, too_large, cors)
                        return
                    more = message.get("more_body", False)
        except TimeoutError:
            slow = _error(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the body did not arrive within {self.server.config.body_timeout:g}s",
            )
            await _send(send, slow, cors)
            return
        depth = json_depth(bytes(body))
        if depth > MAX_DEPTH:
            deep = _error(
                HTTPStatus.BAD_REQUEST, f"body is not JSON a codec takes: nests {depth} levels"
            )
            await _send(send, deep, cors)
            return
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send(send: Any, response: Response, cors: Mapping[str, str]) -> None:
    headers = {**cors, **response.headers, "Content-Type": "application/json"}
    await send(
        {
            "type": "http.response.start",
            "status": response.status.value,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            + [(b"content-length", str(len(response.body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def _parse_payloads(body: bytes) -> list[Payload]:
    """`{"payloads": [...]}` in proto JSON; ValueError saying what is wrong."""
    try:
        data: Any = json.loads(body)
    except RecursionError:
        raise ValueError("body is not JSON a codec takes: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("payloads"), list):
        raise ValueError('body must be a JSON object {"payloads": [...]}')
    try:
        return list(json_format.ParseDict(data, Payloads()).payloads)
    except json_format.ParseError as exc:
        raise ValueError(f"payloads are not Temporal payloads in proto JSON: {exc}") from None


def _error(status: HTTPStatus, message: str) -> Response:
    return Response(status, json.dumps({"error": message}).encode())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="escalation-codec-server",
        description="Decrypt (and encrypt) Temporal payloads for the Temporal UI and CLI, "
        "with the keys of ESCALATION_CODEC_KEYS.",
        epilog="UI: temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8081 ;"
        " CLI: temporal workflow show --codec-endpoint http://127.0.0.1:8081 ...",
    )
    p.add_argument("--host", help=f"listen address (default {HOST_ENV} or {DEFAULT_HOST})")
    p.add_argument("--port", type=int, help=f"port (default {PORT_ENV} or {DEFAULT_PORT})")
    return p


async def serve(server: CodecServer, stop: asyncio.Event) -> None:
    async with server:
        log.info(
            "codec server listening",
            url=server.url,
            origins=list(server.config.origins),
            auth="bearer tokens" if server.config.tokens else "none: loopback only",
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        config = ServerConfig.from_env(host=args.host, port=args.port)
    except ValueError as exc:
        sys.exit(f"codec server: {exc}")
    if settings.codec_keys is None:
        sys.exit("codec server: ESCALATION_CODEC_KEYS is not set: there is no key to decode with")
    server = CodecServer(EncryptionCodec(settings.codec_keys), config)
    if not config.tokens:
        print(
            f"codec server: no {TOKENS_ENV}, so no authentication: listening on {config.host} only",
            file=sys.stderr,
            flush=True,
        )

    async def _main() -> None:
        await serve(server, stop_on_signals())

    try:
        asyncio.run(_main())
    except OSError as exc:
        sys.exit(f"codec server: cannot listen on {config.host}:{config.port}: {exc}")


if __name__ == "__main__":
    main()
