"""OIDC JWTs with keys the test makes (RSA and EC), a JWKS from a file or from a local HTTP
server: issuer, audience, expiry with clock skew, rotation by kid; static tokens re-read."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.app import create_app
from api.auth import Authenticator, AuthError, Directory, OidcConfig, OidcVerifier
from tests.api_support import TOKENS, asgi_client, directory_text, make_api, sha

ISSUER = "https://login.example.test/"
AUDIENCE = "escalation-api"


class Keys:
    def __init__(self) -> None:
        self.private: dict[str, Any] = {}
        self.public: list[dict[str, Any]] = []

    def add_rsa(self, kid: str) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private[kid] = (key, "RS256")
        self.public.append({**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid})

    def add_ec(self, kid: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.private[kid] = (key, "ES256")
        self.public.append({**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid})

    def jwks(self) -> str:
        return json.dumps({"keys": self.public})

    def token(self, kid: str, **claims: Any) -> str:
        key, alg = self.private[kid]
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ann", "iat": now, "exp": now + 300}
        body.update(claims)
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def keys() -> Keys:
    k = Keys()
    k.add_rsa("rsa-1")
    k.add_ec("ec-1")
    return k


def verifier(source: str, **over: Any) -> OidcVerifier:
    config = OidcConfig(jwks=source, issuer=ISSUER, audience=AUDIENCE, leeway=30, **over)
    return OidcVerifier(config, refetch_after=0)


def authenticator(tmp_path: Path, keys: Keys, **over: Any) -> Authenticator:
    path = tmp_path / "jwks.json"
    path.write_text(keys.jwks())
    directory = tmp_path / "agents.toml"
    directory.write_text(directory_text("pager1"))
    return Authenticator(Directory(directory), verifier(str(path), **over))


async def test_valid_jwts_name_the_agent(tmp_path: Path, keys: Keys) -> None:
    auth = authenticator(tmp_path, keys)
    for kid in ("rsa-1", "ec-1"):
        caller = await auth.caller(f"Bearer {keys.token(kid)}")
        assert (caller.kind, caller.id, caller.tiers) == ("agent", "ann", ("L1",))
        assert caller.expires_at is not None
    other = authenticator(tmp_path, keys, agent_claim="email")
    caller = await other.caller(f"Bearer {keys.token('rsa-1', email='ann@example.test')}")
    assert caller.id == "ann@example.test" and caller.tiers == ()


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "someone-else"}, "another audience"),
        ({"iss": "https://evil.test/"}, "another issuer"),
        ({"sub": None}, "no claim 'sub'"),
        ({"nbf": int(time.time()) + 600}, "does not verify"),
    ],
)
async def test_bad_jwts_are_refused(
    tmp_path: Path, keys: Keys, claims: dict[str, Any], expected: str
) -> None:
    auth = authenticator(tmp_path, keys)
    token = keys.token("rsa-1", **claims)
    if claims.get("sub", "") is None:
        key, alg = keys.private["rsa-1"]
        payload = jwt.decode(token, options={"verify_signature": False})
        payload.pop("sub")
        token = jwt.encode(payload, key, algorithm=alg, headers={"kid": "rsa-1"})
    with pytest.raises(AuthError, match=expected):
        await auth.caller(f"Bearer {token}")


async def test_clock_skew_within_leeway_is_accepted(tmp_path: Path, keys: Keys) -> None:
    auth = authenticator(tmp_path, keys)
    caller = await auth.caller(f"Bearer {keys.token('rsa-1', exp=int(time.time()) - 10)}")
    assert caller.id == "ann"


async def test_forged_and_unknown_keys_are_refused(tmp_path: Path, keys: Keys) -> None:
    auth = authenticator(tmp_path, keys)
    stranger = Keys()
    stranger.add_rsa("rsa-1")  # the same kid, another key
    with pytest.raises(AuthError, match="does not verify"):
        await auth.caller(f"Bearer {stranger.token('rsa-1')}")
    stranger.add_rsa("rsa-9")
    with pytest.raises(AuthError, match="'rsa-9' is not in the OIDC key set"):
        await auth.caller(f"Bearer {stranger.token('rsa-9')}")
    unsigned = jwt.encode({"sub": "max"}, "", algorithm="none", headers={"kid": "rsa-1"})
    with pytest.raises(AuthError, match="not accepted"):
        await auth.caller(f"Bearer {unsigned}")
    hs = jwt.encode({"sub": "max"}, "x" * 32, algorithm="HS256", headers={"kid": "rsa-1"})
    with pytest.raises(AuthError, match="not accepted"):
        await auth.caller(f"Bearer {hs}")
    with pytest.raises(AuthError, match=r"not a valid JWT|not known"):
        await auth.caller("Bearer a.b.c")


async def test_key_rotation_by_kid_rereads_the_file(tmp_path: Path, keys: Keys) -> None:
    auth = authenticator(tmp_path, keys)
    assert (await auth.caller(f"Bearer {keys.token('rsa-1')}")).id == "ann"
    rotated = Keys()
    rotated.add_rsa("rsa-2")
    (tmp_path / "jwks.json").write_text(rotated.jwks())
    assert (await auth.caller(f"Bearer {rotated.token('rsa-2')}")).id == "ann"


@pytest.fixture
def jwks_server(tmp_path: Path, keys: Keys) -> Iterator[tuple[str, Path]]:
    """A JWKS over HTTP on 127.0.0.1 (a free port), like an identity provider's."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "jwks.json").write_text(keys.jwks())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", root / "jwks.json"
    finally:
        server.shutdown()
        server.server_close()


