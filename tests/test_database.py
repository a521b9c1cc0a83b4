"""runtime/database.py: finding the event store's server (the embedded one of the dev stack)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from runtime.config import PROJECT_ROOT

ATTACH = (
    "import sys; from runtime.database import embedded_database_url as url; print(url(sys.argv[1]))"
)


def _attach(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """A one-shot process (like `readside.py report`) that attaches to the embedded server in
    data_dir, starting it if needed, and exits."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    return subprocess.run(
        [sys.executable, "-c", ATTACH, str(data_dir)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _postmaster(data_dir: Path) -> int | None:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return not psutil.pid_exists(pid)


@pytest.mark.slow
def test_a_one_shot_command_stops_the_server_it_started_despite_a_dead_handle(
    tmp_path: Path,
) -> None:
    """A process killed while attached (kill -9, a crashed `dev.py up`) left its pid in the
    package's handle list, so every later one-shot command left PostgreSQL running."""
    os.chmod(tmp_path, 0o755)  # as root the server runs as another user
    data_dir = tmp_path / "pg"
    first = _attach(data_dir)
    assert first.stdout.startswith("postgresql://")
    assert "RuntimeDirWarning" not in first.stderr, first.stderr
    assert _postmaster(data_dir) is None  # the last handle stopped it

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data_dir / ".handle_pids.json").write_text(json.dumps([dead.pid]))
    second = _attach(data_dir)
    assert second.stdout == first.stdout

    pid = _postmaster(data_dir)
    assert pid is None or _wait_gone(pid), "the embedded PostgreSQL was left running"
