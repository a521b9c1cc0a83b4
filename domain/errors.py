"""Domain errors. Messages are written for people: they name the ticket, the field or the rule."""

from __future__ import annotations

from pydantic import ValidationError


class DomainError(Exception):
    """Base class of every error the domain raises on purpose."""


class InvalidTicket(DomainError):
    """The input that opens a ticket is not valid."""


class ActionRejected(DomainError):
    """An action cannot be applied to the ticket in its current state."""


class PolicyError(DomainError):
    """An SLA policy (file or built-in) is not valid."""


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the field: `priority: must be one of ...`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        if prefix:
            loc = f"{prefix}.{loc}" if err["loc"] else prefix
        if err["type"] == "extra_forbidden":
            parts.append(f"{loc}: unknown field")
        elif err["type"] == "missing":
            parts.append(f"{loc}: required field is missing")
        else:
            parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
