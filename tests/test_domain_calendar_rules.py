"""Business-hours calendars by example: named regressions with exact instants, the policy file's
`[calendars.*]` tables, the calendar recorded in the policy for replay, and a ticket that escalates
at the calendar's due time (docs/contract.md#escalation-rules rule 8, and #policy-file).

The random comparisons against a minute-by-minute oracle are in test_domain_business_hours.py.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import pytest

import domain.calendar as calendar_module
from domain import events as ev
from domain.calendar import (
    BusinessHoursCalendar,
    CalendarError,
    Pause,
    active_between,
    add_active,
    calendar_for,
)
from domain.commands import OpenTicket, parse_action
from domain.decider import Open, Tick, decide
from domain.errors import PolicyError
from domain.policy import (
    DEFAULT_POLICY,
    HOLIDAY_YEARS,
    WEEKDAYS,
    CalendarSpec,
    Policy,
    parse_policies,
)
from domain.state import (
    TicketState,
    evolve,
    first_response_due,
    next_deadline,
    resolution_due,
    tier_due,
)
from tests.policy_files import contract_targets

H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def calendar(timezone: str = "Europe/Berlin", **fields: Any) -> BusinessHoursCalendar:
    return BusinessHoursCalendar(CalendarSpec(name="test", timezone=timezone, **fields))


WORKWEEK = {day: "09:00-17:00" for day in WEEKDAYS[:5]}
OFFICE = calendar(**WORKWEEK, holidays=["2026-12-25"])


# --- a policy file with calendars ----------------------------------------------------------------


def policy_file(calendar_table: str, name: str = "office", calendar_name: str = "office") -> str:
    return (
        f'[policies.{name}]\ntiers = ["L1", "L2", "L3"]\ncalendar = "{calendar_name}"\n'
        + contract_targets(name)
        + calendar_table
    )


OFFICE_TABLE = """
[calendars.office]
timezone = "Europe/Berlin"
monday = "09:00-17:00"
tuesday = "09:00-17:00"
wednesday = "09:00-17:00"
thursday = "09:00-17:00"
friday = "09:00-17:00"
holidays = ["2026-12-25"]
"""


def office_policy(table: str = OFFICE_TABLE) -> Policy:
    return parse_policies(policy_file(table), "sla.toml")["office"]


# --- a ticket, decided and folded as the workflow does ------------------------------------------


class Ticket:
    def __init__(self, policy: Policy, opened_at: datetime, priority: str = "urgent") -> None:
        self.events: list[ev.DomainEvent] = []
        self.state: TicketState | None = None
        ticket = OpenTicket.model_validate(
            {"ticket_id": "T-1", "subject": "Printer on fire", "customer_id": "acme"}
            | {"priority": priority}
        )
        self.record(decide(None, Open(ticket=ticket, policy=policy), opened_at), opened_at)

    def record(self, payloads: list[ev.EventPayload], now: datetime) -> list[ev.EventPayload]:
        for data in payloads:
            seq = len(self.events) + 1
            event = ev.DomainEvent(
                ticket_id="T-1",
                seq=seq,
                event_id=uuid5(NAMESPACE_URL, f"ticket/T-1/{seq}"),
                event_type=data.event_type,
                payload=json.loads(data.model_dump_json()),  # as the event store holds it
                occurred_at=now,
            )
            self.state = evolve(self.state, event)
            self.events.append(event)
        return payloads

    @property
    def s(self) -> TicketState:
        assert self.state is not None
        return self.state

    def tick(self, now: datetime) -> list[ev.EventPayload]:
        return self.record(decide(self.state, Tick(), now), now)

    def act(self, name: str, now: datetime, **payload: Any) -> list[ev.EventPayload]:
        return self.record(decide(self.state, parse_action(name, payload), now), now)


# --- named regressions -------------------------------------------------------------------------


def test_friday_evening_open_is_due_monday_per_the_calendar() -> None:
    # Friday 6 March 2026, 18:30 in Berlin (CET, UTC+1): the office closed at 17:00
    ticket = Ticket(office_policy(), utc(2026, 3, 6, 17, 30), priority="high")
    assert first_response_due(ticket.s) == utc(2026, 3, 9, 9, 0)  # Monday 10:00 CET
    assert tier_due(ticket.s) == utc(2026, 3, 9, 10, 0)  # Monday 11:00 CET
    assert resolution_due(ticket.s) == utc(2026, 3, 9, 16, 0)  # Monday 17:00 CET, 8h later
    assert OFFICE.active_between(utc(2026, 3, 6, 17, 30), utc(2026, 3, 9, 8, 0)) == timedelta(0)


def test_a_holiday_in_the_middle_is_skipped() -> None:
    # Wednesday 23 Dec 16:00 CET: 1h Wednesday, 8h Thursday, Friday 25th a holiday, weekend
    start = utc(2026, 12, 23, 15, 0)
    assert OFFICE.add_active(start, 10 * H) == utc(2026, 12, 28, 9, 0)  # Monday 10:00 CET
    assert OFFICE.active_between(start, utc(2026, 12, 28, 9, 0)) == 10 * H
    assert OFFICE.active_between(utc(2026, 12, 25), utc(2026, 12, 26)) == timedelta(0)


def test_public_holidays_of_a_country_are_skipped() -> None:
    # Ascension Day, Thursday 14 May 2026, is a public holiday in Germany
    table = OFFICE_TABLE + 'holiday_country = "DE"\n'
    spec = office_policy(table).calendar_spec
    assert spec is not None
    assert date(2026, 5, 14) in spec.holidays and date(2026, 12, 25) in spec.holidays
    assert date(2040, 12, 25) in spec.holidays and date(2026, 5, 13) not in spec.holidays
    start = utc(2026, 5, 13, 14, 0)  # Wednesday 16:00 CEST
    assert BusinessHoursCalendar(spec).add_active(start, 2 * H) == utc(2026, 5, 15, 8, 0)
    assert OFFICE.add_active(start, 2 * H) == utc(2026, 5, 14, 8, 0)  # without the country


def test_spring_forward_gap_berlin_v1_jump_rule() -> None:
    """Sunday 29 March 2026: at 02:00 CET (01:00 UTC) the clocks jump to 03:00 CEST. A calendar
    without `dst_gap` (v1, as tickets opened before the PEP 495 rule recorded it)."""
    saturday_noon = utc(2026, 3, 28, 12, 0)
    early = calendar(sunday="01:00-05:00")  # 01:00 CET = 00:00 UTC .. 05:00 CEST = 03:00 UTC
    assert early.open_intervals(date(2026, 3, 29)) == ((utc(2026, 3, 29, 0), utc(2026, 3, 29, 3)),)
    assert early.active_between(saturday_noon, utc(2026, 3, 30)) == 3 * H  # not 4h
    assert early.add_active(saturday_noon, 1 * H) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert early.add_active(saturday_noon, 2 * H) == utc(2026, 3, 29, 2, 0)  # 04:00 CEST
    # an opening hour inside the gap opens at the first valid instant, 03:00 CEST
    gap = calendar(sunday="02:30-04:00")
    assert gap.open_intervals(date(2026, 3, 29)) == ((utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)),)
    assert gap.add_active(saturday_noon, S) == utc(2026, 3, 29, 1, 0, 1)
    # an interval wholly inside the gap never opens that day; a whole day has 23 hours
    assert calendar(sunday="02:10-02:50").open_intervals(date(2026, 3, 29)) == ()
    assert calendar(sunday="00:00-24:00").active_between(saturday_noon, utc(2026, 3, 30)) == 23 * H


def test_fall_back_hour_berlin() -> None:
    """Sunday 25 October 2026: at 03:00 CEST (01:00 UTC) the clocks go back to 02:00 CET."""
    saturday_noon = utc(2026, 10, 24, 12, 0)
    early = calendar(sunday="01:00-05:00")  # 01:00 CEST = 23:00 UTC .. 05:00 CET = 04:00 UTC
    assert early.open_intervals(date(2026, 10, 25)) == (
        (utc(2026, 10, 24, 23), utc(2026, 10, 25, 4)),
    )
    assert early.active_between(saturday_noon, utc(2026, 10, 26)) == 5 * H  # the real hours
    # three hours after 01:00 CEST the wall clock reads 03:00 CET: the repeated hour counted
    assert early.add_active(saturday_noon, 3 * H) == utc(2026, 10, 25, 2, 0)
    # boundaries inside the repeated hour use its first occurrence (CEST)
    late = calendar(sunday="02:30-04:00")  # 00:30 UTC .. 03:00 UTC
    assert late.active_between(saturday_noon, utc(2026, 10, 26)) == 2 * H + 30 * M
    assert late.add_active(saturday_noon, S) == utc(2026, 10, 25, 0, 30, 1)
    night = calendar(sunday="00:00-02:30")  # 22:00 UTC .. 00:30 UTC: the second 02:xx is closed
    assert night.active_between(saturday_noon, utc(2026, 10, 26)) == 2 * H + 30 * M
    assert night.add_active(saturday_noon, 2 * H + 30 * M) == utc(2026, 10, 25, 0, 30)
    assert calendar(sunday="00:00-24:00").active_between(saturday_noon, utc(2026, 10, 26)) == 25 * H


def test_dst_change_at_local_midnight_santiago() -> None:
    """Chile changes at midnight: 6 Sep 2026 has no 00:00-01:00, 4 Apr 2026 repeats 23:00-24:00."""
    always = calendar("America/Santiago", **dict.fromkeys(WEEKDAYS, "00:00-24:00"))
    assert always.open_intervals(date(2026, 9, 6)) == ((utc(2026, 9, 6, 4), utc(2026, 9, 7, 3)),)
    sunday = calendar("America/Santiago", sunday="00:00-24:00")
    assert sunday.active_between(utc(2026, 9, 5), utc(2026, 9, 8)) == 23 * H
    late = calendar("America/Santiago", saturday="23:30-24:00")  # 02:30 UTC .. 04:00 UTC
    assert late.active_between(utc(2026, 4, 4), utc(2026, 4, 6)) == 90 * M


def test_half_hour_offsets_and_half_hour_dst() -> None:
    kolkata = calendar("Asia/Kolkata", **WORKWEEK)  # IST, UTC+05:30
    assert kolkata.add_active(utc(2026, 3, 2, 3, 30), 8 * H) == utc(2026, 3, 2, 11, 30)
    assert kolkata.add_active(utc(2026, 3, 2, 11, 30), S) == utc(2026, 3, 3, 3, 30, 1)
    # Lord Howe Island moves its clocks by 30 minutes: 4 Oct 2026 02:00 -> 02:30
    lord_howe = calendar("Australia/Lord_Howe", sunday="00:00-24:00")
    assert lord_howe.active_between(utc(2026, 10, 1), utc(2026, 10, 8)) == 23 * H + 30 * M


def test_pause_across_a_weekend() -> None:
    # Friday 6 March 16:00 CET; pending from 16:30 Friday until Tuesday 10:00 CET
    pauses = (Pause(utc(2026, 3, 6, 15, 30), utc(2026, 3, 10, 9, 0)),)
    start = utc(2026, 3, 6, 15, 0)
    # 30 minutes on Friday; Monday's hours are paused; 90 minutes on Tuesday from 10:00
    assert add_active(start, 2 * H, OFFICE, pauses) == utc(2026, 3, 10, 10, 30)
    assert active_between(start, utc(2026, 3, 10, 10, 30), OFFICE, pauses) == 2 * H
    assert add_active(start, 2 * H, OFFICE) == utc(2026, 3, 9, 9, 0)  # unpaused: Mon 10:00
    # a pause still running holds the clock
    assert add_active(start, 2 * H, OFFICE, (Pause(utc(2026, 3, 6, 15, 30)),)) is None


def test_pause_across_a_weekend_moves_the_ticket_due_time() -> None:
    ticket = Ticket(office_policy(), utc(2026, 3, 6, 15, 0), priority="high")  # Fri 16:00 CET
    ticket.act("respond", utc(2026, 3, 6, 15, 10), agent_id="ann")
    assert tier_due(ticket.s) == utc(2026, 3, 9, 9, 0)  # 1h Friday, 1h Monday
    ticket.act("await_customer", utc(2026, 3, 6, 15, 30), agent_id="ann")
    assert tier_due(ticket.s) is None and resolution_due(ticket.s) is None
    ticket.act("customer_replied", utc(2026, 3, 10, 9, 0))  # Tuesday 10:00 CET
    assert tier_due(ticket.s) == utc(2026, 3, 10, 10, 30)
    assert resolution_due(ticket.s) == utc(2026, 3, 11, 8, 30)  # 30m + Tue 7h + Wed 30m


def test_a_24x7_calendar_at_midnight() -> None:
    every_day = calendar(**dict.fromkeys(WEEKDAYS, "00:00-24:00"))
    new_years_eve = utc(2026, 12, 31, 22, 50)  # 23:50 CET
    assert every_day.add_active(new_years_eve, 15 * M) == utc(2026, 12, 31, 23, 5)  # 00:05
    assert every_day.active_between(new_years_eve, utc(2026, 12, 31, 23, 10)) == 20 * M
    midnight = utc(2026, 12, 31, 23, 0)  # 00:00 CET, 1 Jan 2027
    assert every_day.add_active(midnight, S) == midnight + S
    assert every_day.add_active(midnight - S, S) == midnight
    assert every_day.active_between(midnight - S, midnight + S) == 2 * S
    weekdays = calendar("UTC", **dict.fromkeys(WEEKDAYS[:5], "00:00-24:00"))
    friday_late = utc(2026, 3, 6, 23, 59, 30)
    assert weekdays.add_active(friday_late, 60 * S) == utc(2026, 3, 9, 0, 0, 30)


def test_year_end_and_leap_day() -> None:
    office = calendar("UTC", **WORKWEEK)
    assert office.add_active(utc(2027, 12, 31, 16), 2 * H) == utc(2028, 1, 3, 10)  # Fri -> Mon
    assert office.add_active(utc(2028, 2, 28, 16, 30), H) == utc(2028, 2, 29, 9, 30)
    closed_leap_day = calendar("UTC", **WORKWEEK, holidays=["2028-02-29"])
    assert closed_leap_day.add_active(utc(2028, 2, 28, 16, 30), H) == utc(2028, 3, 1, 9, 30)


def test_long_budgets_step_by_day_not_by_minute() -> None:
    """add_active walks open intervals day by day: the longest budget a policy may have (3650d)
    on a 40h week lands 42 years later, computed exactly and fast."""
    office = calendar("Europe/Berlin", **WORKWEEK)
    start = utc(2026, 1, 5, 8)  # Monday 09:00 CET
    due = office.add_active(start, 365 * 8 * H)  # 365 working days
    assert office.active_between(start, due) == 365 * 8 * H
    assert office.active_between(start, due - S) < 365 * 8 * H
    far = office.add_active(start, timedelta(days=3650))
    assert far == utc(2067, 12, 23, 16)  # 2190 weeks of 40h: Friday 17:00 CET
    assert office.active_between(start, far) == timedelta(days=3650)


def test_holidays_covering_the_search_horizon_raise_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Never an endless loop: if holidays close every open day, add_active gives up clearly."""
    monkeypatch.setattr(calendar_module, "SEARCH_DAYS", 1000)
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(1100)]
    closed = calendar("UTC", monday="09:00-10:00", holidays=days)
    with pytest.raises(CalendarError, match="calendar 'test'"):
        closed.add_active(utc(2026, 1, 1), H)


