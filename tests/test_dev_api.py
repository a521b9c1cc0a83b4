"""The dev stack's HTTP API: its environment, the demo agent's token kept between runs, and
the banner naming both (`python3 dev.py up` starts it on :8000)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from domain.agents import parse_directory
from domain.principal import parse_keys
from runtime import dev
from runtime.demo_teams import teams_demo_env


def test_the_demo_agent_joins_the_teams_demo_directory_or_stands_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dev, "DATA_DIR", tmp_path)
    monkeypatch.setattr(dev, "API_AGENTS", tmp_path / "api-agents.toml")
    digest = hashlib.sha256(b"tok").hexdigest()
    # No directory: the demo agent alone, for the API only (the worker keeps running open).
    env, added = dev.with_demo_agent({"DATABASE_URL": "postgresql://x"}, "tok")
    assert added and "ESCALATION_AGENTS_FILE" not in env
    api = dev.api_env(env, 8000)
    assert (api["ESCALATION_API_HOST"], api["ESCALATION_API_PORT"]) == ("127.0.0.1", "8000")
    alone = parse_directory(Path(api["ESCALATION_AGENTS_FILE"]).read_text())
    assert set(alone.agents) == {dev.DEMO_AGENT}
    assert alone.agents[dev.DEMO_AGENT].token_sha256 == digest
    # The teams demo's directory: a copy with the demo agent, for the worker and the API.
    teams = teams_demo_env(tmp_path, {})
    env, added = dev.with_demo_agent(teams, "tok")
    assert added and env["ESCALATION_AGENTS_FILE"] == str(tmp_path / "api-agents.toml")
    both = parse_directory(Path(env["ESCALATION_AGENTS_FILE"]).read_text())
    assert {"alice", "bea", dev.DEMO_AGENT} <= set(both.agents)
    assert dev.api_env(env, 8000)["ESCALATION_AGENTS_FILE"] == env["ESCALATION_AGENTS_FILE"]
    # A directory of the caller's: as it is, no demo token.
    own, added = dev.with_demo_agent({"ESCALATION_AGENTS_FILE": "/etc/agents.toml"}, "tok")
    assert not added and own["ESCALATION_AGENTS_FILE"] == "/etc/agents.toml"


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
