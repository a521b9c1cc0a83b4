"""Payload encryption (runtime/codec.py), its wiring, the codec server and the dev stack's part.

The end-to-end test runs a real ticket on the dev server with a codec worker and reads the raw
history with a client that has no key: the ticket's text must not be in it anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.history.v1 import History
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import codec_server
from codec_server import CodecServer, ServerConfig
from runtime import dev
from runtime.codec import (
    ENCODING,
    KEY_ID_ENV,
    KEY_ID_METADATA,
    KEYS_ENV,
    CodecConfigError,
    CodecKeyError,
    CodecKeys,
    EncryptionCodec,
    keys_from_env,
    new_key,
    parse_keys,
)
from runtime.config import PROJECT_ROOT, Settings
from runtime.temporal import data_converter
from starter import open_ticket
from tests.conftest import ticket_worker
from tickets.client import TicketClient
from workflows import search_attributes as sa

K1 = base64.b64encode(bytes(range(32))).decode()
K2 = base64.b64encode(bytes(range(100, 132))).decode()


def codec(raw: str, active: str | None = None) -> EncryptionCodec:
    keys = parse_keys(raw, active)
    assert keys is not None
    return EncryptionCodec(keys)


def plain_payload(value: Any) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


# --- the codec --------------------------------------------------------------------------------


async def test_round_trip_encrypts_the_whole_payload() -> None:
    c = codec(f"k1:{K1}")
    original = plain_payload({"subject": "Refund not received for order 4711"})

    (encoded,) = await c.encode([original])
    (decoded,) = await c.decode([encoded])

    assert encoded.metadata["encoding"] == ENCODING == b"binary/encrypted"
    assert encoded.metadata[KEY_ID_METADATA] == b"k1"
    assert set(encoded.metadata) == {"encoding", KEY_ID_METADATA}  # json/plain is hidden too
    assert b"Refund" not in encoded.SerializeToString()
    assert decoded == original


async def test_each_encryption_uses_a_fresh_nonce() -> None:
    c = codec(f"k1:{K1}")
    p = plain_payload("same text")
    a, b = await c.encode([p, p])
    assert a.data != b.data


async def test_rotation_old_key_ids_still_decode_new_payloads_use_the_active_one() -> None:
    old = codec(f"k1:{K1}")
    (written_before,) = await old.encode([plain_payload("before rotation")])

    rotated = codec(f"k2:{K2},k1:{K1}")  # the new key first: it becomes the active one
    (written_after,) = await rotated.encode([plain_payload("after rotation")])

    assert rotated.active_key_id == "k2"
    assert written_after.metadata[KEY_ID_METADATA] == b"k2"
    decoded = await rotated.decode([written_before, written_after])
    assert pydantic_data_converter.payload_converter.from_payloads(decoded) == [
        "before rotation",
        "after rotation",
    ]
    # ESCALATION_CODEC_KEY_ID picks the active key whatever the order.
    assert codec(f"k1:{K1},k2:{K2}", "k2").active_key_id == "k2"


async def test_an_unknown_key_id_names_the_id_and_the_variable() -> None:
    (encoded,) = await codec(f"retired:{K1}").encode([plain_payload("x")])

    with pytest.raises(CodecKeyError) as err:
        await codec(f"k2:{K2}").decode([encoded])

    assert "'retired'" in str(err.value) and KEYS_ENV in str(err.value)


async def test_a_wrong_key_under_the_right_id_is_a_clear_error() -> None:
    (encoded,) = await codec(f"k1:{K1}").encode([plain_payload("x")])
    with pytest.raises(CodecKeyError, match="'k1' does not decrypt"):
        await codec(f"k1:{K2}").decode([encoded])


async def test_a_relabelled_key_id_does_not_decrypt() -> None:
    # The id is authenticated: moving a payload under another id's label fails, never misreads.
    (encoded,) = await codec(f"k1:{K1},k2:{K1}").encode([plain_payload("x")])
    encoded.metadata[KEY_ID_METADATA] = b"k2"
    with pytest.raises(CodecKeyError):
        await codec(f"k1:{K1},k2:{K1}").decode([encoded])


async def test_unencrypted_payloads_pass_through_decode() -> None:
    before = [plain_payload({"ticket_id": "T-1"}), plain_payload(None), Payload(data=b"raw")]
    assert await codec(f"k1:{K1}").decode(before) == before


@pytest.mark.parametrize(
    ("keys", "active", "names"),
    [
        (f"k1{K1}", None, [KEYS_ENV, "entry 1", "no `:`"]),
        ("k1:not base64!", None, [KEYS_ENV, "'k1'", "not base64"]),
        (f"k1:{base64.b64encode(b'short').decode()}", None, [KEYS_ENV, "5 bytes", "32"]),
        (f"k1:{K1},k1:{K2}", None, [KEYS_ENV, "entry 2", "'k1'", "twice"]),
        (f"k1:{K1}", "k9", [KEY_ID_ENV, "'k9'", KEYS_ENV, "k1"]),
        ("", "k1", [KEY_ID_ENV, KEYS_ENV, "empty"]),
        (f"bad id:{K1}", None, [KEYS_ENV, "'bad id'"]),
        (" , ", None, [KEYS_ENV, "no key"]),
    ],
)
def test_bad_key_environment_is_refused_naming_the_variable(
    keys: str, active: str | None, names: list[str]
) -> None:
    env = {KEYS_ENV: keys} | ({KEY_ID_ENV: active} if active else {})
    with pytest.raises(CodecConfigError) as err:
        keys_from_env(env)
    for name in names:
        assert name in str(err.value)
    assert K1 not in str(err.value) and K2 not in str(err.value)  # never echo a key
    with pytest.raises(ValueError, match=KEYS_ENV):  # at startup: Settings reads them
        Settings.from_env(env)


def test_settings_without_the_variables_have_no_codec_and_the_plain_converter() -> None:
    settings = Settings.from_env({})
    assert settings.codec_keys is None
    assert data_converter(settings) is pydantic_data_converter


def test_settings_with_keys_build_the_encrypting_converter_and_hide_key_bytes() -> None:
    settings = Settings.from_env({KEYS_ENV: f" k1:{K1} , k2:{K2}, ", KEY_ID_ENV: "k2"})
    assert settings.codec_keys is not None
    assert settings.codec_keys.ids == ["k1", "k2"] and settings.codec_keys.active == "k2"
    converter = data_converter(settings)
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    assert K1 not in repr(settings) and K2 not in repr(settings)  # Settings may be logged


def test_url_safe_base64_keys_are_accepted() -> None:
    urlsafe = base64.urlsafe_b64encode(bytes([251] * 32)).decode()
    assert "-" in urlsafe or "_" in urlsafe
    keys = parse_keys(f"k1:{urlsafe}")
    assert keys is not None and keys.keys["k1"] == bytes([251] * 32)


def test_new_key_command_prints_an_entry_the_variable_accepts() -> None:
    assert len(base64.b64decode(new_key())) == 32
    done = subprocess.run(
        [sys.executable, "-m", "runtime.codec", "new-key", "k2027"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    keys = parse_keys(done.stdout.strip())
    assert keys is not None and keys.ids == ["k2027"]


def test_the_worker_refuses_a_bad_key_at_start() -> None:
    env = {"PATH": "/usr/bin:/bin", KEYS_ENV: "k1:tooshort"}
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert done.returncode != 0
    assert "worker:" in done.stderr and KEYS_ENV in done.stderr


# --- search attributes carry no text ------------------------------------------------------------


def test_no_search_attribute_is_a_text_field() -> None:
    # Keyword, Bool, Datetime only: ids, enums, flags and times; and TicketTags, a KeywordList
    # of tags, which are labels of at most 40 of [a-z0-9_-] (domain/tags.py), never free text.
    # A Text attribute (or one named after subject/description/message) would put ticket text
    # in visibility, unencrypted.
    assert {k.name for k in sa.ALL_KEYS} == set(sa.CLI_TYPES)
    assert set(sa.CLI_TYPES.values()) <= {"Keyword", "Bool", "Datetime", "KeywordList"}
    assert [n for n, t in sa.CLI_TYPES.items() if t == "KeywordList"] == ["TicketTags"]
    for name in sa.CLI_TYPES:
        assert not any(w in name.lower() for w in ("subject", "description", "message", "text"))


# --- a real ticket on the dev server -------------------------------------------------------------


SUBJECT = "Zanzibar-subject card 4242 charged twice"
DESCRIPTION = "Quokka-description: customer lives at 1 Secret Lane"
MESSAGES = ["Narwhal-reply looking into it", "Ocelot-customer: the Visa ending 4242"]
REASON = "Pangolin-reason needs payments engineering"
TEXTS = [SUBJECT, DESCRIPTION, *MESSAGES, REASON]


def with_converter(client: Client, converter: Any) -> Client:
    """The same connection with another data converter (a keyed or a keyless client)."""
    config = client.config()
    config["data_converter"] = converter
    return Client(**config)


@pytest_asyncio.fixture(loop_scope="session")
async def codec_client(dev_env: WorkflowEnvironment) -> AsyncIterator[Client]:
    settings = Settings.from_env({KEYS_ENV: f"k1:{K1}"})
    yield with_converter(dev_env.client, data_converter(settings))


def _contains_any(blob: bytes, texts: list[str]) -> list[str]:
    """The texts found whole (plain or base64) or by their unique first word (a marker)."""
    found = []
    for text in texts:
        marker = text.split()[0]
        if text.encode() in blob or base64.b64encode(text.encode()) in blob:
            found.append(text)
        elif marker.encode() in blob:
            found.append(marker)
    return found


@pytest.mark.devserver
async def test_ticket_text_never_reaches_temporal_in_the_clear(
    dev_env: WorkflowEnvironment, codec_client: Client, db_pool: asyncpg.Pool
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    ticket_id = f"PII-{uuid.uuid4().hex[:10]}"
    keyless = with_converter(dev_env.client, pydantic_data_converter)
    async with ticket_worker(codec_client, task_queue, db_pool):
        tc = TicketClient(codec_client, task_queue)
        # starter.open_ticket: the subject and description also go into the UI summary/details.
        view = await tc.open(
            {
                "ticket_id": ticket_id,
                "subject": SUBJECT,
                "customer_id": "acme",
                "priority": "high",
                "description": DESCRIPTION,
            }
        )
        assert view.subject == SUBJECT
        await tc.respond(ticket_id, "alice", message=MESSAGES[0])
        await tc.await_customer(ticket_id, "alice")
        await tc.customer_replied(ticket_id, message=MESSAGES[1])
        await tc.escalate(ticket_id, "alice", reason=REASON)

        # A client with the key reads everything: queries, and the summary the UI shows.
        handle = codec_client.get_workflow_handle(f"ticket-{ticket_id}")
        state = await handle.query("state")
        assert state["subject"] == SUBJECT and state["tier"] == "L2"
        described = await handle.describe()
        assert SUBJECT in (await described.static_summary() or "")
        assert DESCRIPTION in (await described.static_details() or "")

        # What Temporal stores, read without the key: no trace of the text, plain or base64.
        history = await keyless.get_workflow_handle(handle.id).fetch_history()
        raw = History(events=history.events).SerializeToString()
        assert _contains_any(raw, TEXTS) == []
        assert b"binary/encrypted" in raw
        raw_description = await keyless.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=keyless.namespace, execution=WorkflowExecution(workflow_id=handle.id)
            )
        )
        assert _contains_any(raw_description.SerializeToString(), TEXTS) == []
        # Nor in the search attributes, which are never encrypted.
        attrs = (await keyless.get_workflow_handle(handle.id).describe()).typed_search_attributes
        values = " ".join(str(pair.value) for pair in attrs)
        assert "acme" in values and "L2" in values
        assert _contains_any(values.encode(), TEXTS) == []
        await handle.terminate("test finished")

    # The event store is not encrypted (docs/configuration.md#encrypting-ticket-text-pii says
    # so): the text is there, for the read side.
    stored = await db_pool.fetchval(
        "SELECT string_agg(payload::text, ' ') FROM ticket_events WHERE ticket_id = $1", ticket_id
    )
    assert SUBJECT in stored and MESSAGES[1] in stored


@pytest.mark.devserver
async def test_a_ticket_started_before_encryption_keeps_working_with_the_codec_worker(
    dev_env: WorkflowEnvironment, codec_client: Client, db_pool: asyncpg.Pool
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    ticket_id = f"OLD-{uuid.uuid4().hex[:10]}"
    keyless = with_converter(dev_env.client, pydantic_data_converter)
    # Started by a client without a key: its input in history is plain JSON.
    handle = await open_ticket(
        keyless,
        {"ticket_id": ticket_id, "subject": "started in the clear", "customer_id": "acme"},
        task_queue,
    )
    async with ticket_worker(codec_client, task_queue, db_pool):
        tc = TicketClient(codec_client, task_queue)
        opened = await tc.open(
            {"ticket_id": ticket_id, "subject": "started in the clear", "customer_id": "acme"}
        )  # idempotent: the running ticket, as the keyless client started it
        assert opened.subject == "started in the clear"
        view = await tc.respond(ticket_id, "bob", "hi")
        assert view.subject == "started in the clear" and view.first_responded_at is not None
        await handle.terminate("test finished")


# --- the codec server ------------------------------------------------------------------------


class Reply:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def _request(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers), err.read())


async def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> Reply:
    """An HTTP call from a thread, so the server on this loop keeps serving."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return await asyncio.to_thread(_request, method, url, data, headers or {})