# --- a ticket escalates at the calendar's due time, not before ----------------------------------


def test_a_business_hours_ticket_escalates_at_the_calendars_due_time_not_before() -> None:
    # Friday 6 March 16:50 CET, urgent: 15m first response, warning at 80% = 12m
    opened = utc(2026, 3, 6, 15, 50)
    ticket = Ticket(office_policy(), opened)
    due = utc(2026, 3, 9, 8, 5)  # 10m Friday + 5m Monday from 09:00 CET
    warn = utc(2026, 3, 9, 8, 2)
    assert first_response_due(ticket.s) == due
    assert next_deadline(ticket.s) == warn
    # 15 minutes of wall time later, on Friday evening and over the weekend: nothing is due
    for now in (opened + 15 * M, utc(2026, 3, 7, 12), utc(2026, 3, 9, 8, 0), warn - S):
        assert ticket.tick(now) == []
    assert ticket.tick(warn) == [ev.SlaWarning(metric="first_response", tier="L1", due_at=due)]
    assert next_deadline(ticket.s) == due
    assert ticket.tick(due - S) == []
    decided = ticket.tick(due)
    assert [type(e) for e in decided] == [ev.SlaBreached, ev.TicketEscalated]
    assert decided[0] == ev.SlaBreached(metric="first_response", tier="L1", due_at=due)
    assert ticket.s.tier == "L2"
    # the L2 tier budget (1h) runs in business hours too: Monday 10:05 CET
    assert tier_due(ticket.s) == utc(2026, 3, 9, 9, 5)
    # replay from the stored events gives the same clocks
    replayed: TicketState | None = None
    for event in ticket.events:
        replayed = evolve(replayed, ev.DomainEvent.model_validate_json(event.model_dump_json()))
    assert replayed == ticket.s


