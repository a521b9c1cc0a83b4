"""When a ticket continues as new: well before Temporal suggests it (4 Ki events / 4 MB by
default), so a busy ticket never gets near the hard limits (50 Ki events / 50 MB).

Module-level so tests can lower them (the module is passed through the workflow sandbox).
"""

from __future__ import annotations

CONTINUE_AS_NEW_EVENTS = 2_000
CONTINUE_AS_NEW_BYTES = 2_000_000

# Domain events a continued run carries for the `history` query (the store keeps them all).
CARRIED_EVENTS = 100
