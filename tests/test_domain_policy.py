"""Durations and SLA policies (docs/contract.md#policy-file)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.commands import OpenTicket
from domain.decider import Open, decide
from domain.durations import format_duration, parse_duration
from domain.errors import PolicyError
from domain.events import DomainEvent, TicketOpened
from domain.policy import (
    BUILTIN_POLICIES,
    DEFAULT_POLICY,
    PRIORITIES,
    Policy,
    parse_policies,
)
from domain.state import deadlines, evolve, next_deadline
from tests.policy_files import CONTRACT_DEFAULTS, contract_targets

# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("3d", timedelta(days=3)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0h30m", timedelta(minutes=30)),
        (" 72h ", timedelta(hours=72)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "15",
        "m",
        "15 m",
        "1h 30m",
        "30m1h",
        "1.5h",
        "-5m",
        "+5m",
        "15M",
        "4hours",
        "1w",
        "0s",
        "0h0m",
    ],
)
def test_invalid_durations_are_rejected_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


def test_a_duration_too_large_is_a_value_error_naming_the_text() -> None:
    """An absurd duration must be refused like any other bad text, not crash with OverflowError."""
    with pytest.raises(ValueError) as info:
        parse_duration("9999999999d")
    assert "9999999999d" in str(info.value)


@pytest.mark.parametrize(
    "seconds,text",
    [(90, "1m30s"), (900, "15m"), (5400, "1h30m"), (86400, "1d"), (93784, "1d2h3m4s"), (1, "1s")],
)
def test_format_duration_shortest_form(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(min_value=1, max_value=3650 * 86400))
def test_format_duration_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    text = format_duration(value)
    assert parse_duration(text) == value
    assert format_duration(parse_duration(text)) == text


# --- built-in policy ----------------------------------------------------------------------------


def test_default_policy_targets_are_the_contract_table() -> None:
    table = {
        p: (t.first_response, t.resolution, t.tier_budget)
        for p, t in DEFAULT_POLICY.targets.items()
    }
    expected = {p: tuple(parse_duration(d) for d in ds) for p, ds in CONTRACT_DEFAULTS.items()}
    assert table == expected
    assert list(DEFAULT_POLICY.targets) == list(PRIORITIES)


def test_default_policy_ladder_and_settings() -> None:
    assert DEFAULT_POLICY.name == "default"
    assert DEFAULT_POLICY.tiers == ("L1", "L2", "L3")
    assert DEFAULT_POLICY.top_tier == "L3"
    assert DEFAULT_POLICY.calendar == "always"
    assert DEFAULT_POLICY.warn_at == 0.8
    assert DEFAULT_POLICY.auto_close_after == timedelta(hours=72)
    assert DEFAULT_POLICY.renotify_every == timedelta(hours=1)


@pytest.mark.parametrize("name", sorted(BUILTIN_POLICIES))
def test_recorded_policy_round_trips_through_json(name: str) -> None:
    policy = BUILTIN_POLICIES[name]
    assert Policy.model_validate_json(policy.model_dump_json()) == policy
    dumped = json.loads(policy.model_dump_json())
    assert dumped["targets"]["urgent"]["first_response"] == format_duration(
        policy.targets["urgent"].first_response
    )


# --- policy files -------------------------------------------------------------------------------

VALID_FILE = (
    """
[policies.gold]
tiers = ["front", "expert"]
calendar = "always"
warn_at = 0.5
auto_close_after = "1d"
renotify_every = "30m"
"""
    + contract_targets("gold")
    + """