# --- the policy file: [calendars.*] --------------------------------------------------------------


def test_a_policy_records_its_resolved_calendar() -> None:
    policy = office_policy()
    assert policy.calendar == "office"
    spec = policy.calendar_spec
    assert spec == CalendarSpec.model_validate(
        {
            "name": "office",
            "timezone": "Europe/Berlin",
            **WORKWEEK,
            "holidays": ["2026-12-25"],
            "dst_gap": "pep495",
        }
    )
    cal = calendar_for(policy)
    assert isinstance(cal, BusinessHoursCalendar) and cal.spec == spec
    assert calendar_for(policy) is cal  # built once per calendar
    assert Policy.model_validate_json(policy.model_dump_json()) == policy


def test_several_intervals_a_day_and_whole_days() -> None:
    table = OFFICE_TABLE.replace(
        'monday = "09:00-17:00"', 'monday = "09:00-12:00, 13:00-17:00"'
    ).replace("holidays", 'saturday = "00:00-24:00"\nholidays')
    spec = office_policy(table).calendar_spec
    assert spec is not None
    assert spec.monday == "09:00-12:00,13:00-17:00"  # normalised
    assert spec.saturday == "00:00-24:00" and spec.sunday is None
    cal = BusinessHoursCalendar(spec)
    monday = utc(2026, 3, 2, 8)  # 09:00 CET
    assert cal.add_active(monday, 3 * H) == utc(2026, 3, 2, 11)  # 12:00 CET
    assert cal.add_active(monday, 3 * H + S) == utc(2026, 3, 2, 12, 0, 1)  # 13:00:01 CET
    assert cal.active_between(utc(2026, 3, 6, 23), utc(2026, 3, 7, 23)) == 24 * H  # Saturday


