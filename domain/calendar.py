"""Active time: how much SLA time passes between two instants, and when a budget runs out.

Two layers. A `Calendar` knows which wall-clock time counts at all (24x7 here; business
hours plug in behind the same two methods). The module functions then cut out the ticket's
pauses (time `pending` or `resolved`). All clocks of a ticket are computed from its open time,
tier entry time and pause list, so a recomputation never drifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from domain.policy import ALWAYS, Policy


class Calendar(Protocol):
    def active_between(self, start: datetime, end: datetime) -> timedelta:
        """Counted time in [start, end); zero when end <= start."""
        ...

    def add_active(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant at which `duration` of counted time has passed since start."""
        ...


class AlwaysCalendar:
    """24x7: every second counts."""

    def active_between(self, start: datetime, end: datetime) -> timedelta:
        return max(end - start, timedelta(0))

    def add_active(self, start: datetime, duration: timedelta) -> datetime:
        return start + duration


def calendar_for(policy: Policy) -> Calendar:
    if policy.calendar == ALWAYS:
        return AlwaysCalendar()
    raise ValueError(f"policy {policy.name!r} names unknown calendar {policy.calendar!r}")


@dataclass(frozen=True)
class Pause:
    """A stretch during which every SLA clock stands still; `end` is None while it lasts."""

    start: datetime
    end: datetime | None = None


def active_between(
    start: datetime, end: datetime, calendar: Calendar, pauses: tuple[Pause, ...] = ()
) -> timedelta:
    """Counted time in [start, end) outside the pauses (pauses are ordered, not overlapping)."""
    total = timedelta(0)
    cursor = start
    for pause in pauses:
        if cursor >= end:
            break
        if pause.end is not None and pause.end <= cursor:
            continue
        if pause.start > cursor:
            total += calendar.active_between(cursor, min(pause.start, end))
        if pause.end is None:
            return total
        cursor = max(cursor, pause.end)
    if cursor < end:
        total += calendar.active_between(cursor, end)
    return total


def add_active(
    start: datetime, duration: timedelta, calendar: Calendar, pauses: tuple[Pause, ...] = ()
) -> datetime | None:
    """When `duration` of counted time has passed since start; None if a running pause holds it."""
    remaining = duration
    cursor = start
    for pause in pauses:
        if pause.end is not None and pause.end <= cursor:
            continue
        if pause.start > cursor:
            available = calendar.active_between(cursor, pause.start)
            if available >= remaining:
                return calendar.add_active(cursor, remaining)
            remaining -= available
        if pause.end is None:
            return None
        cursor = max(cursor, pause.end)
    return calendar.add_active(cursor, remaining)