[policies.default]
tiers = ["L1", "L2", "L3", "L4"]
"""
    + contract_targets("default").replace('"15m"', '"10m"')
)


def test_parse_a_valid_file() -> None:
    policies = parse_policies(VALID_FILE, "sla.toml")
    gold = policies["gold"]
    assert gold.name == "gold"
    assert gold.tiers == ("front", "expert")
    assert gold.warn_at == 0.5
    assert gold.auto_close_after == timedelta(days=1)
    assert gold.renotify_every == timedelta(minutes=30)
    assert gold.targets["low"].resolution == timedelta(hours=72)
    # the file redefines default; the other built-ins stay available
    assert policies["default"].tiers == ("L1", "L2", "L3", "L4")
    assert policies["default"].targets["urgent"].first_response == timedelta(minutes=10)
    assert policies["demo"] == BUILTIN_POLICIES["demo"]


def test_parsed_policy_round_trips_through_json_and_a_ticket_event() -> None:
    gold = parse_policies(VALID_FILE)["gold"]
    assert Policy.model_validate_json(gold.model_dump_json()) == gold
    ticket = OpenTicket(ticket_id="T-1", subject="s", customer_id="c", policy="gold")
    (opened,) = decide(None, Open(ticket=ticket, policy=gold), datetime(2026, 1, 1, tzinfo=UTC))
    stored = DomainEvent(
        ticket_id="T-1",
        seq=1,
        event_id="00000000-0000-0000-0000-000000000001",
        event_type="TicketOpened",
        payload=json.loads(opened.model_dump_json()),
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    data = stored.data()
    assert isinstance(data, TicketOpened) and data.policy == gold


def test_contract_example_file_parses() -> None:
    """The file in docs/contract.md#policy-file, with `[calendars.office]`, is a valid policy."""
    text = (
        """
[policies.default]
tiers = ["L1", "L2", "L3"]
calendar = "always"          # "always" = 24x7, or the name of a [calendars.*] table
warn_at = 0.8
auto_close_after = "72h"
renotify_every = "1h"
"""
        + contract_targets("default")
        + """
[calendars.office]
timezone = "Europe/Berlin"
monday = "09:00-17:00"       # tuesday..sunday alike; a missing day is closed
holidays = ["2026-12-25"]
holiday_country = "DE"       # optional: public holidays of that country
"""
    )
    policies = parse_policies(text, "sla.toml")
    assert policies["default"].targets == DEFAULT_POLICY.targets


def test_invalid_toml_names_the_file_and_line() -> None:
    text = '[policies.x]\ntiers = ["L1"]\nwarn_at = = 0.8\n'
    with pytest.raises(PolicyError) as info:
        parse_policies(text, "sla.toml")
    message = str(info.value)
    assert message.startswith("sla.toml: ")
    assert "line 3" in message


def _file(extra_policy: str = "", targets: str | None = None, top: str = "") -> str:
    body = targets if targets is not None else contract_targets("x")
    return f'{top}\n[policies.x]\ntiers = ["L1", "L2"]\n{extra_policy}\n{body}'


@pytest.mark.parametrize("field", ["first_respond", "warn_at", "resolution_time"])
def test_unknown_field_in_a_target_is_named(field: str) -> None:
    targets = contract_targets("x").replace(
        'tier_budget = "1h"', f'tier_budget = "1h"\n{field} = "1h"', 1
    )
    with pytest.raises(PolicyError) as info:
        parse_policies(_file(targets=targets), "sla.toml")
    message = str(info.value)
    assert message.startswith("sla.toml: ")
    assert f"policies.x.targets.urgent.{field}: unknown field" in message


def test_unknown_field_in_a_policy_is_named() -> None:
    with pytest.raises(PolicyError, match=r"policies\.x\.escalate_after: unknown field"):
        parse_policies(_file('escalate_after = "1h"'))


def test_a_name_field_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"policies\.x\.name: unknown field"):
        parse_policies(_file('name = "y"'))


def test_unknown_priority_is_named() -> None:
    targets = contract_targets("x") + (
        '\n[policies.x.targets.critical]\nfirst_response = "5m"\nresolution = "1h"\n'
        'tier_budget = "10m"\n'
    )
    with pytest.raises(PolicyError) as info:
        parse_policies(_file(targets=targets), "sla.toml")
    assert "policies.x.targets.critical" in str(info.value)


def test_missing_priority_is_named() -> None:
    targets = contract_targets("x").split("[policies.x.targets.low]")[0]
    with pytest.raises(PolicyError) as info:
        parse_policies(_file(targets=targets), "sla.toml")
    message = str(info.value)
    assert "policies.x.targets" in message and "low" in message


def test_missing_target_field_is_named() -> None:
    targets = contract_targets("x").replace('tier_budget = "24h"', "")
    with pytest.raises(PolicyError, match=r"policies\.x\.targets\.low\.tier_budget: required"):
        parse_policies(_file(targets=targets))


def test_unknown_calendar_is_named() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policies(_file('calendar = "office"'), "sla.toml")
    message = str(info.value)
    assert message.startswith("sla.toml: ")
    assert "policies.x.calendar" in message and "'office'" in message


@pytest.mark.parametrize("warn_at", ["0", "1", "1.5", "-0.2"])
def test_warn_at_out_of_range_is_named(warn_at: str) -> None:
    with pytest.raises(PolicyError, match=r"policies\.x\.warn_at: "):
        parse_policies(_file(f"warn_at = {warn_at}"))


def test_duplicate_tiers_are_rejected() -> None:
    text = _file().replace('tiers = ["L1", "L2"]', 'tiers = ["L1", "L2", "L1"]')
    with pytest.raises(PolicyError, match=r"policies\.x\.tiers: .*unique"):
        parse_policies(text)


