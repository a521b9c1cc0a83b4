"""The codec server's bounds (issue 13, item 9), on raw sockets: authorization and size are
answered before the body is read, a nested body is a 400 (not a dropped connection), the body
must arrive in time, idle and trickling connections are closed, open connections are bounded."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest_asyncio

import codec_server
from codec_server import CodecServer, ServerConfig
from runtime.codec import EncryptionCodec, parse_keys

KEY = base64.b64encode(b"k" * 32).decode()


def codec() -> EncryptionCodec:
    keys = parse_keys(f"k1:{KEY}")
    assert keys is not None
    return EncryptionCodec(keys)


CONFIG = replace(
    ServerConfig.from_env({codec_server.TOKENS_ENV: "s3cret"}, port=0),
    idle_timeout=0.3,
    body_timeout=0.3,
    max_connections=4,
)


@pytest_asyncio.fixture(loop_scope="session")
async def server() -> AsyncIterator[CodecServer]:
    async with CodecServer(codec(), CONFIG) as s:
        yield s


async def connect(server: CodecServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def status_of(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status code, and the rest of what the server sent until it closed or paused."""
    line = await asyncio.wait_for(reader.readline(), 5)
    rest = b""
    try:
        rest = await asyncio.wait_for(reader.read(65536), 1)
    except TimeoutError:
        pass
    return int(line.split()[1]), rest


def head(length: int, token: str | None = "s3cret", path: str = "/decode") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {length}\r\n\r\n".encode()


async def test_no_token_is_401_before_a_byte_of_a_10_mb_body(server: CodecServer) -> None:
    reader, writer = await connect(server)
    writer.write(head(10 * 1024 * 1024, token=None))  # and no body at all
    await writer.drain()
    status, rest = await status_of(reader)
    assert status == 401 and b"Bearer" in rest
    writer.close()


async def test_a_body_over_the_limit_is_413_from_its_length(server: CodecServer) -> None:
    reader, writer = await connect(server)
    writer.write(head(codec_server.MAX_BODY + 1))
    await writer.drain()
    status, rest = await status_of(reader)
    assert status == 413 and b"fewer payloads" in rest
    writer.close()


async def test_a_deeply_nested_body_is_400_and_the_connection_answers(
    server: CodecServer,
) -> None:
    reader, writer = await connect(server)
    body = b'{"payloads": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    writer.write(head(len(body)) + body)
    await writer.drain()
    status, rest = await status_of(reader)
    assert status == 400 and b"nests 5001 levels" in rest
    writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_408(server: CodecServer) -> None:
    reader, writer = await connect(server)
    writer.write(head(100) + b'{"payl')
    await writer.drain()
    status, rest = await status_of(reader)
    assert status == 408 and b"did not arrive" in rest
    writer.close()


async def test_idle_and_trickling_connections_are_closed(server: CodecServer) -> None:
    idle_reader, idle = await connect(server)
    slow_reader, slow = await connect(server)
    slow.write(b"POST /decode HTTP/1.1\r\nHost: x\r\n")  # headers never finish
    await slow.drain()
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""
    assert await asyncio.wait_for(slow_reader.read(), 5) == b""
    idle.close()
    slow.close()


async def test_open_connections_are_bounded(server: CodecServer) -> None:
    held = [await connect(server) for _ in range(CONFIG.max_connections)]
    extra_reader, extra = await connect(server)
    assert await asyncio.wait_for(extra_reader.read(), 5) == b""  # closed at once
    for _, writer in held:
        writer.close()
    extra.close()
    body = b'{"payloads": []}'
    for _ in range(200):  # room again once the server has seen the closes
        reader, writer = await connect(server)
        writer.write(head(len(body)) + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        if line:
            assert line.startswith(b"HTTP/1.1 200")
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("no connection was accepted after the others closed")
