"""Active time (docs/contract.md#escalation-rules, rule 8): pauses cut out of the calendar's
time, checked against oracles.

Pause sets are ordered and non-overlapping (they may touch, may be empty stretches, and the last
may still be running), exactly what a ticket's `pending`/`resolved` stretches look like.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import AlwaysCalendar, Pause, active_between, add_active, calendar_for
from domain.commands import OpenTicket
from domain.decider import Open, decide
from domain.events import DomainEvent
from domain.policy import DEFAULT_POLICY, Policy, parse_policies
from domain.state import evolve, first_response_due
from tests.policy_files import contract_targets

BASE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CAL = AlwaysCalendar()
S = timedelta(seconds=1)


def sec(n: int) -> datetime:
    return BASE + timedelta(seconds=n)


# --- the two oracles ----------------------------------------------------------------------------
# Pauses as integer-second offsets: (start, end) with end None for a pause still running.
Offsets = list[tuple[int, int | None]]


def paused_at(x: int, pauses: Offsets) -> bool:
    return any(p <= x and (q is None or x < q) for p, q in pauses)


def oracle_active(start: int, end: int, pauses: Offsets) -> int:
    """Step through every second of [start, end) and count those outside every pause."""
    return sum(1 for x in range(start, end) if not paused_at(x, pauses))


def oracle_add(start: int, duration: int, pauses: Offsets) -> int | None:
    """Walk forward second by second until `duration` active seconds have passed."""
    counted = 0
    horizon = start + duration + sum(q - p for p, q in pauses if q is not None) + 1
    open_start = pauses[-1][0] if pauses and pauses[-1][1] is None else None
    x = start
    while x <= horizon:
        if open_start is not None and x >= open_start:
            return None
        if not paused_at(x, pauses):
            counted += 1
            if counted == duration:
                return x + 1
        x += 1
    raise AssertionError("oracle horizon too short")


def to_pauses(offsets: Offsets, unit: timedelta = S) -> tuple[Pause, ...]:
    return tuple(Pause(BASE + p * unit, None if q is None else BASE + q * unit) for p, q in offsets)


@st.composite
def pause_sets(draw: st.DrawFn, max_gap: int = 60, max_len: int = 60) -> Offsets:
    """Ordered, non-overlapping pauses; they may touch or be empty; the last may be running."""
    spans = draw(
        st.lists(
            st.tuples(st.integers(0, max_gap), st.integers(0, max_len)), min_size=0, max_size=5
        )
    )
    out: Offsets = []
    cursor = draw(st.integers(0, max_gap))
    for gap, length in spans:
        start = cursor + gap
        out.append((start, start + length))
        cursor = start + length
    if draw(st.booleans()):
        out.append((cursor + draw(st.integers(0, max_gap)), None))
    return out


def span_of(pauses: Offsets) -> int:
    ends = [q if q is not None else p for p, q in pauses]
    return max(ends, default=0)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pauses=pause_sets(), data=st.data())
def test_active_between_matches_second_by_second_oracle(
    pauses: Offsets, data: st.DataObject
) -> None:
    limit = span_of(pauses) + 60
    start = data.draw(st.integers(-30, limit))
    end = data.draw(st.integers(-30, limit + 60))
    got = active_between(sec(start), sec(end), CAL, to_pauses(pauses))
    assert got == S * oracle_active(start, end, pauses)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pauses=pause_sets(), data=st.data())
def test_add_active_matches_second_by_second_oracle(pauses: Offsets, data: st.DataObject) -> None:
    start = data.draw(st.integers(-30, span_of(pauses) + 30))
    duration = data.draw(st.integers(1, 300))
    got = add_active(sec(start), S * duration, CAL, to_pauses(pauses))
    expected = oracle_add(start, duration, pauses)
    assert got == (None if expected is None else sec(expected))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pauses=pause_sets(), data=st.data())
def test_add_active_is_the_earliest_instant_reaching_the_budget(
    pauses: Offsets, data: st.DataObject
) -> None:
    start = data.draw(st.integers(-30, span_of(pauses) + 30))
    d = S * data.draw(st.integers(1, 300))
    ps = to_pauses(pauses)
    t = add_active(sec(start), d, CAL, ps)
    running = pauses[-1] if pauses and pauses[-1][1] is None else None
    if t is None:
        # None exactly when a running pause holds the budget: it cannot be reached before it
        assert running is not None
        assert active_between(sec(start), sec(max(start, running[0])), CAL, ps) < d
        far = sec(span_of(pauses) + 10_000)
        assert active_between(sec(start), far, CAL, ps) < d
    else:
        assert t > sec(start)
        assert active_between(sec(start), t, CAL, ps) == d
        assert active_between(sec(start), t - S, CAL, ps) < d
        if running is not None:
            assert t <= sec(running[0])  # reached before the running pause began


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pauses=pause_sets(max_gap=5000, max_len=5000), data=st.data())
def test_active_between_equals_interval_subtraction_at_millisecond_resolution(
    pauses: Offsets, data: st.DataObject
) -> None:
    """A different oracle: the span minus its overlap with each pause, in milliseconds."""
    ms = timedelta(milliseconds=1)
    limit = span_of(pauses) + 5000
    start = data.draw(st.integers(-3000, limit))
    end = data.draw(st.integers(-3000, limit + 3000))
    overlap = 0
    for p, q in pauses:
        lo, hi = max(p, start), min(end if q is None else q, end)
        overlap += max(0, hi - lo)
    expected = max(0, end - start) - overlap
    got = active_between(BASE + start * ms, BASE + end * ms, CAL, to_pauses(pauses, ms))
    assert got == ms * expected
    # and add_active inverts it wherever the budget is reachable
    if expected > 0:
        t = add_active(BASE + start * ms, ms * expected, CAL, to_pauses(pauses, ms))
        assert t is not None and t <= BASE + end * ms
        assert active_between(BASE + start * ms, t, CAL, to_pauses(pauses, ms)) == ms * expected
        assert active_between(BASE + start * ms, t - ms, CAL, to_pauses(pauses, ms)) < (
            ms * expected
        )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pauses=pause_sets(), data=st.data())
def test_active_between_is_additive(pauses: Offsets, data: st.DataObject) -> None:
    limit = span_of(pauses) + 60
    a, b, c = sorted(data.draw(st.lists(st.integers(-30, limit), min_size=3, max_size=3)))
    ps = to_pauses(pauses)
    whole = active_between(sec(a), sec(c), CAL, ps)
    assert whole == active_between(sec(a), sec(b), CAL, ps) + active_between(
        sec(b), sec(c), CAL, ps
    )


# --- examples -----------------------------------------------------------------------------------


def test_always_calendar_counts_every_second() -> None:
    assert CAL.active_between(sec(0), sec(90)) == timedelta(seconds=90)
    assert CAL.active_between(sec(90), sec(0)) == timedelta(0)
    assert CAL.add_active(sec(0), timedelta(hours=4)) == sec(4 * 3600)


def test_calendar_for_always_and_unknown() -> None:
    assert isinstance(calendar_for(DEFAULT_POLICY), AlwaysCalendar)
    office = Policy.model_validate({**DEFAULT_POLICY.model_dump(), "calendar": "office"})
    with pytest.raises(ValueError, match="office"):
        calendar_for(office)


def test_examples_with_pauses() -> None:
    pauses = (Pause(sec(60), sec(120)), Pause(sec(300)))
    assert active_between(sec(0), sec(600), CAL, pauses) == timedelta(seconds=240)
    assert add_active(sec(0), timedelta(seconds=60), CAL, pauses) == sec(60)
    assert add_active(sec(0), timedelta(seconds=61), CAL, pauses) == sec(121)
    assert add_active(sec(0), timedelta(seconds=240), CAL, pauses) == sec(300)
    assert add_active(sec(0), timedelta(seconds=241), CAL, pauses) is None
    assert add_active(sec(90), timedelta(seconds=10), CAL, pauses) == sec(130)
    assert add_active(sec(400), timedelta(seconds=1), CAL, pauses) is None
    assert add_active(sec(0), timedelta(seconds=5), CAL, ()) == sec(5)


# --- business hours (rule 8, second sentence) ----------------------------------------------------

OFFICE_FILE = (
    """
