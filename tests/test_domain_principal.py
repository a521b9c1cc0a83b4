"""The signed principal (pure): what verifies, and every way a forged, stale or misdirected
one is refused; key parsing; the directory's tokens and services."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from domain.agents import OPEN_RIGHT, DirectoryError, parse_directory
from domain.commands import ACTIONS
from domain.principal import (
    MAX_AGE_SECONDS,
    Claims,
    PrincipalKeyError,
    parse_keys,
    payload_digest,
    sign,
    verify,
)

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()
NOW = 1_800_000_000
BODY = {"agent_id": "ann", "message": "hi"}


def claims(**over: object) -> Claims:
    base: dict[str, object] = {
        "kind": "agent",
        "sub": "ann",
        "wf": "ticket-T-1",
        "act": "respond",
        "body": payload_digest(BODY),
        "iat": NOW,
    }
    return Claims.model_validate({**base, **over})


def check(header: str | None, keys: str = f"k1:{K1}", **over: object) -> str | None:
    call: dict[str, object] = {
        "workflow_id": "ticket-T-1",
        "action": "respond",
        "agent_id": "ann",
        "digest": payload_digest(BODY),
        "now": NOW,
    }
    call.update(over)
    return verify(parse_keys(keys), header, **call)  # type: ignore[arg-type]


def signed(keys: str = f"k1:{K1}", **over: object) -> str:
    parsed = parse_keys(keys)
    assert parsed is not None
    return sign(parsed, claims(**over))


def test_a_valid_principal_verifies() -> None:
    assert check(signed()) is None


def test_digest_ignores_key_order_and_nulls() -> None:
    assert payload_digest({"message": "hi", "agent_id": "ann", "request_id": None}) == (
        payload_digest(BODY)
    )
    assert payload_digest({**BODY, "message": "other"}) != payload_digest(BODY)


def test_rotation_old_keys_verify_first_signs() -> None:
    old = signed(f"k1:{K1}")
    assert check(old, keys=f"k2:{K2},k1:{K1}") is None
    new = signed(f"k2:{K2},k1:{K1}")
    assert json.loads(new)["kid"] == "k2"
    assert "unknown key id 'k2'" in (check(new, keys=f"k1:{K1}") or "")


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"agent_id": "max"}, "is agent ann, not agent max"),
        ({"workflow_id": "ticket-T-2"}, "another ticket"),
        ({"action": "close"}, "another ticket, action or payload"),
        ({"digest": payload_digest({"agent_id": "ann"})}, "payload"),
        ({"now": NOW + MAX_AGE_SECONDS + 1}, "older than"),
    ],
)
def test_misdirected_or_stale_is_refused(over: dict[str, Any], expected: str) -> None:
    reason = check(signed(), **over)
    assert reason is not None and reason.startswith("unauthenticated") and expected in reason


def test_forgeries_are_refused() -> None:
    assert "carries no principal" in (check(None) or "")
    assert "malformed" in (check("{not json") or "")
    assert "malformed" in (check(json.dumps({"claims": {}, "kid": "k1", "sig": "x"})) or "")
    tampered = json.loads(signed())
    tampered["claims"]["sub"] = "max"
    assert "does not verify" in (check(json.dumps(tampered), agent_id="max") or "")
    other_key = signed(f"k1:{K2}")  # right id, wrong key
    assert "does not verify" in (check(other_key) or "")
    service = signed(kind="service", sub="ann")
    assert "is service ann" in (check(service) or "")
    assert "no ESCALATION_PRINCIPAL_KEYS" in (
        verify(
            None,
            signed(),
            workflow_id="ticket-T-1",
            action="respond",
            agent_id="ann",
            digest=payload_digest(BODY),
            now=NOW,
        )
        or ""
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("k1", "found no `:`"),
        ("bad id!:" + K1, "key id"),
        (f"k1:{K1},k1:{K2}", "listed twice"),
        ("k1:***", "not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "5 bytes"),
    ],
)
def test_bad_keys_name_the_entry(raw: str, expected: str) -> None:
    with pytest.raises(PrincipalKeyError, match="ESCALATION_PRINCIPAL_KEYS") as err:
        parse_keys(raw)
    assert expected in str(err.value)
    assert K1 not in str(err.value)


def test_no_keys_is_none() -> None:
    assert parse_keys("") is None and parse_keys(" , ") is None


# --- the directory's tokens and services -------------------------------------------------------

RIGHTS = frozenset({OPEN_RIGHT, *ACTIONS})
DIGEST = "a" * 64


def test_directory_tokens_and_services() -> None:
    directory = parse_directory(
        f"""
[agents.ann]
name = "Ann"
tiers = ["L1"]
token_sha256 = "{DIGEST}"

[services.bot]
token_sha256 = "{"b" * 64}"
may = ["open", "customer_replied"]
""",
        rights=RIGHTS,
    )
    assert directory.agents["ann"].token_sha256 == DIGEST
    assert directory.agents["ann"].may is None
    assert directory.services["bot"].may == ("open", "customer_replied")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[services.bot]\nmay = ["fly"]\n', "services.bot.may: unknown right(s) 'fly'"),
        ("[services.bot]\n", "services.bot.may: required field is missing"),
        ('[services.bot]\nmay = []\ntoken_sha256 = "XYZ"\n', "64 lowercase hex"),
        (f'[services.bot]\nmay = []\ntoken_sha256 = "{DIGEST}"\n', "same token_sha256"),
        ('[services."bad id"]\nmay = []\n', "services.bad id"),
    ],
)
def test_directory_errors_name_the_key(extra: str, expected: str) -> None:
    text = f'[agents.ann]\nname = "Ann"\ntiers = ["L1"]\ntoken_sha256 = "{DIGEST}"\n\n{extra}'
    with pytest.raises(DirectoryError) as err:
        parse_directory(text, "agents.toml", RIGHTS)
    assert expected in str(err.value)


def test_services_must_be_tables() -> None:
    with pytest.raises(DirectoryError, match="services must be tables"):
        parse_directory('services = 3\n[agents.ann]\nname = "Ann"\ntiers = ["L1"]\n', "a.toml")