async def test_jwks_from_a_url_and_its_rotation(
    tmp_path: Path, keys: Keys, jwks_server: tuple[str, Path]
) -> None:
    url, file = jwks_server
    auth = Authenticator(Directory(None), verifier(url))
    assert (await auth.caller(f"Bearer {keys.token('ec-1')}")).id == "ann"
    rotated = Keys()
    rotated.add_ec("ec-2")
    file.write_text(json.dumps({"keys": keys.public + rotated.public}))
    assert (await auth.caller(f"Bearer {rotated.token('ec-2')}")).id == "ann"


async def test_an_unreachable_jwks_is_401_not_500(tmp_path: Path, keys: Keys) -> None:
    auth = Authenticator(Directory(None), verifier("http://127.0.0.1:1/jwks.json"))
    with pytest.raises(AuthError, match="cannot read the OIDC key set"):
        await auth.caller(f"Bearer {keys.token('rsa-1')}")


async def test_expired_jwt_over_http_is_401(
    tmp_path: Path, keys: Keys, dev_env: Any, db_pool: Any
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(keys.jwks())
    api = make_api(dev_env.client, "tq", db_pool, None, None, oidc=verifier(str(path)))
    async with asgi_client(create_app(api)) as http_client:
        expired = keys.token("rsa-1", exp=int(time.time()) - 3600)
        r = await http_client.get("/v1/tickets/X-1", headers={"Authorization": f"Bearer {expired}"})
        assert r.status_code == 401 and "expired" in r.json()["detail"]
        wrong = keys.token("rsa-1", aud="other")
        r = await http_client.get("/v1/tickets/X-1", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401 and "audience" in r.json()["detail"]
        good = keys.token("rsa-1")
        r = await http_client.get("/v1/tickets/X-1", headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 404  # authenticated; the ticket does not exist


def test_oidc_config_from_env() -> None:
    assert OidcConfig.from_env({}) is None
    with pytest.raises(ValueError, match="ESCALATION_OIDC_AUDIENCE"):
        OidcConfig.from_env({"ESCALATION_OIDC_JWKS": "x", "ESCALATION_OIDC_ISSUER": "y"})
    config = OidcConfig.from_env(
        {
            "ESCALATION_OIDC_JWKS": "/etc/jwks.json",
            "ESCALATION_OIDC_ISSUER": ISSUER,
            "ESCALATION_OIDC_AUDIENCE": AUDIENCE,
            "ESCALATION_OIDC_AGENT_CLAIM": "preferred_username",
        }
    )
    assert config is not None and config.agent_claim == "preferred_username"


async def test_static_tokens_follow_the_directory_file(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(directory_text("pager1"))
    directory = Directory(path, recheck_seconds=0)
    auth = Authenticator(directory, None)
    assert (await auth.caller(f"Bearer {TOKENS['ann']}")).id == "ann"
    bot = await auth.caller(f"Bearer {TOKENS['bot']}")
    assert (bot.kind, bot.allows("open"), bot.allows("close")) == ("service", True, False)
    # ann's token is replaced: the old one stops working once the file changes
    path.write_text(directory_text("pager1").replace(sha(TOKENS["ann"]), sha("ann-new")))
    with pytest.raises(AuthError, match="not known"):
        await auth.caller(f"Bearer {TOKENS['ann']}")
    assert (await auth.caller("Bearer ann-new")).id == "ann"
