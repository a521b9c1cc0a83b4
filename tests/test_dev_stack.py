"""The embedded dev stack (runtime/dev.py): its pure parts, and the real pieces started once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from runtime import dev
from workflows.search_attributes import CLI_TYPES

VALID_CLI_TYPES = {"Text", "Keyword", "Int", "Double", "Bool", "Datetime", "KeywordList"}


def _flag_values(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == flag]


def test_temporal_command_registers_every_search_attribute_with_its_type() -> None:
    cmd = dev.temporal_command("temporal", db_filename=Path("/data/temporal.db"))

    registered = dict(v.split("=", 1) for v in _flag_values(cmd, "--search-attribute"))

    assert registered == CLI_TYPES
    assert registered["SlaBreached"] == "Bool"
    assert registered["TicketSlaDue"] == "Datetime"
    assert registered["TicketStatus"] == "Keyword"
    assert registered["TicketPath"] == "Keyword"  # v2
    assert registered["TicketTags"] == "KeywordList"  # v2
    assert set(registered.values()) <= VALID_CLI_TYPES


def test_temporal_command_ports_db_namespace_and_ip() -> None:
    cmd = dev.temporal_command(
        "/venv/bin/temporal", db_filename=Path("/d/t.db"), port=7300, ui_port=9000
    )

    assert cmd[:3] == ["/venv/bin/temporal", "server", "start-dev"]
    assert _flag_values(cmd, "--port") == ["7300"]
    assert _flag_values(cmd, "--ui-port") == ["9000"]
    assert _flag_values(cmd, "--db-filename") == ["/d/t.db"]
    assert _flag_values(cmd, "--namespace") == ["default"]
    assert _flag_values(cmd, "--ip") == ["127.0.0.1"]


def test_default_ports_are_7233_and_8233() -> None:
    cmd = dev.temporal_command("temporal", db_filename="t.db")

    assert _flag_values(cmd, "--port") == ["7233"]
    assert _flag_values(cmd, "--ui-port") == ["8233"]
    assert dev.ui_port_for(7300) == 8300


def test_dev_stack_writes_temporal_state_under_data_dir() -> None:
    assert dev.TEMPORAL_DB.parent == dev.DATA_DIR
    assert dev.TEMPORAL_LOG.parent == dev.DATA_DIR
    assert dev.EMBEDDED_PG_DIR.parent == dev.DATA_DIR


def test_worker_env_points_at_the_stack_and_keeps_the_rest() -> None:
    base = {
        "PATH": "/usr/bin",
        "LOG_LEVEL": "debug",
        "DATABASE_URL": "postgresql://elsewhere/db",
        "TEMPORAL_ADDRESS": "cloud.example:7233",
        "TEMPORAL_NAMESPACE": "prod",
        "TEMPORAL_API_KEY": "secret",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": "/c.pem",
    }

    env = dev.worker_env("postgresql://postgres:@/postgres?host=/x", "127.0.0.1:7233", base=base)

    assert env["DATABASE_URL"] == "postgresql://postgres:@/postgres?host=/x"
    assert env["TEMPORAL_ADDRESS"] == "127.0.0.1:7233"
    assert env["TEMPORAL_NAMESPACE"] == "default"
    assert env["PATH"] == "/usr/bin"
    assert env["LOG_LEVEL"] == "debug"
    assert "TEMPORAL_API_KEY" not in env
    assert "TEMPORAL_TLS_CLIENT_CERT_PATH" not in env
    assert "LOG_FORMAT" not in env
    assert base["TEMPORAL_API_KEY"] == "secret"  # the caller's mapping is not touched


def test_worker_env_asks_for_console_logs_only_for_a_terminal() -> None:
    assert dev.worker_env("u", "a", base={}, console_logs=True)["LOG_FORMAT"] == "console"
    chosen = dev.worker_env("u", "a", base={"LOG_FORMAT": "json"}, console_logs=True)
    assert chosen["LOG_FORMAT"] == "json"


@pytest.fixture
def listening_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_port_check_names_the_port_in_use(listening_port: int) -> None:
    assert dev.port_in_use(listening_port)

    with pytest.raises(dev.PortInUseError) as caught:
        dev.check_ports_free({"Temporal frontend": listening_port})

    assert caught.value.port == listening_port
    assert f"port {listening_port} (Temporal frontend)" in str(caught.value)


def test_port_check_passes_free_ports() -> None:
    port = dev.free_port()

    assert not dev.port_in_use(port)
    dev.check_ports_free({"Temporal frontend": port, "Temporal UI": dev.free_port()})


def test_up_fails_fast_on_a_taken_port_before_starting_anything(
    listening_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_start(*_a: object, **_k: object) -> None:
        raise AssertionError("started something although the port is taken")

    monkeypatch.setattr(dev, "start_postgres", must_not_start)
    monkeypatch.setattr(dev, "start_temporal", must_not_start)

    status = dev.main(["up", "--no-demo", "--temporal-port", str(listening_port)])

    assert status != 0
    assert f"port {listening_port}" in capsys.readouterr().out


def test_temporal_binary_and_psql_are_found() -> None:
    assert dev.find_temporal_binary().is_file()
    assert dev.psql_binary().is_file()


def test_banner_names_ui_dsn_stop_and_commands() -> None:
    text = dev.banner(
        pg_uri="postgresql://postgres:@/postgres?host=/d/pg",
        pg_log=Path("/d/pg/log"),
        temporal_port=7233,
        ui_port=8233,
        task_queue="escalation",
        temporal_bin=Path("/v/bin/temporal"),
        psql_bin=Path("/v/pg/bin/psql"),
    )

    assert "http://localhost:8233" in text
    assert "postgresql://postgres:@/postgres?host=/d/pg" in text
    assert "Ctrl-C" in text
    assert "workflow list --address 127.0.0.1:7233" in text
    assert "ticket_events" in text


def _gone(pid: int) -> bool:
    return not dev.pid_alive(pid)


@pytest.mark.slow
def test_real_postgres_and_temporal_start_answer_and_stop(tmp_path: Path) -> None:
    """Integration: the real embedded PostgreSQL and `temporal server start-dev`, on free ports."""
    import asyncpg
    import psutil
    from temporalio.client import Client

    port, ui_port = dev.free_port(), dev.free_port()
    pg = temporal = None
    try:
        pg = dev.start_postgres(tmp_path / "pg")
        temporal = dev.start_temporal(
            db_filename=tmp_path / "temporal.db",
            log_path=tmp_path / "temporal.log",
            port=port,
            ui_port=ui_port,
            cwd=tmp_path,
        )
        dev.wait_for_temporal(port, child=temporal, timeout=30)

        async def probe() -> tuple[int, dict[str, int]]:
            conn = await asyncpg.connect(pg.uri)
            try:
                one = await conn.fetchval("select 1")
            finally:
                await conn.close()
            client = await Client.connect(f"127.0.0.1:{port}")
            from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

            attrs = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace="default")
            )
            return one, dict(attrs.custom_attributes)

        one, custom = asyncio.run(probe())
        assert one == 1
        assert set(CLI_TYPES) <= set(custom)
        dev.wait_for_port(ui_port, timeout=10, child=temporal)
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=5) as resp:
            assert resp.status == 200
    finally:
        pg_pid = pg.pid if pg else None
        if temporal is not None:
            assert temporal.stop(timeout=15) is not None
        if pg is not None:
            pg.stop()

    assert temporal.proc.returncode == 0, (tmp_path / "temporal.log").read_text()[-2000:]
    assert pg_pid is not None and _gone(pg_pid)
    leftovers = [
        p.info
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or []) and p.status() != "zombie"
    ]
    assert leftovers == []


class _ClosedPipe:
    """stdout after `tee` died with the Ctrl-C: every write fails."""

    def write(self, _text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


class _Piece:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stopped = False
        self.marker_seen = threading.Event()
        self.marker_seen.set()
        self.uri = "postgresql://postgres:@/postgres?host=/nowhere"
        self.log_path = Path("/nowhere/log")

    def alive(self) -> bool:
        return not self.stopped

    def stop(self, timeout: float = 0) -> int:
        self.stopped = True
        return 0


def test_ctrl_c_with_output_into_a_closed_pipe_still_stops_every_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`dev.py up | tee up.log`, then Ctrl-C: the closed pipe used to raise inside the shutdown,
    before anything was stopped, leaving Temporal and PostgreSQL holding their ports."""
    pieces: list[_Piece] = []

    def piece(name: str) -> _Piece:
        pieces.append(_Piece(name))
        return pieces[-1]

    monkeypatch.setattr(dev, "start_postgres", lambda *_a, **_k: piece("PostgreSQL"))
    monkeypatch.setattr(dev, "start_temporal", lambda **_k: piece("temporal"))
    monkeypatch.setattr(dev, "wait_for_temporal", lambda *_a, **_k: None)
    monkeypatch.setattr(dev.Child, "spawn", classmethod(lambda _cls, name, *_a, **_k: piece(name)))
    monkeypatch.setattr(dev, "http_ok", lambda *_a, **_k: True)
    monkeypatch.setattr(dev, "banner", lambda **_k: "banner")
    monkeypatch.setattr(dev, "psql_binary", lambda: Path("/nowhere/psql"))
    interrupt = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    try:
        status = dev.run_up(
            dev.Options(
                temporal_port=dev.free_port(),
                ui_port=dev.free_port(),
                api_port=dev.free_port(),
                demo=False,
            ),
            out=_ClosedPipe(),  # type: ignore[arg-type]
        )
    finally:
        interrupt.cancel()

    assert [p.name for p in pieces] == ["PostgreSQL", "temporal", "worker", "api"]
    assert all(p.stopped for p in pieces)
    assert status == 0