def payloads_json(*values: Any) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(plain_payload(v)) for v in values]}


@pytest_asyncio.fixture(loop_scope="session")
async def server() -> AsyncIterator[CodecServer]:
    async with CodecServer(codec(f"k1:{K1}"), ServerConfig(port=0)) as s:
        yield s


@pytest_asyncio.fixture(loop_scope="session")
async def guarded() -> AsyncIterator[CodecServer]:
    config = ServerConfig.from_env({codec_server.TOKENS_ENV: "s3cret, other"}, port=0)
    async with CodecServer(codec(f"k1:{K1}"), config) as s:
        yield s


@pytest.mark.parametrize("prefix", ["", "/default"])
async def test_server_encodes_and_decodes_round_trip(server: CodecServer, prefix: str) -> None:
    sent = payloads_json({"subject": "Refund"}, "text", None)

    encoded = await http("POST", f"{server.url}{prefix}/encode", sent)
    assert encoded.status == 200 and encoded.headers["content-type"] == "application/json"
    assert all(
        base64.b64decode(p["metadata"]["encoding"]) == ENCODING for p in encoded.json()["payloads"]
    )
    assert b"Refund" not in encoded.body

    decoded = await http(
        "POST", f"{server.url}{prefix}/decode", encoded.json(), {"X-Namespace": "default"}
    )
    assert decoded.status == 200 and decoded.json() == sent


