"""Agents' thin client and command line for TicketWorkflow, plus the JSON Schema contract.

`TicketClient` (tickets.client) opens tickets idempotently and runs every action as an Update,
returning the ticket's `TicketView`; its errors (tickets.errors) say what went wrong in words a
person understands. `tickets` (tickets.cli) is the command line on top of it.
"""

from tickets.client import TicketClient, TicketSummary
from tickets.errors import (
    ActionRejected,
    CannotConnect,
    InvalidInput,
    ServerBusy,
    TicketClosed,
    TicketConflict,
    TicketError,
    TicketNotFound,
)

__all__ = [
    "ActionRejected",
    "CannotConnect",
    "InvalidInput",
    "ServerBusy",
    "TicketClient",
    "TicketClosed",
    "TicketConflict",
    "TicketError",
    "TicketNotFound",
    "TicketSummary",
]
