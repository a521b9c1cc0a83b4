"""The dev stack's HTTP API: its environment, the demo agent's token kept between runs, and
the banner naming both (`python3 dev.py up` starts it on :8000)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from domain.agents import parse_directory
from domain.principal import parse_keys
from runtime import dev


def test_the_api_gets_a_demo_directory_unless_one_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev, "API_AGENTS", tmp_path / "api-agents.toml")
    env = dev.api_env({"DATABASE_URL": "postgresql://x"}, 8000, "tok")
    assert (env["ESCALATION_API_HOST"], env["ESCALATION_API_PORT"]) == ("127.0.0.1", "8000")
    directory = parse_directory(Path(env["ESCALATION_AGENTS_FILE"]).read_text())
    demo = directory.agents[dev.DEMO_AGENT]
    assert demo.token_sha256 == hashlib.sha256(b"tok").hexdigest() and demo.role == "manager"
    own = dev.api_env({"ESCALATION_AGENTS_FILE": "/etc/agents.toml"}, 8001, "tok")
    assert own["ESCALATION_AGENTS_FILE"] == "/etc/agents.toml"


def test_secrets_are_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    first = dev.api_secrets(path)
    assert dev.api_secrets(path) == first
    assert parse_keys(first["principal_keys"]) is not None
    assert path.stat().st_mode & 0o077 == 0
    path.write_text("{broken")
    assert dev.api_secrets(path) != first  # unreadable: made afresh


def test_the_banner_names_the_api_and_the_demo_token() -> None:
    kwargs = {
        "pg_uri": "postgresql://x",
        "pg_log": Path("/d/log"),
        "temporal_port": 7233,
        "ui_port": 8233,
        "task_queue": "escalation",
        "temporal_bin": Path("/v/temporal"),
        "psql_bin": Path("/v/psql"),
    }
    assert "HTTP API" not in dev.banner(**kwargs)  # type: ignore[arg-type]
    text = dev.banner(**kwargs, api_url="http://127.0.0.1:8000", demo_token="t0k")  # type: ignore[arg-type]
    assert "HTTP API      http://127.0.0.1:8000" in text
    assert "demo agent `demo`, token t0k" in text and "api.log" in text
    assert dev.Options().api_port == 8000 == dev._parser().parse_args([]).api_port
