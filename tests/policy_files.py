"""Policy-file text for tests: the contract's default targets as TOML tables."""

from __future__ import annotations

# docs/contract.md#policy-file, the built-in default targets:
# priority -> (first_response, resolution, tier_budget)
CONTRACT_DEFAULTS = {
    "urgent": ("15m", "4h", "1h"),
    "high": ("1h", "8h", "2h"),
    "normal": ("4h", "24h", "8h"),
    "low": ("8h", "72h", "24h"),
}


def contract_targets(policy: str) -> str:
    """The four `[policies.<policy>.targets.<priority>]` tables with the contract's values."""
    return "".join(
        f'\n[policies.{policy}.targets.{priority}]\nfirst_response = "{fr}"\n'
        f'resolution = "{res}"\ntier_budget = "{tb}"\n'
        for priority, (fr, res, tb) in CONTRACT_DEFAULTS.items()
    )