def test_a_taken_port_names_the_process_holding_it(listening_port: int) -> None:
    with pytest.raises(dev.PortInUseError) as caught:
        dev.check_ports_free({"Temporal frontend": listening_port})

    assert f"pid {os.getpid()} (" in str(caught.value)


def test_the_teams_demo_files_are_written_unless_the_caller_chose_theirs(tmp_path: Path) -> None:
    from domain.agents import check_teams
    from runtime.config_files import load_directory, load_policies
    from runtime.demo_teams import TEAMS_DEMO_POLICY, teams_demo_env

    env = teams_demo_env(tmp_path, {"PATH": "/bin"})
    policies = load_policies(env["ESCALATION_POLICY_FILE"])
    directory = load_directory(env["ESCALATION_AGENTS_FILE"])
    check_teams(directory, policies, "demo")  # the worker would start
    demo = policies[TEAMS_DEMO_POLICY]
    assert demo.path_tiers("billing") == ("L1", "billing", "billing-manager")
    assert demo.team("billing").automatic and demo.team("billing-manager").automatic
    # The story fits in a minute: two ack timeouts at billing, then the manager.
    billing = demo.team("billing")
    assert billing.ack_within * (billing.max_reassign + 1) <= timedelta(minutes=1)
    mine = {"ESCALATION_AGENTS_FILE": "/etc/agents.toml"}
    assert teams_demo_env(tmp_path / "other", mine) == mine
    assert not (tmp_path / "other").exists()
