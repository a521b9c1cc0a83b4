"""docker-compose.yml and Dockerfile, checked against the code (no Docker engine runs here)."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from domain.durations import parse_duration
from runtime.config import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
APP_SERVICES = ("setup", "worker", "projector", "api")  # built from the Dockerfile
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())

# Read by temporalio.envconfig when connecting (runtime/temporal.py), besides Settings.
ENVCONFIG = re.compile(r"^TEMPORAL_(ADDRESS|NAMESPACE|API_KEY|TLS(_[A-Z_]+)?|PROFILE|CONFIG_FILE)$")


def env_vars_read_by_settings(path: Path = PROJECT_ROOT / "runtime" / "config.py") -> set[str]:
    """Every env var name the `from_env` functions of `path` read: their string literals."""
    tree = ast.parse(path.read_text())
    return {
        node.value
        for from_env in ast.walk(tree)
        if isinstance(from_env, ast.FunctionDef) and from_env.name == "from_env"
        for node in ast.walk(from_env)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value)
    }


def env_vars_of_principals_and_api() -> set[str]:
    """Read by the worker and the API besides Settings (runtime/principal.py, api/server.py,
    api/auth.py)."""
    from domain.principal import KEYS_ENV, REQUIRE_ENV

    api = PROJECT_ROOT / "api"
    return (
        {KEYS_ENV, REQUIRE_ENV}
        | env_vars_read_by_settings(api / "server.py")
        | env_vars_read_by_settings(api / "auth.py")
    )


def interpolate(value: Any, env: Mapping[str, str] | None = None) -> str:
    """Compose's `${VAR:-default}` / `${VAR}` / `$$` as `docker compose` resolves them."""
    env = env or {}
    text = str(value)

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(3)
        return env.get(name) or (default or "")

    return re.sub(r"\$\$|\$\{([A-Z_][A-Z0-9_]*)(:-([^}]*))?\}", sub, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so keys can be checked"
    return {k: interpolate(v) for k, v in env.items()}


def test_the_services(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "temporal", "temporal-ui", *APP_SERVICES}
    # A fixed container name would stop `--scale worker=4`.
    assert not [n for n, s in services.items() if "container_name" in s]


def test_images_are_official_and_pinned(services: dict[str, Any]) -> None:
    images = {name: s["image"] for name, s in services.items()}
    for name, image in images.items():
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} is not pinned"
    assert re.fullmatch(r"postgres:\d+\.\d+", images["postgres"])
    assert re.fullmatch(r"temporalio/auto-setup:1\.\d+\.\d+", images["temporal"])
    assert re.fullmatch(r"temporalio/ui:\d+\.\d+\.\d+", images["temporal-ui"])
    version = PYPROJECT["project"]["version"]
    for name in APP_SERVICES:
        assert images[name] == f"ticket-escalation:{version}"
        assert services[name]["build"] == "."


def test_ports(services: dict[str, Any]) -> None:
    ports = {name: [str(p) for p in s.get("ports", [])] for name, s in services.items()}
    assert ports == {
        "postgres": ["5432:5432"],
        "temporal": ["7233:7233"],
        "temporal-ui": ["8233:8080"],  # the same port as the dev stack's UI
        "setup": [],
        "worker": [],  # scaled: a fixed host port would collide
        "projector": [],
        "api": ["8000:8000"],  # the API's default port; the dev stack's too
    }


def test_postgres_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    declared = set(compose.get("volumes") or {})
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    used = {
        str(v).split(":", 1)[0]
        for s in services.values()
        for v in s.get("volumes", [])
        if not str(v).startswith((".", "/"))
    }
    assert used == declared == {"pgdata"}


def test_health_checks_and_start_order(services: dict[str, Any]) -> None:
    healthy = {n for n, s in services.items() if s.get("healthcheck", {}).get("test")}
    assert {"postgres", "temporal", "worker", "api"} <= healthy
    assert "/readyz" in str(services["api"]["healthcheck"]["test"])
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    # Healthy once the namespace the setup needs exists, not merely when the port is open.
    assert "namespace describe --namespace default" in str(services["temporal"]["healthcheck"])
    for name, s in services.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = cond["condition"]
            if condition == "service_healthy":
                assert dep in healthy, f"{name} waits for {dep} to be healthy: it has no check"
            else:
                assert (condition, dep) == ("service_completed_successfully", "setup")
    assert set(services["setup"]["depends_on"]) == {"postgres", "temporal"}
    assert services["setup"]["restart"] == "on-failure"  # a one-shot, retried until it succeeds
    for name in ("worker", "projector"):
        assert services[name]["depends_on"] == {
            "setup": {"condition": "service_completed_successfully"}
        }


def test_the_worker_health_check_asks_temporal_for_this_container_s_pollers(
    services: dict[str, Any],
) -> None:
    """With the image's own Python: the `temporal` CLI is a devstack tool, not in the image."""
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "python", "-m", "runtime.health"]
    for var in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "ESCALATION_TASK_QUEUE"):
        assert var in services["worker"]["environment"]