async def test_server_decodes_what_the_worker_encoded(server: CodecServer) -> None:
    (encoded,) = await codec(f"k1:{K1}").encode([plain_payload({"subject": "Refund"})])
    body = {"payloads": [json_format.MessageToDict(encoded)]}
    reply = await http("POST", f"{server.url}/decode", body)
    assert reply.json() == payloads_json({"subject": "Refund"})
    assert (await http("POST", f"{server.url}/decode", {"payloads": []})).json() == {"payloads": []}


async def test_cors_preflight_and_answers_for_the_ui_origin_only(server: CodecServer) -> None:
    ui = "http://localhost:8233"
    pre = await http(
        "OPTIONS",
        f"{server.url}/default/decode",
        headers={"Origin": ui, "Access-Control-Request-Method": "POST"},
    )
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == ui
    assert pre.headers["access-control-allow-credentials"] == "true"
    assert pre.headers["access-control-allow-headers"] == "content-type,x-namespace,authorization"
    assert "POST" in pre.headers["access-control-allow-methods"]

    answer = await http("POST", f"{server.url}/decode", payloads_json(1), {"Origin": ui})
    assert answer.headers["access-control-allow-origin"] == ui

    other = await http("POST", f"{server.url}/decode", payloads_json(1), {"Origin": "http://evil"})
    assert "access-control-allow-origin" not in other.headers