[policies.office]
tiers = ["L1", "L2", "L3"]
calendar = "office"
"""
    + contract_targets("office")
    + """
[calendars.office]
timezone = "Europe/Berlin"
monday = "09:00-17:00"
tuesday = "09:00-17:00"
wednesday = "09:00-17:00"
thursday = "09:00-17:00"
friday = "09:00-17:00"
holidays = ["2026-12-25"]
"""
)


def _first_response_due_opening_at(opened_at: datetime) -> datetime | None:
    policy = parse_policies(OFFICE_FILE, "office.toml")["office"]
    ticket = OpenTicket.model_validate(
        {"ticket_id": "T-1", "subject": "s", "customer_id": "c", "priority": "urgent"}
    )
    (opened,) = decide(None, Open(ticket=ticket, policy=policy), opened_at)
    state = evolve(
        None,
        DomainEvent(
            ticket_id="T-1",
            seq=1,
            event_id=UUID(int=1),
            event_type="TicketOpened",
            payload=opened.model_dump(mode="json"),
            occurred_at=opened_at,
        ),
    )
    return first_response_due(state)


@pytest.mark.parametrize(
    "opened_at,due",
    [
        # Monday 16:00 Berlin (CET, UTC+1): inside office hours, 15 minutes later
        (datetime(2026, 3, 2, 15, 0, tzinfo=UTC), datetime(2026, 3, 2, 15, 15, tzinfo=UTC)),
        # Monday 16:50 Berlin: 10 minutes on Monday, 5 on Tuesday from 09:00
        (datetime(2026, 3, 2, 15, 50, tzinfo=UTC), datetime(2026, 3, 3, 8, 5, tzinfo=UTC)),
        # Thursday 24 Dec 16:50: Friday is a holiday, the weekend is closed -> Monday 09:05
        (datetime(2026, 12, 24, 15, 50, tzinfo=UTC), datetime(2026, 12, 28, 8, 5, tzinfo=UTC)),
    ],
)
def test_business_hours_calendar_excludes_nights_weekends_and_holidays(
    opened_at: datetime, due: datetime
) -> None:
    assert _first_response_due_opening_at(opened_at) == due
