"""Active time: how much SLA time passes between two instants, and when a budget runs out.

Two layers. A `Calendar` knows which wall-clock time counts at all: every second (24x7,
`AlwaysCalendar`) or the opening hours of a business calendar (`BusinessHoursCalendar`). The
module functions then cut out the ticket's pauses (time `pending` or `resolved`). All clocks of a
ticket are computed from its open time, tier entry time and pause list, so a recomputation never
drifts.

Business hours and DST. Opening hours are local wall-clock times in the calendar's zone, per
weekday, replaced on single local dates by the calendar's `dates`; holidays are local dates on
which the calendar is closed all day. An interval `HH:MM-HH:MM` on a local date opens at the
instant of its start time and closes at the instant of its end time; the real seconds in between
count. A wall time that exists once is that instant. In the repeated hour of a fall back, the
first occurrence (fold=0); the repeated hour counts when it lies inside an interval, so a
00:00-24:00 day counts 25 hours. A wall time inside a spring-forward gap (the clock skips e.g.
02:00-03:00) depends on the rule the calendar recorded (`CalendarSpec.dst_gap`):
- "pep495" (calendars resolved today): the wall time read with the offset before the change, as
  zoneinfo (fold=0), java.time and zendesk/biz do: 02:30 is 03:30 after the jump, so 02:30-05:00
  counts 1.5 hours. Boundaries so mapped can overlap (01:00-02:45 ends at 03:45, after
  03:00-04:00 starts): a day's open time is the union of its intervals.
- "jump" (v1, tickets opened before "pep495" existed): the first instant the clock reads that
  time or later, i.e. the jump, 03:00: 02:30-05:00 counts 2 hours.
Either way a day open 00:00-24:00 counts 23 real hours on a spring-forward day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from domain.errors import DomainError
from domain.policy import ALWAYS, CalendarSpec, Policy

# add_active looks this many local days ahead for open time before giving up (policies are
# checked at load to need at most MAX_CALENDAR_YEARS without holidays).
SEARCH_DAYS = 100 * 366
_DAY = timedelta(days=1)


class CalendarError(DomainError):
    """A due time cannot be computed: the calendar has no open time within the search horizon."""


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


class BusinessHoursCalendar:
    """Opening hours per weekday in a time zone, closed on holidays. Returns UTC instants."""

    def __init__(self, spec: CalendarSpec) -> None:
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        self._week = spec.week()
        self._dates = spec.date_hours()
        self._holidays = frozenset(spec.holidays)
        self._pep495 = spec.dst_gap == "pep495"
        self._days: dict[date, tuple[tuple[datetime, datetime], ...]] = {}

    def __repr__(self) -> str:
        return f"BusinessHoursCalendar({self.spec.name!r}, {self.spec.timezone!r})"

    @staticmethod
    def _utc(instant: datetime) -> datetime:
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError(f"calendar arithmetic needs an aware datetime, got {instant!r}")
        return instant.astimezone(UTC)

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def hours_on(self, day: date) -> tuple[tuple[int, int], ...]:
        """The opening intervals of one local date in minutes: holiday, else date, else week."""
        if day in self._holidays:
            return ()
        found = self._dates.get(day)
        return self._week[day.weekday()] if found is None else found

    def _instant(self, day: date, minute: int) -> datetime:
        """The instant of wall time `day` + `minute` under the calendar's DST gap rule (UTC)."""
        wall = datetime.combine(day, time()) + timedelta(minutes=minute)
        first = wall.replace(tzinfo=self.zone).astimezone(UTC)  # fold=0: first occurrence
        if self._pep495 or first.astimezone(self.zone).replace(tzinfo=None) == wall:
            # fold=0 reads a wall time inside a gap with the offset before the change
            return first
        # v1: `wall` does not exist, the clock jumps over it. fold=1 reads it with the offset
        # after the jump, which lands before the jump; the jump itself is the first instant
        # reading `wall` or later. Bisect for it in whole seconds (transitions are whole seconds).
        lo = int(wall.replace(tzinfo=self.zone, fold=1).timestamp())
        hi = int(first.timestamp())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            local = datetime.fromtimestamp(mid, UTC).astimezone(self.zone).replace(tzinfo=None)
            if local >= wall:
                hi = mid
            else:
                lo = mid
        return datetime.fromtimestamp(hi, UTC)

    def _mapped(self, day: date) -> list[tuple[datetime, datetime]]:
        """The date's intervals as instants, empty ones dropped (wholly inside a v1 gap, or
        closing before they open under pep495)."""
        out = []
        for start, end in self.hours_on(day):
            a, b = self._instant(day, start), self._instant(day, end)
            if a < b:
                out.append((a, b))
        return out

    def open_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The open stretches of one local date as [start, end) UTC instants, in order, apart
        from each other and from the previous date's."""
        found = self._days.get(day)
        if found is None:
            out = self._mapped(day)
            if self._pep495:
                # v1 maps wall times monotonically; fold=0 does not inside a gap: take the union.
                # And a date opens no earlier than the previous date's last closing, so dates
                # never overlap (only where a zone skipped a whole date would they)
                floor = max((b for _, b in self._mapped(day - _DAY)), default=None)
                merged: list[tuple[datetime, datetime]] = []
                for a, b in sorted(out):
                    if floor is not None:
                        a = max(a, floor)
                    if a >= b:
                        continue
                    if merged and a <= merged[-1][1]:
                        merged[-1] = (merged[-1][0], max(merged[-1][1], b))
                    else:
                        merged.append((a, b))
                out = merged
            found = tuple(out)
            if len(self._days) >= 4096:
                self._days.clear()
            self._days[day] = found
        return found

    def active_between(self, start: datetime, end: datetime) -> timedelta:
        start, end = self._utc(start), self._utc(end)
        total = timedelta(0)
        if end <= start:
            return total
        # a day of margin either side: a fall-back fold over local midnight can make `end` read
        # the earlier date while the later date's hours have begun, and a date's hours ending
        # inside a gap (pep495) reach into the next date
        day, last = self._local_date(start) - _DAY, self._local_date(end) + _DAY
        while day <= last:
            for a, b in self.open_intervals(day):
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += hi - lo
            day += _DAY
        return total

    def add_active(self, start: datetime, duration: timedelta) -> datetime:
        start = self._utc(start)
        remaining = duration
        if remaining <= timedelta(0):
            return start
        day = self._local_date(start) - _DAY  # the previous date's hours may reach past midnight
        for _ in range(SEARCH_DAYS):
            for a, b in self.open_intervals(day):
                if b <= start:
                    continue
                lo = max(a, start)
                if b - lo >= remaining:
                    return lo + remaining
                remaining -= b - lo
            if day >= date.max - _DAY:
                break
            day += _DAY
        raise CalendarError(
            f"calendar {self.spec.name!r} has not {duration} of open time within "
            f"{SEARCH_DAYS} days after {start.isoformat()} (holidays cover too much)"
        )


@lru_cache(maxsize=64)
def _business_calendar(spec: CalendarSpec) -> BusinessHoursCalendar:
    return BusinessHoursCalendar(spec)


def calendar_for(policy: Policy) -> Calendar:
    if policy.calendar == ALWAYS:
        return AlwaysCalendar()
    if policy.calendar_spec is None:
        raise ValueError(f"policy {policy.name!r} names unknown calendar {policy.calendar!r}")
    return _business_calendar(policy.calendar_spec)


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


def local_time(instant: datetime, policy: Policy) -> str:
    """A due time as the people on the policy's calendar read it (`2026-11-30 09:05:00
    Europe/Berlin`); UTC for 24x7 policies."""
    spec = policy.calendar_spec
    if spec is None:
        return f"{instant.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return f"{instant.astimezone(ZoneInfo(spec.timezone)):%Y-%m-%d %H:%M:%S} {spec.timezone}"