async def test_tokens_wrong_is_403_missing_is_401_right_is_200(guarded: CodecServer) -> None:
    url, body = f"{guarded.url}/decode", payloads_json("x")
    wrong = await http("POST", url, body, {"Authorization": "Bearer nope"})
    assert wrong.status == 403 and codec_server.TOKENS_ENV in wrong.json()["error"]
    missing = await http("POST", url, body)
    assert missing.status == 401 and missing.headers["www-authenticate"] == "Bearer"
    for token in ("s3cret", "other"):
        ok = await http("POST", url, body, {"Authorization": f"Bearer {token}"})
        assert ok.status == 200 and ok.json() == body
    # The preflight carries no credentials, so it must not need any.
    assert (await http("OPTIONS", url, headers={"Origin": "http://localhost:8233"})).status == 204


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", '{"payloads": [...]}'),
        (b'{"payloads": "x"}', '{"payloads": [...]}'),
        (b'{"payloads": [{"nope": 1}]}', "proto JSON"),
        (b'{"payloads": [1]}', "proto JSON"),
    ],
)
async def test_malformed_bodies_are_400_with_a_message(
    server: CodecServer, body: bytes, message: str
) -> None:
    reply = await http("POST", f"{server.url}/decode", body)
    assert reply.status == 400 and message in reply.json()["error"]


async def test_unknown_path_404_wrong_method_405_unknown_key_422(server: CodecServer) -> None:
    assert (await http("POST", f"{server.url}/nope", payloads_json(1))).status == 404
    assert (await http("POST", f"{server.url}/a/b/decode", payloads_json(1))).status == 404
    get = await http("GET", f"{server.url}/decode")
    assert get.status == 405 and "POST" in get.headers["allow"]
    (foreign,) = await codec(f"k7:{K2}").encode([plain_payload("x")])
    reply = await http(
        "POST", f"{server.url}/decode", {"payloads": [json_format.MessageToDict(foreign)]}
    )
    assert reply.status == 422 and "'k7'" in reply.json()["error"]


