"""Business-hours calendars (docs/contract.md#escalation-rules, rule 8, second sentence;
#calendar-date-overrides-and-the-dst-gap-rule) against minute-by-minute oracles.

The meaning being checked, in words: a local date's hours are its `dates` entry if it has one,
else its weekday's; a holiday is closed whatever. An interval `HH:MM-HH:MM` on a local date is
open from the instant of its start time to the instant of its end time. A wall time that exists
is its instant (in a fall-back fold, the first occurrence); one inside a spring-forward gap is,
under the v1 rule ("jump"), the first instant the clock reads it or later, and under today's
("pep495"), that wall time read with the offset before the change. Pauses cut time out as before.

Two oracles, one per gap rule, both stepping through real time one minute at a time:
- v1: keep the furthest local wall-clock reading seen so far (the clock "never goes back":
  through a fall-back fold it stands still, over a spring-forward gap it jumps). A minute counts
  when that reading falls inside an opening interval of its date.
- pep495: each boundary's instant is found from UTC->local conversions alone (the wall time
  minus each offset the zone has around it; the earliest that reads back as the wall time, or
  with none, the wall time minus the earlier offset), and a minute counts when it lies inside
  any interval of any date so placed.
Every calendar boundary, zone offset, start instant and pause generated here is a whole minute,
so the oracles are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.calendar import BusinessHoursCalendar, Pause, active_between, add_active
from domain.policy import CLOSED, WEEKDAYS, CalendarSpec, DstGapRule, format_hours

MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
ORACLE_EXAMPLES = 600  # per property; two properties: 1,200 oracle comparisons a run
MAX_SPAN = 10 * 1440  # minutes
RULES: list[DstGapRule] = ["pep495", "jump"]

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # DST shift of 30 minutes, at 02:00 local
    "Asia/Kolkata",  # +05:30, no DST
    "Asia/Kathmandu",  # +05:45, no DST
    "America/Santiago",  # DST changes at local midnight
    "Pacific/Chatham",  # +12:45/+13:45, changes at 02:45 local
]


def _transitions(zone: ZoneInfo) -> list[datetime]:
    """UTC instants (whole minutes) at which the zone's offset changes, 2024-2028."""
    out = []
    u, stop, step = datetime(2024, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC), 360
    while u < stop:
        nxt = u + step * MINUTE
        if u.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            lo, hi = 0, step  # bisect in minutes: offset(u + lo) differs from offset(u + hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                same = (u + mid * MINUTE).astimezone(zone).utcoffset() == u.astimezone(
                    zone
                ).utcoffset()
                lo, hi = (mid, hi) if same else (lo, mid)
            out.append(u + hi * MINUTE)
        u = nxt
    return out


TRANSITIONS = {name: _transitions(ZoneInfo(name)) for name in ZONES}
# Year ends and leap days, as UTC instants near local midnight
SPECIAL = [
    datetime(y, m, d, tzinfo=UTC)
    for y, m, d in [(2024, 12, 31), (2025, 12, 31), (2026, 12, 31), (2024, 2, 28), (2028, 2, 28)]
]


def test_the_zones_under_test_have_the_transitions_we_think() -> None:
    assert TRANSITIONS["UTC"] == [] and TRANSITIONS["Asia/Kolkata"] == []
    for name in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"):
        assert len(TRANSITIONS[name]) >= 8, name
    berlin = TRANSITIONS["Europe/Berlin"]
    assert datetime(2026, 3, 29, 1, 0, tzinfo=UTC) in berlin
    assert datetime(2026, 10, 25, 1, 0, tzinfo=UTC) in berlin


# --- generated cases ----------------------------------------------------------------------------

COMMON_POINTS = [0, 30, 60, 90, 120, 135, 150, 165, 180, 210, 240, 540, 1020, 1380, 1410, 1440]