def test_country_holidays_are_recorded_so_a_replay_needs_neither_file_nor_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = office_policy(OFFICE_TABLE + 'holiday_country = "DE"\n')
    spec = policy.calendar_spec
    assert spec is not None and spec.holiday_country == "DE"
    years = {d.year for d in spec.holidays}
    assert years == set(HOLIDAY_YEARS)
    recorded = json.loads(policy.model_dump_json())
    assert "2040-12-25" in recorded["calendar_spec"]["holidays"]
    # without the holidays package, the recorded policy still reads back and computes the same
    monkeypatch.setitem(sys.modules, "holidays", None)
    again = Policy.model_validate_json(json.dumps(recorded))
    assert again == policy
    start = utc(2026, 5, 13, 14, 0)
    assert calendar_for(again).add_active(start, 2 * H) == utc(2026, 5, 15, 8, 0)


def test_contract_example_calendar_parses() -> None:
    table = """
[calendars.office]
timezone = "Europe/Berlin"
monday = "09:00-17:00"       # tuesday..sunday alike; a missing day is closed
holidays = ["2026-12-25"]
holiday_country = "DE"       # optional: public holidays of that country
"""
    spec = office_policy(table).calendar_spec
    assert spec is not None and spec.monday == "09:00-17:00" and spec.tuesday is None