async def test_two_requests_on_one_connection(server: CodecServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    body = json.dumps(payloads_json("x")).encode()
    request = (
        f"POST /decode HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    try:
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            status = await reader.readline()
            assert status.startswith(b"HTTP/1.1 200")
            headers = {}
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            assert json.loads(await reader.readexactly(int(headers["content-length"])))
        writer.write(b"garbage\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 400")
    finally:
        writer.close()
        await writer.wait_closed()


def test_server_config_refuses_an_open_address_without_tokens() -> None:
    with pytest.raises(ValueError, match=codec_server.TOKENS_ENV):
        ServerConfig.from_env({}, host="0.0.0.0")
    assert ServerConfig.from_env({codec_server.TOKENS_ENV: "t"}, host="0.0.0.0").tokens == ("t",)
    assert ServerConfig.from_env({}).host == "127.0.0.1"
    assert ServerConfig.from_env({}).origins == ("http://localhost:8233", "http://127.0.0.1:8233")
    with pytest.raises(ValueError, match=codec_server.ORIGINS_ENV):
        ServerConfig.from_env({codec_server.ORIGINS_ENV: "localhost:8233"})
    with pytest.raises(ValueError, match=codec_server.PORT_ENV):
        ServerConfig.from_env({codec_server.PORT_ENV: "http"})
    assert "s3cret" not in repr(ServerConfig(tokens=("s3cret",)))


def test_codec_server_without_keys_says_so() -> None:
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "codec_server.py"), "--port", "0"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert done.returncode != 0 and KEYS_ENV in done.stderr


# --- the dev stack -------------------------------------------------------------------------------


def test_dev_stack_points_the_ui_at_the_codec_server_only_when_asked() -> None:
    plain = dev.temporal_command("temporal", db_filename="t.db")
    assert "--ui-codec-endpoint" not in plain
    cmd = dev.temporal_command(
        "temporal", db_filename="t.db", ui_codec_endpoint="http://127.0.0.1:8081"
    )
    assert cmd[cmd.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:8081"
    assert dev.codec_command(8081)[-4:] == ["--host", "127.0.0.1", "--port", "8081"]


def test_dev_codec_server_env_allows_the_ui_origin_and_drops_tokens() -> None:
    env = dev.codec_env(
        9000, {KEYS_ENV: f"k1:{K1}", codec_server.TOKENS_ENV: "t", codec_server.HOST_ENV: "::"}
    )
    assert env[KEYS_ENV] == f"k1:{K1}"
    assert codec_server.TOKENS_ENV not in env and codec_server.HOST_ENV not in env
    config = ServerConfig.from_env(env)
    assert config.origins == ("http://localhost:9000", "http://127.0.0.1:9000")


def test_dev_banner_names_the_codec_server_when_there_is_one() -> None:
    kwargs: dict[str, Any] = {
        "pg_uri": "postgresql://x",
        "pg_log": Path("/d/pg/log"),
        "temporal_port": 7233,
        "ui_port": 8233,
        "task_queue": "escalation",
        "temporal_bin": Path("/v/bin/temporal"),
        "psql_bin": Path("/v/pg/bin/psql"),
    }
    assert "Codec server" not in dev.banner(**kwargs)
    text = dev.banner(**kwargs, codec_endpoint="http://127.0.0.1:8081")
    assert "Codec server  http://127.0.0.1:8081" in text and "codec.log" in text


def test_dev_up_stops_at_once_on_a_bad_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_start(*_a: object, **_k: object) -> None:
        raise AssertionError("started something although the key is bad")

    monkeypatch.setattr(dev, "start_postgres", must_not_start)
    monkeypatch.setenv(KEYS_ENV, "k1:short")
    status = dev.main(["up", "--no-demo", "--temporal-port", str(dev.free_port())])
    assert status != 0 and KEYS_ENV in capsys.readouterr().out


def test_codec_keys_repr_lists_ids_only() -> None:
    keys = CodecKeys({"k1": b"\x00" * 32}, "k1")
    assert repr(keys) == "CodecKeys(ids=['k1'], active='k1')"


async def test_clients_refuse_a_bad_key_with_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import readside
    import starter
    from tickets import cli

    monkeypatch.setenv(KEYS_ENV, "k1:short")
    assert await starter.main(["demo"]) == 2
    assert await cli.main(["show", "T-1"]) == 2
    assert await readside.amain(["report"]) == 2
    err = capsys.readouterr().err
    for prog in ("starter", "tickets", "readside"):
        assert f"{prog}: {KEYS_ENV}, entry 1" in err
