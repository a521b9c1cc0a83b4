"""Prepare a real cluster: register the contract's search attributes, create/migrate the store.

    python -m runtime.setup                    both steps (the `escalation-setup` command)
    python -m runtime.setup --skip-temporal    only the event store schema
    python -m runtime.setup --skip-database    only the search attributes

Configuration is the worker's environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY / TEMPORAL_TLS_*, DATABASE_URL). Safe to run again and from several places at
once: attributes already registered with the right type are left alone, migrations already applied
are skipped. Exit 0 when both steps are done, 1 with a message saying what to do otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runtime.config import Settings
from workflows.search_attributes import CLI_TYPES

INDEXED_TYPES: dict[str, IndexedValueType.ValueType] = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}
TYPE_NAMES = {value: name for name, value in INDEXED_TYPES.items()}

# Servers that will not let this identity add attributes: Temporal Cloud answers one of these.
_NOT_ALLOWED = {
    RPCStatusCode.PERMISSION_DENIED,
    RPCStatusCode.UNIMPLEMENTED,
    RPCStatusCode.UNAUTHENTICATED,
}


class SetupError(Exception):
    """A step could not be done; the message says why and what to do."""


@dataclass
class AttributeReport:
    namespace: str
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)


def _manual_steps(namespace: str, names: Mapping[str, str]) -> str:
    tcld = " ".join(f'--sa "{n}={t}"' for n, t in names.items())
    cli = "; ".join(
        f"temporal operator search-attribute create --namespace {namespace} --name {n} --type {t}"
        for n, t in names.items()
    )
    return (
        "On Temporal Cloud, add them in the Cloud UI (Namespaces → "
        f"{namespace} → Custom Search Attributes) or with "
        f"`tcld namespace search-attributes add --namespace {namespace} {tcld}`. "
        f"On a self-hosted cluster, run this command as an identity allowed to use the operator "
        f"service, or an admin runs: {cli}. "
        "Then run `python -m runtime.setup --skip-temporal` for the database step, or this "
        "command again to check."
    )


async def _existing(client: Client, namespace: str) -> dict[str, str]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    found = {
        name: TYPE_NAMES.get(kind, str(kind)) for name, kind in listed.system_attributes.items()
    }
    found.update(
        {name: TYPE_NAMES.get(kind, str(kind)) for name, kind in listed.custom_attributes.items()}
    )
    return found


def _refused(exc: RPCError, what: str, namespace: str, wanted: Mapping[str, str]) -> SetupError:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return SetupError(
            f"namespace {namespace!r} does not exist on this Temporal server ({exc.message}). "
            f"Create it first (`temporal operator namespace create --namespace {namespace}`, or "
            "in the Cloud UI), or set TEMPORAL_NAMESPACE."
        )
    if exc.status in _NOT_ALLOWED:
        return SetupError(
            f"the Temporal server refused to {what} in namespace {namespace!r} "
            f"({exc.status.name}: {exc.message}). The worker needs these search attributes: "
            + ", ".join(f"{n} ({t})" for n, t in wanted.items())
            + ". "
            + _manual_steps(namespace, wanted)
        )
    return SetupError(
        f"could not {what} in namespace {namespace!r}: {exc.status.name}: {exc.message}"
    )


async def register_search_attributes(
    client: Client, namespace: str | None = None, wanted: Mapping[str, str] = CLI_TYPES
) -> AttributeReport:
    """Add the contract's search attributes that `namespace` lacks; idempotent.

    Raises SetupError when one exists with another type, or when the server refuses.
    """
    ns = namespace or client.namespace
    try:
        existing = await _existing(client, ns)
    except RPCError as exc:
        raise _refused(exc, "list search attributes", ns, wanted) from exc
    mismatched = {n: t for n, t in wanted.items() if n in existing and existing[n] != t}
    if mismatched:
        raise SetupError(
            f"search attributes in namespace {ns!r} exist with another type: "
            + ", ".join(
                f"{n} is {existing[n]} but the ticket workflow needs {t}"
                for n, t in mismatched.items()
            )
            + ". A search attribute's type cannot change: remove it "
            f"(`temporal operator search-attribute remove --namespace {ns} --name NAME`) "
            "and run setup again, or use another namespace."
        )
    report = AttributeReport(ns, present=[n for n in wanted if n in existing])
    missing = {n: t for n, t in wanted.items() if n not in existing}
    if not missing:
        return report
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=ns,
                search_attributes={n: INDEXED_TYPES[t] for n, t in missing.items()},
            )
        )
    except RPCError as exc:
        if exc.status in _NOT_ALLOWED or exc.status == RPCStatusCode.NOT_FOUND:
            raise _refused(exc, "add search attributes", ns, missing) from exc
        # Another setup may have added them at the same moment: what counts is what is there now.
        try:
            after = await _existing(client, ns)
        except RPCError:
            after = {}
        if any(after.get(n) != t for n, t in missing.items()):
            raise _refused(exc, "add search attributes", ns, missing) from exc
    report.added = list(missing)
    return report


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


async def migrate_database(settings: Settings) -> tuple[str, list[int], list[int]]:
    """Create/migrate the event store at DATABASE_URL: (redacted DSN, applied now, all applied)."""
    # Imported here so `--skip-database` needs nothing of the store.
    import asyncpg

    from runtime.database import resolve_database_url
    from store.connection import create_pool
    from store.schema import applied_versions, migrate

    dsn = await asyncio.to_thread(resolve_database_url, settings)
    shown = redact_dsn(dsn)
    try:
        pool = await create_pool(dsn, min_size=1, max_size=2)
    except (OSError, asyncpg.PostgresError) as exc:
        raise SetupError(f"cannot connect to PostgreSQL at {shown}: {exc}") from exc
    try:
        applied = await migrate(pool)
        return shown, applied, await applied_versions(pool)
    except asyncpg.PostgresError as exc:
        raise SetupError(f"migrating the event store at {shown} failed: {exc}") from exc
    finally:
        await pool.close()


async def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    client: Client | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="escalation-setup",
        description="Register the ticket search attributes on the Temporal namespace and "
        "create/migrate the event store schema. Idempotent.",
    )
    parser.add_argument(
        "--skip-temporal", action="store_true", help="do not touch Temporal search attributes"
    )
    parser.add_argument(
        "--skip-database", action="store_true", help="do not create/migrate the event store"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(env)
    except ValueError as exc:
        err.write(f"setup: {exc}\n")
        return 1
    try:
        if not args.skip_temporal:
            if client is None:
                from runtime.temporal import connect

                client = await connect(settings, env)
            report = await register_search_attributes(client)
            out.write(
                f"search attributes in namespace {report.namespace!r}: "
                f"added {', '.join(report.added) or 'none'}; "
                f"already present {', '.join(report.present) or 'none'}\n"
            )
        if not args.skip_database:
            if settings.database_url is None:
                err.write("setup: DATABASE_URL is not set: using the dev stack's embedded server\n")
            shown, applied, versions = await migrate_database(settings)
            out.write(
                f"event store at {shown}: "
                + (f"applied migrations {applied}" if applied else "schema up to date")
                + f" (versions {versions})\n"
            )
    except (SetupError, ConnectionError) as exc:
        err.write(f"setup: {exc}\n")
        return 1
    return 0


def cli() -> None:
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    cli()
