"""Ticket text as a terminal or a page may print it: control characters made visible.

Subjects, messages and names come from outside (customers, services). Printed raw, an escape
sequence (`ESC[2K`, `ESC[32m`) or a carriage return would rewrite the terminal's output, so
a subject could forge lines of `tickets show` (docs/contract.md#robustness-promises). Every
command line prints ticket text through `visible`.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the bidirectional overrides that reorder what follows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_LINES = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _show(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """One field of ticket text, every control character (newlines too) shown as an escape."""
    return _UNSAFE.sub(_show, text)


def visible_lines(text: str) -> str:
    """Output already laid out in lines: newlines kept, every other control shown."""
    return _UNSAFE_KEEPING_LINES.sub(_show, text)
