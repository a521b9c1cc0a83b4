"""runtime.setup: search attributes through the operator service, and the event store schema."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    ListSearchAttributesResponse,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from runtime.config import PROJECT_ROOT
from runtime.setup import SetupError, main, redact_dsn, register_search_attributes
from tests.conftest import venv_binary
from workflows.search_attributes import CLI_TYPES

FRESH = "fresh"
CLASHING = "clashing"


async def run_setup(argv: list[str], **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await main(argv, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bare_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server whose namespaces know none of our attributes (`default` plus two more)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        dev_server_extra_args=["--namespace", FRESH, "--namespace", CLASHING],
        ui=False,
    )
    async with env:
        yield env


async def custom_attributes(env: WorkflowEnvironment, namespace: str) -> dict[str, int]:
    listed = await env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return dict(listed.custom_attributes)


# --- Temporal: real servers -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_setup_is_idempotent_where_the_attributes_exist(dev_env: WorkflowEnvironment) -> None:
    code, out, err = await run_setup(["--skip-database"], client=dev_env.client)
    assert (code, err) == (0, "")
    assert "added none" in out
    assert "already present " + ", ".join(CLI_TYPES) in out


@pytest.mark.asyncio
async def test_a_fresh_namespace_gets_every_attribute_once(bare_env: WorkflowEnvironment) -> None:
    before = await custom_attributes(bare_env, FRESH)
    assert not set(CLI_TYPES) & set(before)

    report = await register_search_attributes(bare_env.client, FRESH)
    assert report.added == list(CLI_TYPES)
    after = await custom_attributes(bare_env, FRESH)
    assert after["TicketTier"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert after["SlaBreached"] == IndexedValueType.INDEXED_VALUE_TYPE_BOOL
    assert after["TicketSlaDue"] == IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
    assert after["TicketPath"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD  # v2
    assert after["TicketTags"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST  # v2
    assert set(CLI_TYPES) <= set(after)

    again = await register_search_attributes(bare_env.client, FRESH)
    assert (again.added, again.present) == ([], list(CLI_TYPES))


@pytest.mark.asyncio
async def test_setup_command_against_the_default_namespace(bare_env: WorkflowEnvironment) -> None:
    """Through TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, as the compose service runs it."""
    env = {
        "TEMPORAL_ADDRESS": bare_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": "default",
    }
    code, out, err = await run_setup(["--skip-database"], env=env)
    assert (code, err) == (0, ""), err
    assert "namespace 'default': added " + ", ".join(CLI_TYPES) in out
    assert set(CLI_TYPES) <= set(await custom_attributes(bare_env, "default"))


@pytest.mark.asyncio
async def test_a_type_clash_is_reported_and_nothing_is_added(
    bare_env: WorkflowEnvironment,
) -> None:
    await bare_env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=CLASHING,
            search_attributes={"TicketTier": IndexedValueType.INDEXED_VALUE_TYPE_TEXT},
        )
    )
    with pytest.raises(SetupError) as err:
        await register_search_attributes(bare_env.client, CLASHING)
    message = str(err.value)
    assert "TicketTier is Text but the ticket workflow needs Keyword" in message
    assert "temporal operator search-attribute remove" in message
    assert "TicketStatus" not in await custom_attributes(bare_env, CLASHING)


@pytest.mark.asyncio
async def test_an_unknown_namespace_says_so(bare_env: WorkflowEnvironment) -> None:
    with pytest.raises(SetupError, match="namespace 'nowhere' does not exist"):
        await register_search_attributes(bare_env.client, "nowhere")


# --- Temporal: a server that refuses (Temporal Cloud, restricted identities) ----------------------


class FakeOperator:
    def __init__(
        self,
        existing: dict[str, int],
        list_fails: RPCError | None = None,
        add_fails: RPCError | None = None,
    ) -> None:
        self.existing = existing
        self.list_fails = list_fails
        self.add_fails = add_fails
        self.added: list[dict[str, int]] = []

    async def list_search_attributes(self, req: ListSearchAttributesRequest) -> Any:
        if self.list_fails:
            raise self.list_fails
        return ListSearchAttributesResponse(
            custom_attributes={k: IndexedValueType.ValueType(v) for k, v in self.existing.items()}
        )

    async def add_search_attributes(self, req: AddSearchAttributesRequest) -> Any:
        if self.add_fails:
            raise self.add_fails
        self.added.append(dict(req.search_attributes))
        self.existing.update(req.search_attributes)


class FakeClient:
    def __init__(self, operator: FakeOperator, namespace: str = "acme-prod.a1b2c") -> None:
        self.operator_service = operator
        self.namespace = namespace


def denied(status: RPCStatusCode) -> RPCError:
    return RPCError("Request unauthorized.", status, b"")


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED])
async def test_a_refused_add_says_what_to_do(status: RPCStatusCode) -> None:
    op = FakeOperator(
        {"TicketStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}, add_fails=denied(status)
    )
    code, out, err = await run_setup(["--skip-database"], client=FakeClient(op))
    assert code == 1
    assert out == ""
    assert f"refused to add search attributes in namespace 'acme-prod.a1b2c' ({status.name}" in err
    # Only the missing ones are asked for, with their types, and the ways to add them by hand.
    assert "TicketTier (Keyword)" in err and "TicketSlaDue (Datetime)" in err
    assert "TicketStatus (Keyword)" not in err
    assert "Cloud UI" in err and "tcld namespace search-attributes add" in err
    assert "temporal operator search-attribute create" in err
    assert "--skip-temporal" in err


@pytest.mark.asyncio
async def test_a_refused_list_says_what_to_do() -> None:
    op = FakeOperator({}, list_fails=denied(RPCStatusCode.PERMISSION_DENIED))
    with pytest.raises(SetupError) as err:
        await register_search_attributes(FakeClient(op))  # type: ignore[arg-type]
    assert "refused to list search attributes" in str(err.value)
    assert "PERMISSION_DENIED" in str(err.value)
    assert "Cloud UI" in str(err.value)


@pytest.mark.asyncio
async def test_a_concurrent_setup_that_won_the_race_is_fine() -> None:
    op = FakeOperator({}, add_fails=RPCError("already exists", RPCStatusCode.ALREADY_EXISTS, b""))
    original = op.add_search_attributes

    async def add_then_fail(req: AddSearchAttributesRequest) -> Any:
        op.add_fails = None
        await original(req)  # the other setup's add lands...
        raise RPCError("already exists", RPCStatusCode.ALREADY_EXISTS, b"")  # ...and ours fails

    op.add_search_attributes = add_then_fail  # type: ignore[method-assign]
    report = await register_search_attributes(FakeClient(op))  # type: ignore[arg-type]
    assert report.added == list(CLI_TYPES)


# --- Database ----------------------------------------------------------------------------------


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@pytest.mark.asyncio
async def test_setup_creates_then_keeps_the_schema(pg_dsn: str, db_pool: asyncpg.Pool) -> None:
    name = f"setup_{uuid.uuid4().hex[:8]}"
    await db_pool.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {"DATABASE_URL": with_database(pg_dsn, name)}
        code, out, err = await run_setup(["--skip-temporal"], env=env)
        assert (code, err) == (0, "")
        assert "applied migrations [1, 2" in out
        code, out, _ = await run_setup(["--skip-temporal"], env=env)
        assert code == 0
        assert "schema up to date" in out
        conn = await asyncpg.connect(env["DATABASE_URL"])
        try:
            assert await conn.fetchval("SELECT to_regclass('ticket_events') IS NOT NULL")
        finally:
            await conn.close()
    finally:
        await db_pool.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.asyncio
async def test_an_unreachable_database_is_reported() -> None:
    env = {"DATABASE_URL": "postgresql://esc:s3cret@127.0.0.1:1/escalation"}
    code, _, err = await run_setup(["--skip-temporal"], env=env)
    assert code == 1
    assert "cannot connect to PostgreSQL at postgresql://esc:***@127.0.0.1:1/escalation" in err
    assert "s3cret" not in err


def test_redact_dsn() -> None:
    assert redact_dsn("postgresql://u:p@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_dsn("postgresql://h/d") == "postgresql://h/d"


def test_python_m_runtime_setup_end_to_end(dev_env: WorkflowEnvironment, pg_dsn: str) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DATABASE_URL": pg_dsn,
    }
    done = subprocess.run(
        [sys.executable, "-m", "runtime.setup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "search attributes in namespace 'default'" in done.stdout
    assert "event store at" in done.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "runtime.setup", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert "--skip-temporal" in helped.stdout and "--skip-database" in helped.stdout
