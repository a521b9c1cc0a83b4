"""The `id:base64-key,...` lists that name keys by id, for rotation: ESCALATION_CODEC_KEYS
(runtime/codec.py) and ESCALATION_PRINCIPAL_KEYS (domain/principal.py) share the format, so
they share this parser. Errors name the variable and the entry, never a key."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def parse_key_list(
    raw: str, env: str, error: type[ValueError], check_length: Callable[[int], str | None]
) -> dict[str, bytes]:
    """Key id -> key bytes, in the order listed (empty entries, such as a trailing comma, are
    skipped). `check_length(n)` says what is wrong with an n-byte key, or None."""
    keys: dict[str, bytes] = {}
    for position, entry in enumerate((e.strip() for e in raw.split(",")), start=1):
        if not entry:
            continue
        key_id, sep, encoded = (part.strip() for part in entry.partition(":"))
        where = f"{env}, entry {position}"
        if not sep:
            raise error(f"{where}: expected `id:base64-key`, found no `:`")
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise error(
                f"{where}: key id {key_id!r} must be 1-64 of letters, digits, `.`, `_`, `-`"
            )
        if key_id in keys:
            raise error(f"{where}: key id {key_id!r} is listed twice")
        try:
            # Either base64 alphabet; validate=True so a typo is not silently skipped.
            key = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise error(f"{where} (key id {key_id!r}): the key is not base64") from None
        wrong = check_length(len(key))
        if wrong is not None:
            raise error(f"{where} (key id {key_id!r}): the key is {len(key)} bytes; {wrong}")
        keys[key_id] = key
    return keys
