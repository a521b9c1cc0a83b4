"""The dev stack's teams demo: a policy file and an agent directory under `.data/`.

`dev.py up` points the worker at them unless the caller chose a policy file or a directory of
their own. `starter.py demo` then opens a billing ticket that L1 escalates: the billing team
auto-assigns it, nobody acknowledges, it is reassigned, and after the second timeout it is
escalated to the billing manager, who is assigned too; all within a minute (docs/teams.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

TEAMS_DEMO_POLICY = "teams-demo"
POLICY_FILE = "demo-policy.toml"
AGENTS_FILE = "demo-agents.toml"

POLICY_TOML = f"""\
# Written by `dev.py up` for the teams demo (runtime/demo_teams.py); edit freely, it is only
# rewritten when missing. Seconds instead of hours, so the story plays out in a minute.
[policies.{TEAMS_DEMO_POLICY}]
tiers = ["L1", "L2", "L3"]
auto_close_after = "5m"
renotify_every = "1m"

[policies.{TEAMS_DEMO_POLICY}.paths.billing]
tiers = ["L1", "billing", "billing-manager"]

[policies.{TEAMS_DEMO_POLICY}.teams.billing]
assignment = "round_robin"
ack_within = "15s"
max_reassign = 1
tier_budget = "5m"

[policies.{TEAMS_DEMO_POLICY}.teams.billing-manager]
assignment = "least_loaded"
ack_within = "30s"
max_reassign = 0
""" + "".join(
    f"""
[policies.{TEAMS_DEMO_POLICY}.targets.{priority}]
first_response = "5m"
resolution = "30m"
tier_budget = "5m"
"""
    for priority in ("urgent", "high", "normal", "low")
)

AGENTS_TOML = """\
# Written by `dev.py up` for the teams demo (runtime/demo_teams.py). The demo's other agents
# are managers, so every action of `starter.py demo` and of the banner's examples is allowed.
[agents.alice]
name = "Alice"
role = "manager"
[agents.bob]
name = "Bob"
role = "manager"
[agents.carol]
name = "Carol"
role = "manager"
[agents.dave]
name = "Dave"
role = "manager"

[agents.ann]
name = "Ann (first line)"
tiers = ["L1"]

[agents.bea]
name = "Bea (billing)"
tiers = ["billing"]
capacity = 5

[agents.carl]
name = "Carl (billing)"
tiers = ["billing"]
capacity = 5

[agents.max]
name = "Max (billing manager)"
tiers = ["billing-manager"]
"""


def teams_demo_env(data_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the demo's policy file and directory, written when missing; unchanged when
    the caller configured either (theirs is used as it is)."""
    out = dict(env)
    if out.get("ESCALATION_POLICY_FILE") or out.get("ESCALATION_AGENTS_FILE"):
        return out
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, text in ((POLICY_FILE, POLICY_TOML), (AGENTS_FILE, AGENTS_TOML)):
        path = data_dir / name
        if not path.exists():
            path.write_text(text, encoding="utf-8")
    out["ESCALATION_POLICY_FILE"] = str(data_dir / POLICY_FILE)
    out["ESCALATION_AGENTS_FILE"] = str(data_dir / AGENTS_FILE)
    return out
