"""Worker entry point: migrates the event store, then runs TicketWorkflow and its activities.

Configuration is the environment (docs/contract.md#configuration, docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.agents import AgentActivities
from activities.assignment import AssignmentActivities
from activities.event_store import EventStoreActivities
from activities.policy import PolicyActivities
from domain.agents import DirectoryError, check_teams
from domain.channels import NO_CHANNELS, ChannelConfig, ChannelError
from domain.errors import PolicyError
from domain.policy import Policy
from runtime.config import Settings
from runtime.config_files import load_channels, load_policies
from runtime.database import resolve_database_url
from runtime.logs import configure_logging
from runtime.metrics import bind_address, prometheus_runtime
from runtime.principal import PrincipalSettings
from runtime.process import exit_now, stop_on_signals
from runtime.temporal import connect
from store.connection import create_pool
from store.projections import background_projector
from store.schema import migrate
from workflows.principal import PrincipalInterceptor
from workflows.ticket import TicketWorkflow

log = structlog.get_logger("worker")


def build_worker(
    client: Client,
    task_queue: str,
    pool: asyncpg.Pool,
    policies: dict[str, Policy],
    agents: AgentActivities | None = None,
    channels: ChannelConfig = NO_CHANNELS,
    *,
    max_concurrent_activities: int | None = None,
    max_concurrent_workflow_tasks: int | None = None,
    max_cached_workflows: int = 1000,
    shutdown_grace: timedelta = timedelta(seconds=10),
    store: EventStoreActivities | None = None,
) -> Worker:
    """The worker; the tuning keywords default to the SDK's defaults (Settings reads them).
    Pass `store` to close it (its group committer) before the pool."""
    if store is None:
        store = EventStoreActivities(pool, channels)
    policy = PolicyActivities(policies)
    agents = agents or AgentActivities(None)
    assignment = AssignmentActivities(pool, agents)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TicketWorkflow],
        # Our workflow modules hold no mutable globals, so the sandbox need not re-import them
        # for every new ticket (18% of the worker's event-loop time in the bench profile).
        # tests/test_replay.py replays every history under the full sandbox, which still
        # catches non-deterministic calls in workflow code.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
        ),
        activities=[
            store.append_events,
            store.notify,
            store.stored_ticket,
            policy.resolve_policy,
            agents.authorize,
            agents.authorize_batch,
            assignment.choose_assignee,
        ],
        # Hands each Signal's and Update's signed principal to the authorization step.
        interceptors=[PrincipalInterceptor()],
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        max_cached_workflows=max_cached_workflows,
        # Let running activities finish their write on SIGTERM before the process exits.
        graceful_shutdown_timeout=shutdown_grace,
    )


def tuning(settings: Settings) -> dict[str, Any]:
    """build_worker's tuning keywords from the ESCALATION_MAX_* / _SHUTDOWN_GRACE settings."""
    return {
        "max_concurrent_activities": settings.max_concurrent_activities,
        "max_concurrent_workflow_tasks": settings.max_concurrent_workflow_tasks,
        "max_cached_workflows": settings.max_cached_workflows,
        "shutdown_grace": timedelta(seconds=settings.shutdown_grace),
    }


async def run(settings: Settings, stop: asyncio.Event) -> None:
    policies = load_policies(settings.policy_file)  # a bad file stops the worker here
    principals = PrincipalSettings.from_env()  # ESCALATION_PRINCIPAL_KEYS / _REQUIRE_PRINCIPAL
    agents = AgentActivities(  # likewise a bad agent directory
        settings.agents_file,
        policies,
        principal_keys=principals.keys,
        require_principal=principals.required,
    )
    channels = load_channels(settings.channels_file)  # and bad notification channels
    channels.check_policies(policies)
    directory = agents.directory()
    if directory is not None:  # every team of paths and teams must have agents
        check_teams(directory, policies, str(settings.agents_file))
    if settings.agents_file is None:
        log.warning(
            "no agent directory (ESCALATION_AGENTS_FILE): running open, every agent may act"
        )
    dsn = resolve_database_url(settings)
    pool = await create_pool(dsn)
    store = EventStoreActivities(pool, channels)
    try:
        applied = await migrate(pool)
        log.info("event store ready", migrations_applied=applied)
        runtime = None
        if settings.metrics_port is not None:
            address = bind_address(settings.metrics_port, settings.metrics_host)
            runtime = prometheus_runtime(address)
            log.info("metrics served", url=f"http://{address}/metrics")
        client = await connect(settings, runtime=runtime, worker=True)
        worker = build_worker(
            client,
            settings.task_queue,
            pool,
            policies,
            agents,
            channels,
            **tuning(settings),
            store=store,
        )
        # The read side's projector runs beside the worker unless ESCALATION_PROJECTOR=off.
        async with worker, background_projector(pool, settings.projector):
            log.info(
                "worker started",
                task_queue=settings.task_queue,
                namespace=settings.namespace,
                temporal=settings.temporal_address,
                policies=sorted(policies),
            )
            await stop.wait()
            log.info("worker stopping")
    finally:
        await store.close()
        await pool.close()


def main() -> None:
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        PrincipalSettings.from_env()
    except ValueError as exc:
        sys.exit(f"worker: {exc}")

    async def _main() -> None:
        await run(settings, stop_on_signals())

    try:
        asyncio.run(_main())
    except PolicyError as exc:
        sys.exit(f"worker: invalid SLA policy: {exc}")
    except DirectoryError as exc:
        sys.exit(f"worker: invalid agent directory: {exc}")
    except ChannelError as exc:
        sys.exit(f"worker: invalid notification channels: {exc}")
    except ConnectionError as exc:
        sys.exit(f"worker: {exc}")
    log.info("worker stopped")
    exit_now(0)


if __name__ == "__main__":
    main()