def test_builtin_policies_have_no_calendar_and_unchanged_json() -> None:
    dumped = json.loads(DEFAULT_POLICY.model_dump_json())
    assert "calendar_spec" not in dumped and dumped["calendar"] == "always"
    assert DEFAULT_POLICY.calendar_spec is None
    assert Policy.model_validate_json(DEFAULT_POLICY.model_dump_json()) == DEFAULT_POLICY
    # an event recorded with an explicit null reads back the same
    assert Policy.model_validate({**dumped, "calendar_spec": None}) == DEFAULT_POLICY


def _error(text: str) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policies(text, "sla.toml")
    message = str(info.value)
    assert message.startswith("sla.toml: ")
    return message


def test_a_calendar_with_no_open_hours_is_rejected_at_load() -> None:
    message = _error(policy_file('[calendars.office]\ntimezone = "UTC"\nholidays = []\n'))
    assert "calendars.office" in message and "no open hours" in message


def test_an_unknown_timezone_is_rejected_naming_the_key() -> None:
    message = _error(policy_file(OFFICE_TABLE.replace("Europe/Berlin", "Europe/Berln")))
    assert "calendars.office.timezone" in message and "'Europe/Berln'" in message


@pytest.mark.parametrize("bad", ["", "../etc/passwd", "/etc/localtime", "utc"])
def test_malformed_timezones_are_rejected_naming_the_key(bad: str) -> None:
    message = _error(policy_file(OFFICE_TABLE.replace('"Europe/Berlin"', json.dumps(bad))))
    assert "calendars.office.timezone" in message


