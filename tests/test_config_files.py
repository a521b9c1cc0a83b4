"""runtime/config_files.py: the worker's files are read here, and every error names the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.agents import DirectoryError
from domain.channels import ChannelError
from domain.policy import DEFAULT_POLICY, PolicyError
from runtime.config_files import load_channels, load_directory, load_policies
from tests.policy_files import contract_targets

GOLD = '[policies.gold]\ntiers = ["front", "expert"]\n' + contract_targets("gold")


def test_no_policy_file_serves_the_built_ins() -> None:
    assert load_policies(None)["default"] == DEFAULT_POLICY
    assert load_policies("")["default"] == DEFAULT_POLICY


def test_a_policy_file_is_read_and_named_in_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "sla.toml"
    good.write_text(GOLD, encoding="utf-8")
    assert load_policies(good)["gold"].tiers == ("front", "expert")
    assert load_policies(str(good))["gold"].tiers == ("front", "expert")
    bad = tmp_path / "bad.toml"
    bad.write_text("[policies.x\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policies(bad)
    assert str(bad) in str(info.value) and "line 1" in str(info.value)


@pytest.mark.parametrize(
    ("load", "error"),
    [
        (load_policies, PolicyError),
        (load_directory, DirectoryError),
        (load_channels, ChannelError),
    ],
)
def test_a_missing_or_binary_file_names_the_path(
    tmp_path: Path, load: object, error: type[Exception]
) -> None:
    missing = tmp_path / "nope" / "x.toml"
    with pytest.raises(error, match="cannot read") as info:
        load(missing)  # type: ignore[operator]
    assert str(missing) in str(info.value)
    binary = tmp_path / "x.toml"
    binary.write_bytes(b"\xff\xfe[policies]")
    with pytest.raises(error, match="not UTF-8") as info:
        load(binary)  # type: ignore[operator]
    assert str(binary) in str(info.value)


def test_no_channels_file_is_no_channels() -> None:
    assert not load_channels(None).configured
    assert not load_channels("").configured


def test_channel_secrets_come_from_the_environment_given(tmp_path: Path) -> None:
    file = tmp_path / "channels.toml"
    file.write_text(
        '[channels.ops]\ntype = "webhook"\nurl = "https://ops.example/h"\nsecret_env = "OPS_S"\n',
        encoding="utf-8",
    )
    assert load_channels(file, {"OPS_S": "s3cret"}).channels["ops"].secret == "s3cret"
    with pytest.raises(ChannelError, match="OPS_S"):
        load_channels(file, {})
