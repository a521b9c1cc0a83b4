"""The README's `temporal workflow start` example, run as written against a dev server: the
ticket opens, and the Temporal UI has a summary to list it by (issue 12: it had none)."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import uuid

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from runtime.config import PROJECT_ROOT
from tests.conftest import ticket_worker, venv_binary

pytestmark = [pytest.mark.asyncio, pytest.mark.devserver]


def readme_start_command() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^temporal workflow start .*?(?<!\\)\n", text, re.M | re.S)
    assert found, "README.md has no `temporal workflow start` example"
    return shlex.split(found.group(0).replace("\\\n", " "))


async def test_the_readme_start_example_opens_a_ticket_with_a_summary(
    dev_env: WorkflowEnvironment, db_pool: asyncpg.Pool
) -> None:
    argv = readme_start_command()
    assert "--static-summary" in argv
    tid = f"RM-{uuid.uuid4().hex[:8]}"
    old_tid = argv[argv.index("--workflow-id") + 1].removeprefix("ticket-")
    argv = [a.replace(old_tid, tid) for a in argv]
    task_queue = f"tq-{uuid.uuid4()}"
    argv[argv.index("--task-queue") + 1] = task_queue
    target = dev_env.client.service_client.config.target_host
    async with ticket_worker(dev_env.client, task_queue, db_pool):
        await asyncio.to_thread(
            subprocess.run,
            [venv_binary("temporal"), *argv[1:], "--address", target],
            check=True,
            capture_output=True,
            timeout=60,
        )
        handle = dev_env.client.get_workflow_handle(f"ticket-{tid}")
        described = await handle.describe()
        assert await described.static_summary()
        state = None
        for _ in range(100):  # the first workflow task opens it; a query before gets None
            state = await handle.query("state")
            if state is not None:
                break
            await asyncio.sleep(0.05)
        assert state is not None and state["ticket_id"] == tid
        await handle.terminate("test finished")