@pytest.mark.parametrize("tiers", ["[]", '["L 1"]', '[""]', '["' + "T" * 33 + '"]'])
def test_bad_tier_lists_are_rejected(tiers: str) -> None:
    text = _file().replace('tiers = ["L1", "L2"]', f"tiers = {tiers}")
    with pytest.raises(PolicyError, match=r"policies\.x\.tiers"):
        parse_policies(text)


def test_unknown_top_level_key_is_named() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policies(_file(top="version = 2\n[policy_defaults]\nwarn_at = 0.5\n"), "sla.toml")
    message = str(info.value)
    assert message.startswith("sla.toml: ")
    assert "version" in message and "policy_defaults" in message


@pytest.mark.parametrize("bad", ['"15 minutes"', '"0m"', '"-1h"', '""'])
def test_bad_duration_is_named(bad: str) -> None:
    targets = contract_targets("x").replace('first_response = "1h"', f"first_response = {bad}")
    with pytest.raises(PolicyError, match=r"policies\.x\.targets\.high\.first_response: "):
        parse_policies(_file(targets=targets))


def test_a_file_without_policies_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"no \[policies\.<name>\] table"):
        parse_policies("", "sla.toml")


@pytest.mark.parametrize("bad", ['"9999999999d"', "99999999999999", "inf"])
def test_an_overflowing_duration_is_a_policy_error_naming_the_key(bad: str) -> None:
    """Never a raw OverflowError: the worker must stop with a message naming the key."""
    targets = contract_targets("x").replace('resolution = "4h"', f"resolution = {bad}")
    with pytest.raises(PolicyError, match=r"policies\.x\.targets\.urgent\.resolution"):
        parse_policies(_file(targets=targets), "sla.toml")


@pytest.mark.parametrize("bad", ["0.5", "90.5", "900"])
def test_a_number_for_a_duration_is_refused_naming_the_key(bad: str) -> None:
    """A policy is recorded in TicketOpened as JSON and re-read on every replay, so durations
    are text (`90s`); a bare number (a fraction of a second would not come back the same) is
    refused, naming the key."""
    targets = contract_targets("x").replace('first_response = "15m"', f"first_response = {bad}")
    with pytest.raises(
        PolicyError,
        match=rf"policies\.x\.targets\.urgent\.first_response: .*duration must be text.* {bad}$",
    ):
        parse_policies(_file(targets=targets))


@pytest.mark.parametrize("duration", ['"90s"', '"1h30m"', '"2d12h"', '"3650d"'])
def test_an_accepted_policy_round_trips(duration: str) -> None:
    """Whatever parse_policies accepts must come back identical from its recorded JSON."""
    targets = contract_targets("x").replace(
        'first_response = "15m"', f"first_response = {duration}"
    )
    policy = parse_policies(_file(targets=targets))["x"]
    assert policy.targets["urgent"].first_response == parse_duration(duration.strip('"'))
    assert Policy.model_validate_json(policy.model_dump_json()) == policy


def test_a_boolean_duration_is_refused() -> None:
    """`first_response = true` is not a duration; today it silently becomes one second."""
    targets = contract_targets("x").replace('first_response = "15m"', "first_response = true")
    with pytest.raises(PolicyError, match=r"policies\.x\.targets\.urgent\.first_response"):
        parse_policies(_file(targets=targets))


def test_an_accepted_policy_never_breaks_the_clocks() -> None:
    """A duration so long that a due time leaves the datetime range must be refused at load."""
    too_long = contract_targets("x").replace('resolution = "72h"', 'resolution = "9999999d"')
    with pytest.raises(
        PolicyError, match=r"policies\.x\.targets\.low\.resolution: .*'9999999d': too large"
    ):
        parse_policies(_file(targets=too_long))
    # The longest duration accepted is one the clocks can still hold.
    longest = contract_targets("x").replace('resolution = "72h"', 'resolution = "3650d"')
    policy = parse_policies(_file(targets=longest))["x"]
    assert policy.targets["low"].resolution == timedelta(days=3650)
    ticket = OpenTicket(ticket_id="T-1", subject="s", customer_id="c", priority="low")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    (opened,) = decide(None, Open(ticket=ticket, policy=policy), now)
    state = evolve(
        None,
        DomainEvent(
            ticket_id="T-1",
            seq=1,
            event_id="00000000-0000-0000-0000-000000000001",
            event_type="TicketOpened",
            payload=opened.model_dump(mode="json"),
            occurred_at=now,
        ),
    )
    assert next_deadline(state) is not None  # must not raise OverflowError
    due = {name: at for name, at in deadlines(state)}
    assert now + timedelta(days=3650) in due.values(), due