def test_an_unknown_holiday_country_is_rejected_naming_the_key() -> None:
    message = _error(policy_file(OFFICE_TABLE + 'holiday_country = "XX"\n'))
    assert "calendars.office.holiday_country" in message and "'XX'" in message


@pytest.mark.parametrize(
    "hours",
    [
        "",
        "9:00-17:00",
        "09:00",
        "09:00-17:00;18:00-19:00",
        "17:00-09:00",
        "09:00-09:00",
        "09:00-12:00,11:00-13:00",
        "13:00-17:00,09:00-12:00",
        "09:00-25:00",
        "24:00-24:00",
        "09:60-17:00",
        "22:00-06:00",
    ],
)
def test_bad_opening_hours_are_rejected_naming_the_key(hours: str) -> None:
    table = OFFICE_TABLE.replace('tuesday = "09:00-17:00"', f"tuesday = {json.dumps(hours)}")
    assert "calendars.office.tuesday" in _error(policy_file(table))


@pytest.mark.parametrize("value", ['["2026-13-01"]', "[20261225]", '"2026-12-25"'])
def test_bad_holidays_are_rejected_naming_the_key(value: str) -> None:
    table = OFFICE_TABLE.replace('holidays = ["2026-12-25"]', f"holidays = {value}")
    assert "calendars.office.holidays" in _error(policy_file(table))


def test_toml_dates_are_accepted_as_holidays() -> None:
    table = OFFICE_TABLE.replace('["2026-12-25"]', "[2026-12-24, 2026-12-25]")
    spec = office_policy(table).calendar_spec
    assert spec is not None and spec.holidays == (date(2026, 12, 24), date(2026, 12, 25))


def test_unknown_fields_in_a_calendar_are_named() -> None:
    message = _error(policy_file(OFFICE_TABLE + 'tuesdy = "09:00-17:00"\n'))
    assert "calendars.office.tuesdy: unknown field" in message
    message = _error(policy_file(OFFICE_TABLE + 'name = "x"\n'))
    assert "calendars.office.name: unknown field" in message


def test_a_calendar_cannot_be_named_always() -> None:
    message = _error(policy_file(OFFICE_TABLE.replace("calendars.office", "calendars.always")))
    assert "calendars.always" in message and "reserved" in message


def test_a_policy_naming_an_undefined_calendar_lists_the_defined_ones() -> None:
    message = _error(policy_file(OFFICE_TABLE, calendar_name="ofice"))
    assert "policies.office.calendar" in message and "'ofice'" in message
    assert "'always'" in message and "'office'" in message


def test_a_policy_table_cannot_carry_a_calendar_spec() -> None:
    text = policy_file(OFFICE_TABLE).replace(
        'calendar = "office"', 'calendar = "office"\ncalendar_spec = "x"'
    )
    assert "policies.office.calendar_spec: unknown field" in _error(text)


def test_a_calendar_too_sparse_for_the_policy_is_rejected_naming_the_target() -> None:
    # one minute a week: the low resolution target of 72h would take 83 years
    table = '[calendars.office]\ntimezone = "UTC"\nmonday = "09:00-09:01"\n'
    message = _error(policy_file(table))
    assert "policies.office.targets.low.resolution" in message and "office" in message


def test_the_recorded_calendar_must_match_the_policys_calendar_name() -> None:
    spec = CalendarSpec(name="office", timezone="UTC", monday="09:00-17:00")
    with pytest.raises(ValueError, match="calendar_spec"):
        Policy.model_validate({**DEFAULT_POLICY.model_dump(), "calendar_spec": spec})
    with pytest.raises(ValueError, match="calendar_spec"):
        Policy.model_validate(
            {**DEFAULT_POLICY.model_dump(), "calendar": "shop", "calendar_spec": spec}
        )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        OFFICE.add_active(datetime(2026, 3, 2, 9), H)
    with pytest.raises(ValueError, match="aware"):
        OFFICE.active_between(utc(2026, 3, 2, 9), datetime(2026, 3, 3, 9))
