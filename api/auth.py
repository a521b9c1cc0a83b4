"""Who is calling: a static token from the agent directory, or an OIDC JWT.

Static tokens: the directory (ESCALATION_AGENTS_FILE) holds only their SHA-256
(`token_sha256` in `[agents.<id>]` or `[services.<id>]`); the file is re-read when it changes.
OIDC: a JWT signed by a key of the JWKS (ESCALATION_OIDC_JWKS, an https URL or a file), with
the configured issuer and audience, its agent id in ESCALATION_OIDC_AGENT_CLAIM (default `sub`).
A `kid` the key set does not know makes it fetch (or re-read) the set once more: key rotation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt

from domain.agents import OPEN_RIGHT, AgentDirectory, DirectoryError, parse_directory
from domain.commands import ACTIONS

RIGHTS = frozenset({OPEN_RIGHT, *ACTIONS})
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
REFETCH_AFTER_SECONDS = 30.0  # an unknown kid refetches the key set at most this often


class AuthError(Exception):
    """401: no credentials, or credentials that do not verify. The message says which."""


@dataclass(frozen=True)
class Caller:
    kind: Literal["agent", "service"]
    id: str
    may: frozenset[str] | None  # None: every right (an agent without `may`)
    tiers: tuple[str, ...] = ()  # the agent's teams, from the directory (the console's queue)
    role: str | None = None
    key: str = ""  # what the rate limit counts by: the token's digest
    expires_at: float | None = None  # a JWT's exp (the console's session ends with it)

    def allows(self, right: str) -> bool:
        return self.may is None or right in self.may


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Directory:
    """The agent directory file, re-read when its mtime or size changes (checked each second)."""

    def __init__(self, path: str | Path | None, recheck_seconds: float = 1.0) -> None:
        self._path = Path(path) if path else None
        self._recheck = recheck_seconds
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._directory: AgentDirectory | None = None
        self._by_digest: dict[str, Caller] = {}
        if self._path is not None:
            self._reload()  # a bad file stops the API at start

    @property
    def configured(self) -> bool:
        return self._path is not None

    def _reload(self) -> None:
        assert self._path is not None
        stat = os.stat(self._path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            text = self._path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DirectoryError(f"{self._path}: cannot read agent directory: {exc}") from exc
        directory = parse_directory(text, str(self._path), RIGHTS)
        by_digest: dict[str, Caller] = {}
        for agent in directory.agents.values():
            if agent.token_sha256:
                by_digest[agent.token_sha256] = Caller(
                    "agent",
                    agent.id,
                    frozenset(agent.may) if agent.may is not None else None,
                    agent.tiers,
                    agent.role,
                    key=agent.token_sha256,
                )
        for service in directory.services.values():
            if service.token_sha256:
                by_digest[service.token_sha256] = Caller(
                    "service", service.id, frozenset(service.may), key=service.token_sha256
                )
        self._directory, self._by_digest, self._stamp = directory, by_digest, stamp

    def current(self) -> AgentDirectory | None:
        if self._path is None:
            return None
        now = time.monotonic()
        if now - self._checked >= self._recheck:
            self._checked = now
            try:
                self._reload()
            except (OSError, DirectoryError):
                pass  # keep the last good directory (the worker logs the same file's error)
        return self._directory

    def by_token(self, token: str) -> Caller | None:
        self.current()
        return self._by_digest.get(token_digest(token))


@dataclass(frozen=True)
class OidcConfig:
    jwks: str  # https:// or http:// URL, or a file path
    issuer: str
    audience: str
    agent_claim: str = "sub"
    leeway: float = 60.0  # clock skew allowed on exp / nbf / iat

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OidcConfig | None:
        e = os.environ if env is None else env
        jwks = (e.get("ESCALATION_OIDC_JWKS") or "").strip()
        issuer = (e.get("ESCALATION_OIDC_ISSUER") or "").strip()
        audience = (e.get("ESCALATION_OIDC_AUDIENCE") or "").strip()
        if not (jwks or issuer or audience):
            return None
        missing = [
            name
            for name, value in (
                ("ESCALATION_OIDC_JWKS", jwks),
                ("ESCALATION_OIDC_ISSUER", issuer),
                ("ESCALATION_OIDC_AUDIENCE", audience),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"OIDC is half configured: set {', '.join(missing)} too")
        raw_leeway = (e.get("ESCALATION_OIDC_LEEWAY") or "60").strip()
        try:
            leeway = float(raw_leeway)
        except ValueError:
            raise ValueError(f"ESCALATION_OIDC_LEEWAY={raw_leeway!r} is not seconds") from None
        claim = (e.get("ESCALATION_OIDC_AGENT_CLAIM") or "sub").strip()
        return cls(jwks, issuer, audience, claim, leeway)


class JwksKeys:
    """The key set by kid, from a URL or a file; an unknown kid refetches (rate limited)."""

    def __init__(self, source: str, refetch_after: float = REFETCH_AFTER_SECONDS) -> None:
        self.source = source
        self.refetch_after = refetch_after
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched: float | None = None
        self._lock = asyncio.Lock()

    def _read(self) -> str:
        if self.source.startswith(("http://", "https://")):
            import urllib.request

            with urllib.request.urlopen(self.source, timeout=5) as response:
                return str(response.read(1_000_000).decode())
        return Path(self.source).read_text(encoding="utf-8")

    async def _refresh(self) -> None:
        text = await asyncio.to_thread(self._read)
        keys: dict[str, jwt.PyJWK] = {}
        for data in json.loads(text).get("keys", []):
            try:
                key = jwt.PyJWK.from_dict(data)
            except jwt.PyJWKError:
                continue  # a key type or use we do not verify with
            if key.key_id:
                keys[key.key_id] = key
        self._keys = keys

    async def get(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            due = self._fetched is None or time.monotonic() - self._fetched >= self.refetch_after
            if key is None and due:
                self._fetched = time.monotonic()
                try:
                    await self._refresh()
                except (OSError, ValueError) as exc:
                    raise AuthError(f"cannot read the OIDC key set: {exc}") from exc
                key = self._keys.get(kid)
        return key


class OidcVerifier:
    def __init__(self, config: OidcConfig, refetch_after: float = REFETCH_AFTER_SECONDS) -> None:
        self.config = config
        self.keys = JwksKeys(config.jwks, refetch_after)

    async def verify(self, token: str, directory: AgentDirectory | None) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"not a valid JWT: {exc}") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("the JWT names no key (kid)")
        if header.get("alg") not in ALGORITHMS:
            raise AuthError(f"JWT algorithm {header.get('alg')!r} is not accepted")
        key = await self.keys.get(kid)
        if key is None:
            raise AuthError(f"the JWT's key {kid!r} is not in the OIDC key set")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("the JWT is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("the JWT is from another issuer") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the JWT does not verify: {exc}") from None
        agent_id = claims.get(self.config.agent_claim)
        if not isinstance(agent_id, str) or not agent_id:
            raise AuthError(f"the JWT has no claim {self.config.agent_claim!r}")
        agent = directory.agents.get(agent_id) if directory is not None else None
        return Caller(
            "agent",
            agent_id,
            frozenset(agent.may) if agent is not None and agent.may is not None else None,
            agent.tiers if agent is not None else (),
            agent.role if agent is not None else None,
            key="jwt:" + agent_id,
            expires_at=float(claims["exp"]),
        )


class Authenticator:
    def __init__(self, directory: Directory, oidc: OidcVerifier | None) -> None:
        self.directory = directory
        self.oidc = oidc

    async def caller(self, authorization: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("send `Authorization: Bearer <token>`")
        return await self.token(token)

    async def token(self, token: str) -> Caller:
        found = self.directory.by_token(token)
        if found is not None:
            return found
        if self.oidc is not None and token.count(".") == 2:
            return await self.oidc.verify(token, self.directory.current())
        raise AuthError("the token is not known")
