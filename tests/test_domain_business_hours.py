"""Business-hours calendars (docs/contract.md#escalation-rules, rule 8, second sentence) against
a minute-by-minute oracle.

The meaning being checked, in words: an opening interval `HH:MM-HH:MM` on a local date is open
from the first instant the local clock reads the start time (or later) until the first instant it
reads the end time (or later); holidays are closed local dates. Pauses cut time out as before.

The oracle walks real time one minute at a time and keeps the furthest local wall-clock reading
seen so far (the clock "never goes back": through a fall-back fold it stands still, over a
spring-forward gap it jumps). A minute counts when that reading falls inside an opening interval
of its date, its date is no holiday, and no pause covers the minute. Every calendar boundary, zone
offset, start instant and pause generated here is a whole minute, so the oracle is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.calendar import BusinessHoursCalendar, Pause, active_between, add_active
from domain.policy import WEEKDAYS, CalendarSpec, format_hours

MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
ORACLE_EXAMPLES = 600  # per property; two properties: 1,200 oracle comparisons a run
MAX_SPAN = 10 * 1440  # minutes

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


DST_POINTS = {zone: _dst_points(zone) for zone in ZONES}
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


class Case:
    def __init__(
        self,
        zone: str,
        week: Week,
        holidays: set[date],
        start: datetime,
        span: int,
        pauses: PauseOffsets,
    ) -> None:
        self.zone, self.week, self.holidays = zone, week, holidays
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
            **{day: format_hours(tuple(h)) for day, h in zip(WEEKDAYS, week, strict=True) if h},
        )
        self.calendar = BusinessHoursCalendar(self.spec)

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
    first_day = start.astimezone(ZoneInfo(zone)).date()
    holidays = {
        first_day + timedelta(days=d)
        for d in draw(st.lists(st.integers(-1, span // 1440 + 1), max_size=4))
    }
    pauses = draw(pause_sets(span))
    case = Case(zone, week, holidays, start, span, pauses)
    _label(case)
    return case


def _label(case: Case) -> None:
    """Statistics (pytest --hypothesis-show-statistics): how often the hard parts come up."""
    zone = ZoneInfo(case.zone)
    if any(case.start <= t <= case.end for t in TRANSITIONS[case.zone]):
        event("the span crosses a DST change")
    day, last = case.start.astimezone(zone).date(), case.end.astimezone(zone).date()
    while day <= last:
        for s, e in case.week[day.weekday()]:
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
    pause covers it; stepping through real time while tracking the local wall clock."""
    zone = ZoneInfo(case.zone)
    open_minute = [[False] * 1440 for _ in range(7)]
    for weekday, intervals in enumerate(case.week):
        for s, e in intervals:
            for m in range(s, e):
                open_minute[weekday][m] = True
    furthest: datetime | None = None
    u = case.start - timedelta(days=1)  # a fold is far shorter: the furthest reading is settled
    while u < until:
        wall = u.astimezone(zone).replace(tzinfo=None)
        if furthest is None or wall > furthest:
            furthest = wall
        if (
            u >= case.start
            and furthest.date() not in case.holidays
            and open_minute[furthest.weekday()][furthest.hour * 60 + furthest.minute]
        ):
            paused = any(p.start <= u and (p.end is None or u < p.end) for p in case.pauses)
            yield u, paused
        u += MINUTE


# --- properties ---------------------------------------------------------------------------------


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
@given(zone=st.sampled_from(ZONES), data=st.data())
def test_a_calendar_open_all_week_counts_every_real_second(zone: str, data: st.DataObject) -> None:
    """00:00-24:00 every day: in any zone and across any DST change, business time is real time."""
    spec = CalendarSpec(name="always-open", timezone=zone, **dict.fromkeys(WEEKDAYS, "00:00-24:00"))
    cal = BusinessHoursCalendar(spec)
    start = data.draw(instants(zone)) + data.draw(st.integers(0, 59)) * SECOND
    length = data.draw(st.integers(0, 20 * 86400)) * SECOND
    assert cal.active_between(start, start + length) == length
    assert cal.add_active(start, length) == start + length