def _dst_points(zone: str) -> list[int]:
    """Minutes of the day at and around the zone's DST walls: inside gaps, folds and at edges."""
    tz, out = ZoneInfo(zone), set()
    for t in TRANSITIONS[zone]:
        before = (t - MINUTE).astimezone(tz)
        after = t.astimezone(tz)
        a = before.hour * 60 + before.minute + 1  # the wall reading the clock leaves (may be 1440)
        b = after.hour * 60 + after.minute  # the reading it jumps to
        lo, hi = min(a, b), max(a, b)
        out |= {lo, lo + 1, (lo + hi) // 2, hi - 1, hi, max(lo - 1, 0)}
    return sorted(m for m in out if 0 <= m <= 1440)


def _gaps(zone: str) -> list[tuple[int, int]]:
    """Spring-forward gaps as wall minutes [lo, hi) of their local date (skipped readings)."""
    tz, out = ZoneInfo(zone), set()
    for t in TRANSITIONS[zone]:
        left = (t - MINUTE).astimezone(tz).replace(tzinfo=None) + MINUTE
        reached = t.astimezone(tz).replace(tzinfo=None)
        if reached > left:
            lo = left.hour * 60 + left.minute
            out.add((lo, lo + (reached - left) // MINUTE))
    return sorted(out)


DST_POINTS = {zone: _dst_points(zone) for zone in ZONES}
GAPS = {zone: _gaps(zone) for zone in ZONES}
DST_ZONES = [zone for zone in ZONES if TRANSITIONS[zone]]
Week = list[list[tuple[int, int]]]  # minutes since local midnight, per weekday, Monday first


@st.composite
def day_hours(draw: st.DrawFn, zone: str) -> list[tuple[int, int]]:
    kind = draw(st.sampled_from(["closed", "closed", "full", "some", "some", "some"]))
    if kind == "closed":
        return []
    if kind == "full":
        return [(0, 1440)]
    points_from = st.one_of(
        st.sampled_from(COMMON_POINTS),
        st.sampled_from(DST_POINTS[zone] or COMMON_POINTS),
        st.integers(0, 1440),
    )
    n = draw(st.integers(1, 3))
    points = sorted(draw(st.lists(points_from, min_size=2 * n, max_size=2 * n, unique=True)))
    if n > 1 and draw(st.booleans()):
        points[2] = points[1]  # two intervals that touch
    return [(points[2 * i], points[2 * i + 1]) for i in range(n)]


@st.composite
def dst_day_hours(draw: st.DrawFn, zone: str) -> list[tuple[int, int]]:
    """One or two intervals with at least one boundary at the zone's DST wall."""
    if GAPS[zone] and draw(st.integers(0, 3)) == 0:
        # pep495 maps a closing inside the gap past an opening just after it: the two overlap
        lo, hi = draw(st.sampled_from(GAPS[zone]))
        close = draw(st.integers(lo + 1, hi - 1))
        reopen = draw(st.integers(hi, close + hi - lo - 1))
        return [
            (draw(st.integers(0, close - 1)), close),
            (reopen, draw(st.integers(reopen + 1, 1440))),
        ]
    near = st.sampled_from(DST_POINTS[zone])
    wall = draw(near)
    others = draw(st.lists(st.one_of(near, st.integers(0, 1440)), max_size=3, unique=True))
    points = sorted({wall, *others})
    if len(points) % 2:
        extra = [m for m in (0, 1440) if m not in points]
        if extra:
            points = sorted([*points, draw(st.sampled_from(extra))])
        else:
            points.remove(next(m for m in points if m != wall))
    return [(points[2 * i], points[2 * i + 1]) for i in range(len(points) // 2)]


@st.composite
def weeks(draw: st.DrawFn, zone: str) -> Week:
    week = [draw(day_hours(zone)) for _ in range(7)]
    if not any(week):
        week[draw(st.integers(0, 6))] = [(540, 1020)]
    return week


def anchors(zone: str) -> st.SearchStrategy[datetime]:
    """A DST change of the zone, a year end, a leap day, or any minute of 2024-2028 (UTC)."""
    return st.one_of(
        st.sampled_from(TRANSITIONS[zone] or SPECIAL),
        st.sampled_from(SPECIAL),
        st.integers(0, 5 * 365 * 1440).map(lambda m: datetime(2024, 1, 1, tzinfo=UTC) + m * MINUTE),
    )


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    """A whole-minute UTC instant, mostly a few days from a DST change, a year end or leap day."""
    return draw(anchors(zone)) + draw(st.integers(-4 * 1440, 4 * 1440)) * MINUTE


PauseOffsets = list[tuple[int, int | None]]  # minutes from the start; None: still running


@st.composite
def pause_sets(draw: st.DrawFn, span: int) -> PauseOffsets:
    """Ordered, non-overlapping pauses; they may touch or be empty; the last may be running."""
    n = draw(st.integers(0, 4))
    points = sorted(draw(st.lists(st.integers(-720, span + 720), min_size=2 * n, max_size=2 * n)))
    out: PauseOffsets = [(points[2 * i], points[2 * i + 1]) for i in range(n)]
    if draw(st.booleans()):
        after = out[-1][1] if out else -720
        assert after is not None
        out.append((draw(st.integers(after, max(after, span) + 60)), None))
    return out


Hours = list[tuple[int, int]]


class Case:
    def __init__(
        self,
        zone: str,
        week: Week,
        holidays: set[date],
        dates: dict[date, Hours],
        rule: DstGapRule,
        start: datetime,
        span: int,
        pauses: PauseOffsets,
    ) -> None:
        self.zone, self.week, self.holidays, self.dates, self.rule = (
            zone,
            week,
            holidays,
            dates,
            rule,
        )
        self.start, self.span = start, span
        self.end = start + span * MINUTE
        self.pause_offsets = pauses
        self.pauses = tuple(
            Pause(start + p * MINUTE, None if q is None else start + q * MINUTE) for p, q in pauses
        )
        self.spec = CalendarSpec(
            name="random",
            timezone=zone,
            holidays=tuple(holidays),
            dates={d: format_hours(tuple(h)) if h else CLOSED for d, h in dates.items()},
            dst_gap=rule,
            **{day: format_hours(tuple(h)) for day, h in zip(WEEKDAYS, week, strict=True) if h},
        )
        self.calendar = BusinessHoursCalendar(self.spec)

    def hours(self, day: date) -> Hours:
        """The oracle's own reading of the spec: holiday, else the date's entry, else the week."""
        if day in self.holidays:
            return []
        return self.dates.get(day, self.week[day.weekday()])

    def __repr__(self) -> str:
        return (
            f"Case(zone={self.zone!r}, spec={self.spec!r}, start={self.start.isoformat()}, "
            f"span={self.span}, pauses={self.pause_offsets})"
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    # whole days drawn uniformly (plain integers would mostly be small), then minutes
    span = draw(st.sampled_from(range(MAX_SPAN // 1440))) * 1440 + draw(st.integers(0, 1440))
    if draw(st.booleans()):
        zone = draw(st.sampled_from(ZONES))
        week = draw(weeks(zone))
        # the anchor (often a DST change) lies inside the span, or up to a day outside it
        start = draw(anchors(zone)) - draw(st.integers(-1440, span + 1440)) * MINUTE
    else:
        # focused on DST: the span holds a change, and that day opens or closes in its gap/fold
        zone = draw(st.sampled_from(DST_ZONES))
        week = draw(weeks(zone))
        change = draw(st.sampled_from(TRANSITIONS[zone]))
        tz = ZoneInfo(zone)
        for weekday in {
            (change - MINUTE).astimezone(tz).weekday(),
            change.astimezone(tz).weekday(),
        }:
            week[weekday] = draw(dst_day_hours(zone))
        start = change - draw(st.integers(0, span)) * MINUTE
    tz = ZoneInfo(zone)
    first_day = start.astimezone(tz).date()
    near = st.integers(-1, span // 1440 + 1).map(lambda d: first_day + timedelta(days=d))
    holidays = set(draw(st.lists(near, max_size=4)))
    # date overrides: half days, extra openings, breaks, closed dates; never on a holiday
    dates = {
        day: draw(day_hours(zone))
        for day in draw(st.lists(near, max_size=5, unique=True))
        if day not in holidays
    }
    # and often on the DST change days themselves, with boundaries at the change
    for t in TRANSITIONS[zone]:
        if start - DAY <= t <= start + (span + 1440) * MINUTE and draw(st.booleans()):
            for day in {(t - MINUTE).astimezone(tz).date(), t.astimezone(tz).date()}:
                if day not in holidays:
                    dates[day] = draw(dst_day_hours(zone))
    rule = draw(st.sampled_from(RULES))
    pauses = draw(pause_sets(span))
    case = Case(zone, week, holidays, dates, rule, start, span, pauses)
    _label(case)
    return case


def _label(case: Case) -> None:
    """Statistics (pytest --hypothesis-show-statistics): how often the hard parts come up."""
    zone = ZoneInfo(case.zone)
    if any(case.start <= t <= case.end for t in TRANSITIONS[case.zone]):
        event("the span crosses a DST change")
    event(f"DST gap rule {case.rule}")
    day, last = case.start.astimezone(zone).date(), case.end.astimezone(zone).date()
    if any(day <= d <= last for d in case.dates):
        event("date overrides inside the span")
    changed = {t.astimezone(zone).date() for t in TRANSITIONS[case.zone]}
    if any(day <= d <= last and d in changed for d in case.dates):
        event("a DST change day has a date override")
    while day <= last:
        for s, e in case.hours(day):
            for m in (s, e):
                wall = datetime.combine(day, datetime.min.time()) + m * MINUTE
                first = wall.replace(tzinfo=zone)
                if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
                    event("an opening boundary falls into a spring-forward gap")
                elif first.utcoffset() != first.replace(fold=1).utcoffset():
                    event("an opening boundary falls into a fall-back fold")
        day += timedelta(days=1)
    if case.holidays and case.span > 1440:
        event("holidays inside the span")


# --- the oracle ---------------------------------------------------------------------------------


def oracle_minutes(case: Case, until: datetime) -> Iterator[tuple[datetime, bool]]:
    """Every whole minute u in [case.start, until) that the calendar counts, with whether a
    pause covers it, by the oracle of the case's DST gap rule."""
    counts = _jump_oracle(case, until) if case.rule == "jump" else _pep495_oracle(case, until)
    for u in counts:
        paused = any(p.start <= u and (p.end is None or u < p.end) for p in case.pauses)
        yield u, paused


def _jump_oracle(case: Case, until: datetime) -> Iterator[datetime]:
    """v1: step through real time while tracking the furthest local wall-clock reading."""
    zone = ZoneInfo(case.zone)
    tables: dict[date, list[bool]] = {}

    def open_at(wall: datetime) -> bool:
        table = tables.get(wall.date())
        if table is None:
            table = tables[wall.date()] = [False] * 1440
            for s, e in case.hours(wall.date()):
                table[s:e] = [True] * (e - s)
        return table[wall.hour * 60 + wall.minute]

    furthest: datetime | None = None
    u = case.start - DAY  # a fold is far shorter: the furthest reading is settled
    while u < until:
        wall = u.astimezone(zone).replace(tzinfo=None)
        if furthest is None or wall > furthest:
            furthest = wall
        if u >= case.start and open_at(furthest):
            yield u
        u += MINUTE


def fold0_instant(zone: ZoneInfo, wall: datetime) -> datetime:
    """PEP 495 fold=0 from UTC->local conversions alone (at most one offset change within a day
    of `wall` in the zones under test): the earliest instant that reads `wall`, else (a gap)
    `wall` read with the offset in force before the change."""
    as_utc = wall.replace(tzinfo=UTC)
    before = (as_utc - DAY).astimezone(zone).utcoffset()
    after = (as_utc + DAY).astimezone(zone).utcoffset()
    assert before is not None and after is not None
    reading = [
        u
        for u in (as_utc - before, as_utc - after)
        if u.astimezone(zone).replace(tzinfo=None) == wall
    ]
    return min(reading) if reading else as_utc - before


def _pep495_oracle(case: Case, until: datetime) -> Iterator[datetime]:
    """pep495: place every interval of every date near the span, then step through real time
    and count the minutes that any of them covers."""
    zone = ZoneInfo(case.zone)
    origin = case.start - 2 * DAY
    covered = bytearray((until - origin) // MINUTE + 4 * 1440)
    day, last = origin.astimezone(zone).date(), until.astimezone(zone).date() + DAY
    while day <= last:
        midnight = datetime.combine(day, datetime.min.time())
        for s, e in case.hours(day):
            a = fold0_instant(zone, midnight + s * MINUTE)
            b = fold0_instant(zone, midnight + e * MINUTE)
            for m in range(max(0, (a - origin) // MINUTE), max(0, (b - origin) // MINUTE)):
                covered[m] = 1
        day += DAY
    u = case.start
    while u < until:
        if covered[(u - origin) // MINUTE]:
            yield u
        u += MINUTE


def test_the_fold0_oracle_reads_gaps_and_folds_as_pep495_says() -> None:
    """The pep495 oracle's own check, on the issue's cases and against zoneinfo."""
    la, berlin = ZoneInfo("America/Los_Angeles"), ZoneInfo("Europe/Berlin")
    gap = datetime(2014, 3, 9, 2, 30)  # Los Angeles jumps 02:00 PST -> 03:00 PDT
    assert fold0_instant(la, gap) == datetime(2014, 3, 9, 10, 30, tzinfo=UTC)  # 03:30 PDT
    assert fold0_instant(berlin, datetime(2026, 3, 29, 2, 30)) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )  # 03:30 CEST
    fold = datetime(2026, 10, 25, 2, 30)  # Berlin repeats 02:00-03:00: the first, in CEST
    assert fold0_instant(berlin, fold) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    for zone in DST_ZONES:
        tz = ZoneInfo(zone)
        for t in TRANSITIONS[zone]:
            for minutes in range(-90, 91, 15):
                local = (t + minutes * MINUTE).astimezone(tz).replace(tzinfo=None, fold=0)
                for wall in (local, local + 7 * MINUTE):
                    assert fold0_instant(tz, wall) == wall.replace(tzinfo=tz).astimezone(UTC)


# --- properties ---------------------------------------------------------------------------------


@pytest.mark.slow  # the minute oracles: a minute of CPU between them
@settings(max_examples=ORACLE_EXAMPLES, deadline=None, derandomize=True)
@given(case=cases())
def test_active_between_matches_the_minute_oracle(case: Case) -> None:
    counted = list(oracle_minutes(case, case.end))
    open_minutes = len(counted)
    active_minutes = sum(1 for _, paused in counted if not paused)
    assert case.calendar.active_between(case.start, case.end) == open_minutes * MINUTE
    assert active_between(case.start, case.end, case.calendar) == open_minutes * MINUTE
    got = active_between(case.start, case.end, case.calendar, case.pauses)
    assert got == active_minutes * MINUTE
    # a reversed span counts nothing
    assert case.calendar.active_between(case.end, case.start) == timedelta(0)


@pytest.mark.slow  # the minute oracles: a minute of CPU between them
@settings(max_examples=ORACLE_EXAMPLES, deadline=None, derandomize=True)
@given(case=cases(), data=st.data())
def test_add_active_matches_the_minute_oracle(case: Case, data: st.DataObject) -> None:
    running = case.pauses[-1] if case.pauses and case.pauses[-1].end is None else None
    # walk at least until a running pause begins: after it nothing counts any more
    horizon = max(case.end, running.start) if running else case.end
    walked = list(oracle_minutes(case, horizon))
    counted = [u for u, paused in walked if not paused]
    # the budget in seconds: k-1 whole counted minutes, then x seconds of the k-th
    for seconds in data.draw(
        st.lists(st.integers(1, max(1, len(counted)) * 60 + 120), min_size=1, max_size=4)
    ):
        budget = seconds * SECOND
        got = add_active(case.start, budget, case.calendar, case.pauses)
        k, x = -(-seconds // 60), seconds - (-(-seconds // 60) - 1) * 60
        if k <= len(counted):
            assert got == counted[k - 1] + x * SECOND, (seconds, k, x)
        elif running is not None:
            assert got is None  # everything after the running pause stands still
        else:
            # beyond the oracle's horizon: later than the span, and exactly the budget
            assert got is not None and got >= horizon + x * SECOND
            assert active_between(case.start, got, case.calendar, case.pauses) == budget
        if got is not None:
            assert got.utcoffset() == timedelta(0)
    # without pauses the calendar itself reaches the same instants
    plain = [u for u, _ in walked]
    if plain:
        k = data.draw(st.integers(1, len(plain)))
        assert case.calendar.add_active(case.start, k * MINUTE) == plain[k - 1] + MINUTE


def _union(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@pytest.mark.slow
@settings(max_examples=200, deadline=None, derandomize=True)
@given(case=cases())
def test_the_two_gap_rules_differ_only_on_dates_with_a_boundary_in_a_gap(case: Case) -> None:
    """Tickets keep v1's rule unless a boundary falls into a spring-forward gap: everywhere
    else both rules open the very same stretches."""
    other: DstGapRule = "jump" if case.rule == "pep495" else "pep495"
    twin = BusinessHoursCalendar(case.spec.model_copy(update={"dst_gap": other}))
    zone = ZoneInfo(case.zone)
    day = case.start.astimezone(zone).date() - DAY
    while day <= case.end.astimezone(zone).date() + DAY:
        midnight = datetime.combine(day, datetime.min.time())
        walls = [midnight + m * MINUTE for interval in case.hours(day) for m in interval]
        in_gap = any(
            w.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) != w
            for w in walls
        )
        if in_gap:
            event("a date with a boundary in a gap")
        else:
            mine, theirs = case.calendar.open_intervals(day), twin.open_intervals(day)
            assert _union(mine) == _union(theirs), day
        day += DAY


@pytest.mark.slow
@settings(max_examples=200, deadline=None, derandomize=True)
@given(case=cases(), data=st.data())
def test_add_active_and_active_between_agree_to_the_second(case: Case, data: st.DataObject) -> None:
    """No oracle: instants with seconds, additivity, and add_active as the inverse."""
    start = case.start + data.draw(st.integers(0, 59)) * SECOND
    mid = start + data.draw(st.integers(0, case.span * 60)) * SECOND
    end = mid + data.draw(st.integers(0, 3 * 86400)) * SECOND
    cal = case.calendar
    whole = active_between(start, end, cal, case.pauses)
    assert whole == active_between(start, mid, cal, case.pauses) + active_between(
        mid, end, cal, case.pauses
    )
    if whole > timedelta(0):
        budget = data.draw(st.integers(1, int(whole.total_seconds()))) * SECOND
        t = add_active(start, budget, cal, case.pauses)
        assert t is not None and start < t <= end
        assert active_between(start, t, cal, case.pauses) == budget
        assert active_between(start, t - SECOND, cal, case.pauses) < budget


@settings(max_examples=100, deadline=None, derandomize=True)
@given(zone=st.sampled_from(ZONES), rule=st.sampled_from(RULES), data=st.data())
def test_a_calendar_open_all_week_counts_every_real_second(
    zone: str, rule: DstGapRule, data: st.DataObject
) -> None:
    """00:00-24:00 every day: in any zone and across any DST change, business time is real time,
    under either gap rule."""
    spec = CalendarSpec.model_validate(
        {"name": "always-open", "timezone": zone, "dst_gap": rule}
        | dict.fromkeys(WEEKDAYS, "00:00-24:00")
    )
    cal = BusinessHoursCalendar(spec)
    start = data.draw(instants(zone)) + data.draw(st.integers(0, 59)) * SECOND
    length = data.draw(st.integers(0, 20 * 86400)) * SECOND
    assert cal.active_between(start, start + length) == length
    assert cal.add_active(start, length) == start + length
