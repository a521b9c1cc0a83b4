"""Input validation (docs/contract.md#openticket and #actions)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from domain.commands import (
    ACTIONS,
    OpenTicket,
    RequestEscalation,
    parse_action,
    parse_open_ticket,
)
from domain.errors import ActionRejected, InvalidTicket

VALID: dict[str, Any] = {
    "ticket_id": "T-1001",
    "subject": "Refund not received",
    "customer_id": "acme",
    "priority": "high",
    "category": "billing",
    "description": "...",
    "policy": "default",
}


def with_(**changes: Any) -> dict[str, Any]:
    raw = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


# --- OpenTicket ---------------------------------------------------------------------------------


def test_the_contract_example_is_valid() -> None:
    ticket = parse_open_ticket(VALID)
    assert ticket == OpenTicket(**VALID)
    assert ticket.model_dump() == VALID


def test_defaults_priority_normal_and_policy_default() -> None:
    ticket = parse_open_ticket({"ticket_id": "T-1", "subject": "s", "customer_id": "c"})
    assert ticket.priority == "normal"
    assert ticket.policy == "default"
    assert ticket.category is None and ticket.description is None


@pytest.mark.parametrize(
    "ticket_id",
    ["T", "7", "T-1001", "a.b_c-d", "A" * 64, "x" + "._-" * 21],
)
def test_valid_ticket_ids(ticket_id: str) -> None:
    assert parse_open_ticket(with_(ticket_id=ticket_id)).ticket_id == ticket_id


@pytest.mark.parametrize(
    "ticket_id",
    [
        "",
        "A" * 65,
        ".hidden",
        "-dash",
        "_under",
        "T 1",
        "T/1",
        "T-1\n",
        "Tä",
        "ticket#1",
    ],
)
def test_invalid_ticket_id_names_the_field(ticket_id: str) -> None:
    with pytest.raises(InvalidTicket, match=r"^ticket_id: "):
        parse_open_ticket(with_(ticket_id=ticket_id))


@pytest.mark.parametrize(
    "field,value",
    [
        ("ticket_id", ...),
        ("ticket_id", 1001),
        ("subject", ""),
        ("subject", "s" * 301),
        ("subject", ...),
        ("subject", None),
        ("customer_id", ...),
        ("customer_id", ""),
        ("customer_id", None),
        ("priority", "critical"),
        ("priority", "URGENT"),
        ("priority", 1),
        ("description", "d" * 20_001),
        ("policy", ""),
    ],
)
def test_each_bad_field_raises_invalid_ticket_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidTicket) as info:
        parse_open_ticket(with_(**{field: value}))
    assert str(info.value).startswith(f"{field}: "), str(info.value)


def test_missing_field_says_required() -> None:
    with pytest.raises(InvalidTicket, match=r"^customer_id: required field is missing$"):
        parse_open_ticket(with_(customer_id=...))


def test_subject_and_description_boundaries_are_inclusive() -> None:
    ticket = parse_open_ticket(with_(subject="s" * 300, description="d" * 20_000))
    assert len(ticket.subject) == 300 and len(ticket.description or "") == 20_000
    assert parse_open_ticket(with_(subject="s")).subject == "s"


@pytest.mark.parametrize("priority", ["urgent", "high", "normal", "low"])
def test_every_priority_is_accepted(priority: str) -> None:
    assert parse_open_ticket(with_(priority=priority)).priority == priority


def test_unknown_key_is_rejected_by_name() -> None:
    with pytest.raises(InvalidTicket, match=r"^assignee: unknown field$"):
        parse_open_ticket(with_(assignee="ann"))


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(InvalidTicket) as info:
        parse_open_ticket({"ticket_id": ".x", "subject": "", "priority": "p", "extra": 1})
    message = str(info.value)
    for field in ("ticket_id", "subject", "customer_id", "priority", "extra"):
        assert f"{field}: " in message


@pytest.mark.parametrize("raw", [None, "T-1", ["T-1"], 42])
def test_input_that_is_not_an_object_is_invalid(raw: Any) -> None:
    with pytest.raises(InvalidTicket, match="must be a JSON object"):
        parse_open_ticket(raw)


def test_open_ticket_is_immutable() -> None:
    ticket = parse_open_ticket(VALID)
    with pytest.raises(ValidationError, match=r"subject\n  Instance is frozen"):
        ticket.subject = "changed"  # type: ignore[misc]
    assert ticket.subject == VALID["subject"]


# --- actions ------------------------------------------------------------------------------------


def test_the_contract_action_names() -> None:
    assert set(ACTIONS) == {
        "assign",
        "respond",
        "request_escalation",
        "await_customer",
        "customer_replied",
        "change_priority",
        "resolve",
        "reopen",
        "close",
        "transfer",
        "acknowledge",
        "tag",
    }


@pytest.mark.parametrize(
    "name,raw",
    [
        ("assign", {"agent_id": "ann"}),
        ("assign", {"agent_id": "lead", "assignee": "ann", "request_id": "r-1"}),
        ("respond", {"agent_id": "ann"}),
        ("respond", {"agent_id": "ann", "message": "hello"}),
        ("request_escalation", {"agent_id": "ann", "reason": "r"}),
        ("request_escalation", {"agent_id": "ann", "reason": "r" * 2000, "to_tier": "L3"}),
        ("await_customer", {"agent_id": "ann", "message": "which order?"}),
        ("customer_replied", {}),
        ("customer_replied", None),
        ("customer_replied", {"message": "here"}),
        ("change_priority", {"agent_id": "ann", "priority": "urgent", "reason": "vip"}),
        ("resolve", {"agent_id": "ann", "resolution": "refunded"}),
        ("reopen", {}),
        ("reopen", {"reason": "not fixed", "agent_id": "ann"}),
        ("close", {"agent_id": "ann", "request_id": "x" * 128}),
    ],
)
def test_valid_action_payloads(name: str, raw: dict[str, Any] | None) -> None:
    action = parse_action(name, raw)
    assert isinstance(action, ACTIONS[name])
    for key, value in (raw or {}).items():
        assert getattr(action, key) == value


def test_a_parsed_action_passes_through() -> None:
    action = RequestEscalation(agent_id="a", reason="r")
    assert parse_action("request_escalation", action) is action


def test_unknown_action_is_rejected() -> None:
    with pytest.raises(ActionRejected, match=r"unknown action 'escalate'"):
        parse_action("escalate", {"agent_id": "ann"})


@pytest.mark.parametrize("raw", ["ann", ["ann"], 7, True])
def test_non_object_payload_is_rejected(raw: Any) -> None:
    with pytest.raises(ActionRejected, match=r"^assign: payload must be a JSON object"):
        parse_action("assign", raw)


@pytest.mark.parametrize(
    "name,raw,field,says",
    [
        ("request_escalation", {"agent_id": "ann"}, "reason", "required field is missing"),
        ("request_escalation", {"agent_id": "ann", "reason": ""}, "reason", "at least 1"),
        ("request_escalation", {"agent_id": "ann", "reason": "r" * 2001}, "reason", "at most 2000"),
        ("assign", {"agent_id": "ann", "request_id": "r" * 129}, "request_id", "at most 128"),
        ("assign", {"agent_id": "ann", "who": "bob"}, "who", "unknown field"),
        ("assign", {}, "agent_id", "required field is missing"),
        ("respond", {"agent_id": ""}, "agent_id", "at least 1"),
        ("change_priority", {"agent_id": "a", "priority": "critical"}, "priority", "urgent"),
        ("change_priority", {"agent_id": "a"}, "priority", "required field is missing"),
        ("resolve", {"agent_id": "a"}, "resolution", "required field is missing"),
        ("close", {}, "agent_id", "required field is missing"),
        ("customer_replied", {"agent_id": "a"}, "agent_id", "unknown field"),
    ],
)
def test_bad_payload_names_the_action_and_the_field(
    name: str, raw: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ActionRejected) as info:
        parse_action(name, raw)
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    assert f"{field}: " in message and says in message, message
