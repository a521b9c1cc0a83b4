"""starter.py, worker.py and the environment configuration, as their users meet them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import starter
from domain.errors import InvalidTicket
from runtime.config import PROJECT_ROOT, Settings
from runtime.temporal import connect_options
from tests.conftest import TicketRig


def ticket(**fields: str) -> dict[str, str]:
    return {
        "ticket_id": f"S-{uuid.uuid4().hex[:10]}",
        "subject": "Refund not received",
        "customer_id": "acme",
        **fields,
    }


@pytest.mark.asyncio
async def test_open_is_idempotent_under_concurrent_calls(dev_rig: TicketRig) -> None:
    t = ticket()
    handles = await asyncio.gather(
        *(starter.open_ticket(dev_rig.client, t, dev_rig.task_queue) for _ in range(20))
    )
    dev_rig.handles.append(handles[0])
    assert len({h.result_run_id for h in handles}) == 1
    # The ticket is open once its policy is resolved (one activity after the start).
    history: list[dict[str, str]] = []
    for _ in range(500):
        history = await handles[0].query("history")
        if history:
            break
        await asyncio.sleep(0.01)
    assert [e["event_type"] for e in history].count("TicketOpened") == 1
    # Visibility lags behind the start: wait until it lists the run, then count.
    query = f"WorkflowId = 'ticket-{t['ticket_id']}'"
    runs = []
    for _ in range(500):
        runs = [w async for w in dev_rig.client.list_workflows(query)]
        if runs:
            break
        await asyncio.sleep(0.01)
    assert len(runs) == 1


@pytest.mark.asyncio
async def test_a_closed_ticket_id_is_not_opened_again(dev_rig: TicketRig) -> None:
    t = ticket()
    handle = await starter.open_ticket(dev_rig.client, t, dev_rig.task_queue)
    await handle.execute_update("close", {"agent_id": "amy"})
    await handle.result()
    with pytest.raises(starter.TicketClosedError, match="already exists and is no longer running"):
        await starter.open_ticket(dev_rig.client, t, dev_rig.task_queue)


@pytest.mark.asyncio
async def test_open_validates_before_sending(dev_rig: TicketRig) -> None:
    with pytest.raises(InvalidTicket, match="priority"):
        await starter.open_ticket(dev_rig.client, ticket(priority="p0"), dev_rig.task_queue)


@pytest.mark.asyncio
async def test_starter_cli_opens_and_reports_bad_input(
    dev_rig: TicketRig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESCALATION_TASK_QUEUE", dev_rig.task_queue)
    tid = f"S-{uuid.uuid4().hex[:10]}"
    args = ["open", "--ticket-id", tid, "--subject", "Printer", "--customer", "initech"]
    assert await starter.main(args, client=dev_rig.client) == 0
    dev_rig.handles.append(dev_rig.client.get_workflow_handle(f"ticket-{tid}"))
    assert f"ticket {tid}: workflow ticket-{tid}" in capsys.readouterr().out
    bad = ["open", "--ticket-id", "bad id", "--subject", "x", "--customer", "c"]
    assert await starter.main(bad, client=dev_rig.client) == 2
    assert "invalid ticket: ticket_id" in capsys.readouterr().err


def run_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env={"PATH": "/usr/bin:/bin", "LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_refuses_a_bad_policy_file_naming_file_and_key(tmp_path: Path) -> None:
    policy = tmp_path / "sla.toml"
    policy.write_text(
        '[policies.default]\ntiers = ["L1"]\n'
        '[policies.default.targets.urgent]\nfirst_response = "15m"\nresolution = "4h"\n'
        'tier_budget = "1h"\nfirst_respons = "1m"\n'
    )
    done = run_worker({"ESCALATION_POLICY_FILE": str(policy), "DATABASE_URL": "postgresql://x"})
    assert done.returncode != 0
    assert str(policy) in done.stderr
    assert "policies.default.targets.urgent.first_respons: unknown field" in done.stderr


def test_worker_refuses_a_bad_log_format() -> None:
    done = run_worker({"LOG_FORMAT": "xml"})
    assert done.returncode != 0 and "LOG_FORMAT must be 'json' or 'console'" in done.stderr


def test_worker_says_when_temporal_is_unreachable(pg_dsn: str) -> None:
    done = run_worker({"DATABASE_URL": pg_dsn, "TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert done.returncode != 0
    assert "cannot connect to Temporal at 127.0.0.1:1" in done.stderr


def test_settings_read_the_contract_environment() -> None:
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env(
        {
            "TEMPORAL_ADDRESS": "t:7233",
            "TEMPORAL_NAMESPACE": "support",
            "ESCALATION_TASK_QUEUE": "q",
            "DATABASE_URL": "postgresql://db/x",
            "ESCALATION_POLICY_FILE": "/etc/sla.toml",
            "LOG_FORMAT": "JSON",
            "LOG_LEVEL": "DEBUG",
        }
    )
    assert (s.temporal_address, s.namespace, s.task_queue) == ("t:7233", "support", "q")
    assert (s.database_url, s.policy_file) == ("postgresql://db/x", "/etc/sla.toml")
    assert (s.log_format, s.log_level) == ("json", "debug")


def test_connect_options_take_cloud_and_tls_settings_from_temporal_env() -> None:
    plain = connect_options(Settings(), {})
    assert plain == {"target_host": "localhost:7233", "namespace": "default"}
    cloud = connect_options(
        Settings(),
        {
            "TEMPORAL_ADDRESS": "acme.a1b2.tmprl.cloud:7233",
            "TEMPORAL_NAMESPACE": "acme.a1b2",
            "TEMPORAL_API_KEY": "secret",
        },
    )
    assert cloud["target_host"] == "acme.a1b2.tmprl.cloud:7233"
    assert cloud["namespace"] == "acme.a1b2"
    assert cloud["api_key"] == "secret" and cloud["tls"] is True
    mtls = connect_options(Settings(), {"TEMPORAL_TLS": "true", "TEMPORAL_TLS_SERVER_NAME": "t"})
    assert mtls["tls"].domain == "t"


@pytest.mark.asyncio
async def test_open_sets_summary_and_markdown_details_for_the_ui(dev_rig: TicketRig) -> None:
    t = ticket(priority="urgent", category="billing", description="Card charged twice")
    handle = await starter.open_ticket(dev_rig.client, t, dev_rig.task_queue)
    dev_rig.handles.append(handle)
    described = await handle.describe()
    assert await described.static_summary() == "P1 · acme · Refund not received"
    details = await described.static_details()
    assert details is not None
    assert "### Refund not received" in details and "- **priority:** urgent (P1)" in details
    assert "- **SLA policy:** default" in details
    assert "| |" not in details  # the UI drops an empty table header: "SLA policydefault"
    assert "Card charged twice" in details
