"""`python -m runtime.health`: exit 0 when this host's worker polls the task queue.

The container health check of the worker (docker-compose.yml). It asks Temporal, not the
process: a worker that runs but cannot reach Temporal is not healthy. The SDK's default worker
identity is `<pid>@<hostname>`, and a container's hostname is its own.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from runtime.config import Settings
from runtime.process import exit_now
from runtime.temporal import connect


async def pollers(client: Client, task_queue: str) -> list[str]:
    """Identities of the workers polling the task queue for workflow tasks."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return [p.identity for p in response.pollers]


async def main(hostname: str | None = None, client: Client | None = None) -> int:
    host = hostname or socket.gethostname()
    try:
        settings = Settings.from_env()
        client = client or await connect(settings)
        found = await pollers(client, settings.task_queue)
    except Exception as exc:  # any failure is "not healthy", said in one line
        print(f"health: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if any(identity.endswith(f"@{host}") for identity in found):
        return 0
    print(f"health: no worker of host {host} polls {settings.task_queue!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
