"""Optional encryption of every Temporal payload, because ticket text is PII
(docs/configuration.md#encrypting-ticket-text-pii).

Off unless ESCALATION_CODEC_KEYS is set. Then each payload the client or worker sends to
Temporal (inputs, results, signals, updates, queries, activity arguments, failures' details,
summaries) is the AES-256-GCM ciphertext of the whole serialized original payload, tagged with
the id of the key that made it. The tag is what makes rotation work: decoding picks the key by
the id in the payload, so old keys keep reading old history while new payloads use the active
key. A payload without the `binary/encrypted` encoding passes decode untouched, so tickets
started before the codec was turned on still read.

    ESCALATION_CODEC_KEYS="k2:<base64 32 bytes>,k1:<base64 32 bytes>"
    ESCALATION_CODEC_KEY_ID=k2        # the key that encrypts; default: the first listed

`python -m runtime.codec new-key [ID]` prints a fresh key as an `id:base64` entry.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from domain.key_lists import KEY_ID_PATTERN, parse_key_list

KEYS_ENV = "ESCALATION_CODEC_KEYS"
KEY_ID_ENV = "ESCALATION_CODEC_KEY_ID"
ENCODING = b"binary/encrypted"
# What a worker's codec hands on in place of a payload that does not decrypt: no converter reads
# it, so a Signal or Update carrying it is refused by the workflow instead of failing its task.
UNDECRYPTABLE = b"binary/undecryptable"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per payload


class CodecConfigError(ValueError):
    """The key environment is unusable; the message names the variable, never a key."""


class CodecKeyError(ValueError):
    """A payload cannot be decrypted with the keys this process has."""


@dataclass(frozen=True)
class CodecKeys:
    """Keys by id and the id that encrypts. The key bytes stay out of repr (Settings is logged)."""

    keys: Mapping[str, bytes] = field(repr=False, hash=False)  # a dict: Settings stays hashable
    active: str

    @property
    def ids(self) -> list[str]:
        return list(self.keys)

    def __repr__(self) -> str:
        return f"CodecKeys(ids={self.ids!r}, active={self.active!r})"


def parse_keys(raw: str | None, active: str | None = None) -> CodecKeys | None:
    """ESCALATION_CODEC_KEYS / _KEY_ID as CodecKeys; None when no keys are configured."""
    raw = (raw or "").strip()
    active = (active or "").strip() or None
    if not raw:
        if active:
            raise CodecConfigError(f"{KEY_ID_ENV}={active!r} is set but {KEYS_ENV} is empty")
        return None
    keys = parse_key_list(
        raw,
        KEYS_ENV,
        CodecConfigError,
        lambda n: (
            None
            if n == KEY_BYTES
            else f"AES-256 needs {KEY_BYTES} (`python -m runtime.codec new-key` makes one)"
        ),
    )
    if not keys:
        raise CodecConfigError(f"{KEYS_ENV} lists no key")
    if active is None:
        active = next(iter(keys))
    elif active not in keys:
        raise CodecConfigError(
            f"{KEY_ID_ENV}={active!r} is not a key id in {KEYS_ENV} (ids: {', '.join(keys)})"
        )
    return CodecKeys(keys, active)


def keys_from_env(env: Mapping[str, str] | None = None) -> CodecKeys | None:
    e = os.environ if env is None else env
    return parse_keys(e.get(KEYS_ENV), e.get(KEY_ID_ENV))


def new_key() -> str:
    """A fresh random key in the base64 form ESCALATION_CODEC_KEYS takes."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the whole serialized payload; the key id rides in the metadata."""

    def __init__(self, keys: CodecKeys, *, refusable: bool = False) -> None:
        """`refusable` (the worker's codec): a payload that does not decrypt becomes an
        UNDECRYPTABLE payload naming why, instead of an error that fails the workflow task on
        every attempt (a forged Signal would freeze the ticket). Typed arguments (activity
        results, a continued run's input) still fail to convert, and so still retry."""
        self._keys = keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}
        self._refusable = refusable

    @property
    def active_key_id(self) -> str:
        return self._keys.active

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._keys.active
        nonce = secrets.token_bytes(NONCE_BYTES)
        # The key id is associated data: a payload relabelled with another id fails to decrypt.
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was on: readable as it is
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecKeyError(
                f"payload encrypted with key id {key_id!r}, which is not in {KEYS_ENV} "
                f"(this process has: {', '.join(self._keys.ids)}); keep retired keys listed "
                "for as long as history encrypted with them is read"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise CodecKeyError(
                f"payload with key id {key_id!r} does not decrypt: the key listed under that id "
                f"in {KEYS_ENV} is not the one that encrypted it, or the payload was altered"
            ) from None
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not self._refusable:
            return [self.decrypt(p) for p in payloads]
        out = []
        for payload in payloads:
            try:
                out.append(self.decrypt(payload))
            except CodecKeyError as exc:
                out.append(Payload(metadata={"encoding": UNDECRYPTABLE}, data=str(exc).encode()))
        return out


def _main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.codec",
        description="Keys for the payload codec (ESCALATION_CODEC_KEYS).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    nk = sub.add_parser("new-key", help="print a new `id:base64-key` entry")
    nk.add_argument("key_id", nargs="?", help="its id (default: today's date, e.g. k20261127)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    key_id = args.key_id or f"k{datetime.now(UTC):%Y%m%d}"
    if not KEY_ID_PATTERN.fullmatch(key_id):
        parser.error(f"key id {key_id!r} must be 1-64 of letters, digits, `.`, `_`, `-`")
    print(f"{key_id}:{new_key()}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
