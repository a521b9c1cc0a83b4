"""Durations as people write them in policy files: `90s`, `15m`, `4h`, `3d`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

MAX_DURATION = timedelta(days=3650)  # beyond this a due time is not a date any more
_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """Parse a policy duration; raise ValueError naming the bad text."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groupdict().values()):
        raise ValueError(
            f"invalid duration {text!r}: use units d, h, m, s as in '90s', '4h', '1h30m'"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    seconds = (
        parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60
    ) + parts.get("s", 0)
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {text!r}: too large (at most {MAX_DURATION.days}d)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, shortest form: 5400s -> `1h30m`."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def _to_timedelta(value: Any) -> Any:
    """Durations are written as text (`15m`); a timedelta is accepted from code, whole seconds."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        if value.microseconds or value <= timedelta(0) or value > MAX_DURATION:
            raise ValueError(f"duration {value} must be whole seconds between 1s and 3650d")
        return value
    raise ValueError(f"duration must be text such as '90s', '4h' or '1h30m', got {value!r}")


# Written and read as `15m`/`1h30m`, so a recorded policy reads like the file it came from.
Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str),
]
