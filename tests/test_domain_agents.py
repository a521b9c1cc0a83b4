"""The agent directory (TOML) and the authorization rule, without Temporal."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.agents import AgentActivities
from domain.agents import (
    AuthorizationRequest,
    DirectoryError,
    authorize,
    check_tiers,
    parse_directory,
)
from domain.policy import BUILTIN_POLICIES

DIRECTORY = """
[agents.ann]
name = "Ann (L1)"
tiers = ["L1"]

[agents.ben]
name = "Ben (L2)"
tiers = ["L2"]
role = "agent"

[agents.lea]
name = "Lea, L2 lead"
tiers = ["L2"]
role = "lead"

[agents.max]
name = "Max, manager"
role = "manager"
"""
LADDER = ("L1", "L2", "L3")


def ask(agent: str, tier: str, action: str = "respond", assignee: str | None = None) -> str | None:
    req = AuthorizationRequest(
        ticket_id="T-1", action=action, agent_id=agent, assignee=assignee, tier=tier, tiers=LADDER
    )
    decision = authorize(parse_directory(DIRECTORY), req)
    assert decision.directory
    return None if decision.allowed else decision.reason


@pytest.mark.parametrize(
    ("agent", "tier", "allowed"),
    [
        ("ann", "L1", True),
        ("ann", "L2", False),  # an L1 agent on an L2 ticket
        ("ben", "L2", True),
        ("ben", "L1", False),
        ("lea", "L1", True),  # a lead covers the tiers below
        ("lea", "L2", True),
        ("lea", "L3", False),
        ("max", "L1", True),
        ("max", "L3", True),  # a manager anywhere
    ],
)
def test_who_may_act_where(agent: str, tier: str, allowed: bool) -> None:
    assert (ask(agent, tier) is None) is allowed


def test_refusals_say_who_where_and_why() -> None:
    assert ask("ann", "L2") == "agent ann may not act on ticket T-1 at tier L2 (ann is agent of L1)"
    assert ask("zed", "L1", "resolve") == "unknown agent 'zed'; cannot resolve ticket T-1"


def test_assignee_must_work_the_tier() -> None:
    assert ask("lea", "L2", "assign", assignee="ben") is None
    assert ask("lea", "L1", "assign", assignee="ben") == (
        "assignee ben does not work tier L1 of ticket T-1"
    )
    assert ask("max", "L1", "assign", assignee="nobody") == (
        "unknown assignee 'nobody' for ticket T-1"
    )


def test_without_a_directory_everyone_may_act() -> None:
    req = AuthorizationRequest(ticket_id="T", action="close", agent_id="x", tier="L9", tiers=LADDER)
    decision = authorize(None, req)
    assert decision.allowed and not decision.directory


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agents.a\nname=1", "not valid TOML"),
        ('[people.a]\nname = "A"', "unknown top-level key(s): people"),
        ("", "no [agents.<id>] table found"),
        ('[agents.a]\nname = "A"\ntiers = ["L1"]\nrole = "boss"', "agents.a.role"),
        ('[agents.a]\nname = "A"\ntiers = ["L1"]\nemail = "x"', "agents.a.email: unknown field"),
        ('[agents.a]\nname = "A"', "agents.a.tiers: role agent needs at least one tier"),
        ('[agents."a b"]\nname = "A"\ntiers = ["L1"]', "agents.a b.id"),
        ('[agents.a]\nid = "b"\nname = "A"', "agents.a.id: unknown field"),
    ],
)
def test_a_bad_directory_names_the_key(text: str, message: str) -> None:
    with pytest.raises(DirectoryError) as err:
        parse_directory(text, "agents.toml")
    assert str(err.value).startswith("agents.toml: ")
    assert message in str(err.value)


def test_a_tier_no_policy_has_is_refused_naming_agent_and_tier() -> None:
    directory = parse_directory('[agents.bob]\nname = "Bob"\ntiers = ["L1", "L9"]\n')
    with pytest.raises(DirectoryError) as err:
        check_tiers(directory, BUILTIN_POLICIES, "agents.toml")
    assert str(err.value) == (
        "agents.toml: agents.bob.tiers: 'L9' is not a tier of any policy (tiers: L1, L2, L3)"
    )
    check_tiers(
        parse_directory('[agents.ann]\nname = "Ann"\ntiers = ["L3"]\n'), BUILTIN_POLICIES, "a"
    )


def test_the_worker_refuses_such_a_directory_at_start_and_keeps_the_last_good_on_reload(
    tmp_path: Path,
) -> None:
    file = tmp_path / "agents.toml"
    file.write_text('[agents.bob]\nname = "Bob"\ntiers = ["L9"]\n', encoding="utf-8")
    with pytest.raises(DirectoryError, match=r"agents\.bob\.tiers: 'L9'"):
        AgentActivities(file, BUILTIN_POLICIES)
    file.write_text('[agents.bob]\nname = "Bob"\ntiers = ["L2"]\n', encoding="utf-8")
    agents = AgentActivities(file, BUILTIN_POLICIES)
    file.write_text('[agents.bob]\nname = "Bob"\ntiers = ["L9", "L2"]\n', encoding="utf-8")
    directory = agents.directory()
    assert directory is not None and directory.agents["bob"].tiers == ("L2",)
