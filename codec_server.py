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
Stdlib asyncio only: the protocol is two POST routes, not worth a web framework dependency.
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
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from runtime.codec import CodecKeyError, EncryptionCodec
from runtime.config import Settings
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
MAX_HEADERS = 100
ROUTE = re.compile(r"^(?:/[^/]+)?/(encode|decode)/?$")


class RequestError(Exception):
    """Answer with this status and message (and close the connection if `close`)."""

    def __init__(self, status: HTTPStatus, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    origins: tuple[str, ...] = DEFAULT_ORIGINS
    tokens: tuple[str, ...] = field(default=(), repr=False)

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
        if not tokens and not _is_loopback(host):
            raise ValueError(
                f"refusing to listen on {host} without {TOKENS_ENV}: anyone who reaches the "
                "codec server can decrypt ticket text; set tokens or listen on 127.0.0.1"
            )
        return cls(host=host, port=port, origins=origins or DEFAULT_ORIGINS, tokens=tokens)


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
    """The HTTP side of EncryptionCodec; `start()` listens, `handle()` answers one request."""

    def __init__(self, codec: EncryptionCodec, config: ServerConfig) -> None:
        self.codec = codec
        self.config = config
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS picked for port 0)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve_connection, self.config.host, self.config.port
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> CodecServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # --- HTTP/1.1, as much as the UI and CLI need ------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            keep_alive = True
            while keep_alive:
                try:
                    request = await self._read_request(reader)
                except RequestError as exc:
                    await self._write(writer, _error(exc.status, str(exc)), {}, keep_alive=False)
                    return
                if request is None:
                    return  # the client closed the connection
                method, target, headers, body, keep_alive = request
                response = self.handle(method, target, headers, body)
                await self._write(writer, response, headers, keep_alive)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_request(
        self, reader: asyncio.StreamReader
    ) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        try:
            line = await reader.readline()
            if not line:
                return None
            parts = line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                raise RequestError(HTTPStatus.BAD_REQUEST, "malformed request line", close=True)
            method, target, version = parts
            headers: dict[str, str] = {}
            while True:
                raw = await reader.readline()
                if raw in (b"\r\n", b"\n", b""):
                    break
                name, sep, value = raw.decode("latin-1").partition(":")
                if not sep or len(headers) >= MAX_HEADERS:
                    raise RequestError(HTTPStatus.BAD_REQUEST, "malformed header", close=True)
                headers[name.strip().lower()] = value.strip()
        except (ValueError, asyncio.LimitOverrunError):
            raise RequestError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header too long", close=True
            ) from None
        if "transfer-encoding" in headers:
            raise RequestError(
                HTTPStatus.NOT_IMPLEMENTED, "chunked bodies are not supported", close=True
            )
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length", close=True)
        length = int(length_text)
        if length > MAX_BODY:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body over {MAX_BODY} bytes; send fewer payloads at a time",
                close=True,
            )
        body = await reader.readexactly(length) if length else b""
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version != "HTTP/1.0" or connection == "keep-alive")
        return method.upper(), target, headers, body, keep_alive

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        request_headers: Mapping[str, str],
        keep_alive: bool,
    ) -> None:
        headers = {
            **self._cors(request_headers.get("origin")),
            **response.headers,
            "Content-Length": str(len(response.body)),
            "Connection": "keep-alive" if keep_alive else "close",
        }
        if response.body:
            headers.setdefault("Content-Type", "application/json")
        head = f"HTTP/1.1 {response.status.value} {response.status.phrase}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + response.body)
        await writer.drain()

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


def _parse_payloads(body: bytes) -> list[Payload]:
    """`{"payloads": [...]}` in proto JSON; ValueError saying what is wrong."""
    try:
        data: Any = json.loads(body)
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
