"""The caller's identity as the HTTP API vouches for it: a signed principal (pure; no clock).

The API signs who called (`agent` ann, or `service` billing-bot) together with what the call is
(workflow id, action, a digest of the payload, when): so a principal read out of a ticket's
history cannot be replayed onto another ticket, another action or another payload, and goes
stale after `MAX_AGE_SECONDS`. HMAC-SHA256 with keys by id (`ESCALATION_PRINCIPAL_KEYS`, the
codec keys' format: the first one signs, every listed one verifies), so keys rotate without
breaking a principal that is on its way. The worker verifies inside the recorded `authorize`
step, so a replay reads the recorded decision and never needs a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from domain.key_lists import parse_key_list

KEYS_ENV = "ESCALATION_PRINCIPAL_KEYS"
REQUIRE_ENV = "ESCALATION_REQUIRE_PRINCIPAL"
HEADER = "escalation-principal"  # the Temporal header that carries it
MAX_AGE_SECONDS = 300  # a principal older than this is refused (clock skew included)
MIN_KEY_BYTES = 16

Kind = Literal["agent", "service"]


class PrincipalKeyError(ValueError):
    """ESCALATION_PRINCIPAL_KEYS is unusable; the message names the entry, never a key."""


@dataclass(frozen=True)
class PrincipalKeys:
    keys: Mapping[str, bytes] = field(repr=False, hash=False)
    active: str

    def __repr__(self) -> str:
        return f"PrincipalKeys(ids={list(self.keys)!r}, active={self.active!r})"


def parse_keys(raw: str | None) -> PrincipalKeys | None:
    """`id:base64-key,...` (at least 16 bytes each); None when empty."""
    keys = parse_key_list(
        raw or "",
        KEYS_ENV,
        PrincipalKeyError,
        lambda n: (
            None
            if n >= MIN_KEY_BYTES
            else f"at least {MIN_KEY_BYTES} (`python -m runtime.codec new-key` makes a 32-byte one)"
        ),
    )
    if not keys:
        return None
    return PrincipalKeys(keys, next(iter(keys)))


class Claims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    sub: str  # the agent or service id
    wf: str  # workflow id
    act: str  # action (signal / update name)
    body: str  # payload_digest of the action
    iat: int  # issued at, Unix seconds


class Signed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    claims: Claims
    kid: str
    sig: str


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the payload's canonical JSON (sorted keys, no nulls): the same on both sides
    whatever order or explicit nulls the sender used."""
    clean = {k: v for k, v in payload.items() if v is not None}
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _mac(key: bytes, claims: Claims) -> str:
    message = json.dumps(claims.model_dump(), sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hmac.digest(key, message, "sha256")).decode().rstrip("=")


def sign(keys: PrincipalKeys, claims: Claims) -> str:
    """The header value: JSON of the claims, the signing key's id and the MAC."""
    signed = Signed(claims=claims, kid=keys.active, sig=_mac(keys.keys[keys.active], claims))
    return signed.model_dump_json()


def verify(
    keys: PrincipalKeys | None,
    header: str | None,
    *,
    workflow_id: str,
    action: str,
    agent_id: str,
    digest: str,
    now: int,
) -> str | None:
    """None when `header` is a valid principal of agent `agent_id` for exactly this call;
    otherwise why not (the text of the refusal)."""
    if header is None:
        return f"unauthenticated: {action} names agent {agent_id} but carries no principal"
    if keys is None:
        return f"unauthenticated: this worker has no {KEYS_ENV} to verify principals with"
    try:
        signed = Signed.model_validate_json(header)
    except ValidationError:
        return "unauthenticated: the principal header is malformed"
    key = keys.keys.get(signed.kid)
    if key is None:
        return f"unauthenticated: principal signed with unknown key id {signed.kid!r}"
    if not hmac.compare_digest(_mac(key, signed.claims), signed.sig):
        return "unauthenticated: the principal's signature does not verify"
    c = signed.claims
    if c.kind != "agent" or c.sub != agent_id:
        return f"unauthenticated: the principal is {c.kind} {c.sub}, not agent {agent_id}"
    if (c.wf, c.act, c.body) != (workflow_id, action, digest):
        return "unauthenticated: the principal was issued for another ticket, action or payload"
    if abs(now - c.iat) > MAX_AGE_SECONDS:
        return f"unauthenticated: the principal is older than {MAX_AGE_SECONDS}s"
    return None
