"""The client's errors: one type per thing a caller handles differently, each with a message a
person understands. Every one carries the command line's exit code for it."""

from __future__ import annotations


class TicketError(Exception):
    """Base of every error the ticket client raises on purpose."""

    exit_code = 1

    @property
    def message(self) -> str:
        return str(self)


class ActionRejected(TicketError):
    """The workflow refused the action; the message is its reason, verbatim
    (e.g. "ticket T-1 is resolved; cannot escalate")."""

    exit_code = 1


class TicketClosed(TicketError):
    """The ticket's workflow has completed: it takes no more actions ("ticket T-1 is closed")."""

    exit_code = 1


class TicketConflict(TicketError):
    """An open named a ticket id that already exists with other input ("ticket T-1 already
    exists with other input: subject: ..."); nothing was changed."""

    exit_code = 1


class InvalidInput(TicketError):
    """The payload does not validate; checked before anything is sent. Names the field."""

    exit_code = 2


class TicketNotFound(TicketError):
    """No workflow `ticket-<id>` exists ("ticket T-9 not found")."""

    exit_code = 3


class ServerBusy(TicketError):
    """Temporal refused the call for now (rate or concurrency limits): worth trying again."""

    exit_code = 4


class CannotConnect(TicketError):
    """The Temporal frontend cannot be reached; says the address and how to start a server."""

    exit_code = 4
