"""When a ticket continues as new: well before Temporal suggests it (4 Ki events / 4 MB by
default), so a busy ticket never gets near the hard limits (50 Ki events / 50 MB).

Module-level so tests can lower them (the module is passed through the workflow sandbox).
"""

from __future__ import annotations

CONTINUE_AS_NEW_EVENTS = 2_000
CONTINUE_AS_NEW_BYTES = 2_000_000

# Domain events a continued run carries for the `history` query (the store keeps them all).
CARRIED_EVENTS = 100

# Signals and Updates taken in by one run before it continues as new (patch `inbox`): far below
# Temporal's per-run limits (10,000 signals, 2,000 updates), whatever the payloads.
CONTINUE_AS_NEW_MESSAGES = 1_000

# Bytes of event payloads in one append batch (patch `inbox`): a batch is one activity input,
# and a blob over the server's limit (2 MB by default) would fail the workflow task.
APPEND_BATCH_BYTES = 512 * 1024

# What a ticket's budget can absorb of one payload (blob): the server should refuse bigger ones
# (`limit.blobSize.error`; the dev stack and docker-compose set it, docs/operations.md says why).
SERVER_BLOB_LIMIT = 1024 * 1024

# What a continued run carries, in payload bytes: its recent events for the `history` query
# (at most CARRIED_EVENTS) and the inbox it has not decided (patch `inbox`), well under the limit.
CARRIED_EVENT_BYTES = 128 * 1024
CARRIED_INBOX_BYTES = 384 * 1024