def test_temporal_runs_on_the_postgres_service(services: dict[str, Any]) -> None:
    pg, temporal = env_of(services["postgres"]), env_of(services["temporal"])
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] == "postgres"
    assert temporal["DB_PORT"] == "5432"
    assert temporal["DEFAULT_NAMESPACE"] == "default"
    # SQL visibility has few slots per type (e.g. 3 Text, 10 Keyword): no demo attributes in them.
    assert temporal["SKIP_ADD_CUSTOM_SEARCH_ATTRIBUTES"] == "true"
    assert (temporal["POSTGRES_USER"], temporal["POSTGRES_PWD"]) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
    )
    assert env_of(services["temporal-ui"]) == {"TEMPORAL_ADDRESS": "temporal:7233"}


def test_app_services_get_only_variables_the_code_reads(services: dict[str, Any]) -> None:
    known = env_vars_read_by_settings() | env_vars_of_principals_and_api()
    assert {"DATABASE_URL", "ESCALATION_MAX_CONCURRENT_ACTIVITIES"} <= known  # the parse works
    assert {"ESCALATION_API_PORT", "ESCALATION_OIDC_JWKS"} <= known
    for name in APP_SERVICES:
        unknown = {v for v in env_of(services[name]) if v not in known and not ENVCONFIG.match(v)}
        assert not unknown, f"{name} is given variables no code reads: {sorted(unknown)}"


def test_app_services_get_every_variable_they_need(services: dict[str, Any]) -> None:
    pg = env_of(services["postgres"])
    needs = {
        # Without DATABASE_URL the code would start an embedded PostgreSQL in the container.
        "setup": {"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"},
        "worker": {"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"},
        "projector": {"DATABASE_URL"},
        "api": {"DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"},
    }
    for name, required in needs.items():
        env = env_of(services[name])
        assert required <= set(env), f"{name} lacks {sorted(required - set(env))}"
        settings = Settings.from_env(env)  # every value parses
        dsn = urlsplit(settings.database_url or "")
        assert (dsn.scheme, dsn.hostname, dsn.port) == ("postgresql", "postgres", 5432)
        assert (dsn.username, dsn.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
        assert dsn.path == "/" + pg["POSTGRES_DB"]
        if "TEMPORAL_ADDRESS" in required:
            host, port = settings.temporal_address.split(":")
            assert host in services and port in {p.split(":")[1] for p in services[host]["ports"]}
    from api.server import ApiSettings

    api = ApiSettings.from_env(env_of(services["api"]))
    assert api.host == "0.0.0.0" and [f"{api.port}:{api.port}"] == services["api"]["ports"]
    worker = Settings.from_env(env_of(services["worker"]))
    # Metrics for a Prometheus on the compose network; no host port, so workers can scale.
    assert [str(p) for p in services["worker"]["expose"]] == [str(worker.metrics_port)]
    # One projector service; the workers' own would only compete with it.
    assert worker.projector is False
    assert worker.log_format == "json"


def test_docker_stop_waits_longer_than_the_worker_s_shutdown_grace(
    services: dict[str, Any],
) -> None:
    worker = Settings.from_env(env_of(services["worker"]))
    stop_after = parse_duration(services["worker"]["stop_grace_period"]).total_seconds()
    assert worker.shutdown_grace < stop_after  # else Docker kills activities mid-write


def test_commands_exist(services: dict[str, Any]) -> None:
    assert services["setup"]["command"] == ["python", "-m", "runtime.setup"]
    import runtime.setup

    assert callable(runtime.setup.cli)
    assert services["projector"]["command"] == ["python", "readside.py", "project"]
    import readside

    assert readside.build_parser().parse_args(["project"]).command == "project"
    assert "command" not in services["worker"]  # the Dockerfile's CMD
    assert services["api"]["command"] == ["escalation-api"]
    assert PYPROJECT["project"]["scripts"]["escalation-api"] == "api.server:main"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines()]
    return [
        (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1])
        for ln in lines
        if ln and not ln.startswith("#")
    ]


def test_the_dockerfile() -> None:
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    (cmd,) = [arg for op, arg in steps if op == "CMD"]
    assert cmd == '["python", "worker.py"]'  # exec form: SIGTERM reaches the worker
    assert (PROJECT_ROOT / "worker.py").is_file()
    import worker

    assert callable(worker.main)
    runs = " ".join(arg for op, arg in steps if op == "RUN")
    assert "pip install ." in runs
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert "useradd" in runs and users[-1] in runs
    workdir = [arg for op, arg in steps if op == "WORKDIR"][-1]
    assert ("COPY", ". .") in steps and workdir == "/app"


def test_dockerignore_keeps_what_the_image_needs() -> None:
    ignored = {
        ln.strip()
        for ln in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert {".venv", ".data", ".git"} <= ignored
    needed = [
        "pyproject.toml",
        "README.md",  # pyproject's readme
        *PYPROJECT["tool"]["setuptools"]["packages"],
        *(m + ".py" for m in PYPROJECT["tool"]["setuptools"]["py-modules"]),
    ]
    for path in needed:
        assert (PROJECT_ROOT / path).exists(), path
        assert path not in ignored and Path(path).parts[0] not in ignored, path


def test_console_scripts_point_at_callables() -> None:
    import importlib

    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["escalation-setup"] == "runtime.setup:cli"
    for target in scripts.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), target
