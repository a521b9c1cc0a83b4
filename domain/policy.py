"""SLA policies: targets per priority, the tier ladder, and parsing them from TOML text.

A policy is resolved once when a ticket opens and recorded in `TicketOpened`, so a later change
to the policy file never changes the clocks of tickets already open.
"""

from __future__ import annotations

import json
import re
import tomllib
import weakref
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from domain.durations import Duration, format_duration
from domain.errors import PolicyError, describe_validation_error
from domain.rules import Rule, check_rules, elapsed_durations
from domain.vocabulary import PRIORITIES as PRIORITIES  # re-exported, as before
from domain.vocabulary import EscalatingMetric
from domain.vocabulary import Priority as Priority

ALWAYS = "always"
_TIER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    first_response: Duration
    resolution: Duration
    tier_budget: Duration
    # v2: after each customer reply, the next `respond` is due within this (optional).
    next_reply: Duration | None = None

    @field_validator("first_response", "resolution", "tier_budget")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be greater than zero")
        return value

    @model_serializer(mode="wrap")
    def _omit_no_next_reply(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Targets without next_reply record exactly as before it existed."""
        data: dict[str, Any] = handler(self)
        if data.get("next_reply", ...) is None:
            del data["next_reply"]
        return data


# --- business-hours calendars ------------------------------------------------------------------

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Public holidays of `holiday_country` are expanded for these years when the file is loaded and
# recorded as dates, so a replay never depends on the `holidays` package or its version.
HOLIDAY_YEARS = range(2020, 2041)
# A calendar must reach every duration of its policy within this many years (without holidays).
MAX_CALENDAR_YEARS = 50
_INTERVAL = re.compile(r"^(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})$")
Interval = tuple[int, int]  # minutes since local midnight, [start, end), end up to 1440


def _minute(hh: str, mm: str, text: str, *, end: bool) -> int:
    h, m = int(hh), int(mm)
    if end and (h, m) == (24, 0):
        return 1440
    if h > 23 or m > 59:
        raise ValueError(f"{text!r}: {hh}:{mm} is not a time of day (00:00-23:59, or 24:00 as end)")
    return h * 60 + m


def parse_hours(text: str) -> tuple[Interval, ...]:
    """`09:00-12:00,13:00-17:00` -> ((540, 720), (780, 1020)): ordered, non-overlapping."""
    if not text.strip():
        raise ValueError("empty opening hours: leave the day out to close it")
    out: list[Interval] = []
    for part in (p.strip() for p in text.split(",")):
        match = _INTERVAL.match(part)
        if not match:
            raise ValueError(
                f"{part!r} is not an interval HH:MM-HH:MM; write e.g. '09:00-17:00' or "
                "'09:00-12:00,13:00-17:00' ('00:00-24:00' is open all day)"
            )
        start = _minute(match[1], match[2], part, end=False)
        end = _minute(match[3], match[4], part, end=True)
        if start >= end:
            raise ValueError(
                f"{part!r}: start must be before end (a day ends at 24:00; "
                "split hours past midnight over two days)"
            )
        if out and start < out[-1][1]:
            raise ValueError(
                f"{part!r} overlaps or comes before the interval before it; "
                "list intervals in order, without overlaps"
            )
        out.append((start, end))
    return tuple(out)


def format_hours(intervals: tuple[Interval, ...]) -> str:
    """The inverse of parse_hours, normalised: `09:00-12:00,13:00-17:00`."""
    return ",".join(f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in intervals)


def _to_date(value: Any) -> Any:
    """Holidays are ISO dates: `"2026-12-25"` (or a TOML date); never a number or a datetime."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date such as '2026-12-25'") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError(f"{value!r} is not an ISO date such as '2026-12-25'")


HolidayDate = Annotated[date, BeforeValidator(_to_date)]


CLOSED = "closed"
# How an opening or closing at a wall time inside a spring-forward gap becomes an instant:
# "jump" (v1): the first instant the clock reads that time or later, i.e. the jump itself;
# "pep495": the wall time read with the offset before the change (zoneinfo's fold=0), so 02:30
# on a one-hour jump is 03:30 after it. Calendars resolved before "pep495" existed recorded no
# `dst_gap`, which reads as "jump": their tickets keep the rule they opened with.
DstGapRule = Literal["jump", "pep495"]
DST_GAP_RULE: DstGapRule = "pep495"  # what a calendar resolved from a policy file gets today


def parse_date_hours(key: Any, value: Any) -> tuple[date, str]:
    """One `[calendars.<name>.dates]` entry: an ISO date and its hours (normalised) or "closed"."""
    day = _to_date(key)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not opening hours: write e.g. '09:00-13:00' or {CLOSED!r}")
    if value.strip() == CLOSED:
        return day, CLOSED
    if not value.strip():
        raise ValueError(f"empty opening hours: write {CLOSED!r} to close the date")
    return day, format_hours(parse_hours(value))


class CalendarSpec(BaseModel):
    """A business-hours calendar as resolved at load time, recorded inside the policy.

    `holidays` holds every closed date: the file's own list plus, when `holiday_country` is
    given, that country's public holidays for HOLIDAY_YEARS. The weekday hours are normalised
    text (`09:00-12:00,13:00-17:00`); a day that is None is closed. `dates` replaces the weekday
    hours of single local dates (normalised hours, or "closed"). `dst_gap` names the rule for
    wall times inside a spring-forward gap (see DstGapRule).

    Recorded exactly as before `dates` and `dst_gap` existed when they are empty and "jump", so
    a v1 calendar serialises to the bytes its tickets recorded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    timezone: str
    monday: str | None = None
    tuesday: str | None = None
    wednesday: str | None = None
    thursday: str | None = None
    friday: str | None = None
    saturday: str | None = None
    sunday: str | None = None
    holidays: tuple[HolidayDate, ...] = ()
    holiday_country: str | None = None
    dates: dict[date, str] = Field(default_factory=dict)
    dst_gap: DstGapRule = "jump"

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if name == ALWAYS:
            raise ValueError(f"{ALWAYS!r} is reserved for the 24x7 calendar")
        return name

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'"
            ) from None
        return name

    @field_validator(*WEEKDAYS)
    @classmethod
    def _hours(cls, text: str | None) -> str | None:
        return None if text is None else format_hours(parse_hours(text))

    @field_validator("holidays")
    @classmethod
    def _sorted(cls, days: tuple[date, ...]) -> tuple[date, ...]:
        return tuple(sorted(set(days)))

    @field_validator("dates", mode="before")
    @classmethod
    def _dates(cls, table: Any) -> dict[date, str]:
        if not isinstance(table, dict):
            raise ValueError('must be a table of local dates, e.g. "2026-12-24" = "09:00-13:00"')
        out: dict[date, str] = {}
        for key, value in table.items():
            try:
                day, hours = parse_date_hours(key, value)
            except ValueError as exc:
                raise ValueError(f"{key!r}: {exc}") from None
            if day in out:
                raise ValueError(f"{key!r}: {day} is given twice")
            out[day] = hours
        return dict(sorted(out.items()))

    @model_validator(mode="after")
    def _some_open_hours(self) -> CalendarSpec:
        if not any(getattr(self, day) for day in WEEKDAYS):
            # Dates alone cannot carry a calendar: a ticket opened after its last date would
            # never fall due.
            raise ValueError(
                "no open hours on any weekday: give at least one of monday..sunday, "
                'e.g. monday = "09:00-17:00" (dates only change single days of the week)'
            )
        holidays = set(self.holidays)
        for day, hours in self.dates.items():
            if hours != CLOSED and day in holidays:
                raise ValueError(
                    f"dates.{day}: {day} is a holiday, which is closed whatever dates say"
                )
        return self

    @model_serializer(mode="wrap")
    def _omit_v1_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if not data.get("dates", ...):
            data.pop("dates", None)
        if data.get("dst_gap") == "jump":
            del data["dst_gap"]
        return data

    def __hash__(self) -> int:
        # frozen, but `dates` is a dict: hash its items (calendars are cached per spec)
        return hash(
            tuple(
                frozenset(v.items()) if isinstance(v, dict) else v for v in self.__dict__.values()
            )
        )

    def week(self) -> tuple[tuple[Interval, ...], ...]:
        """Opening intervals per weekday, Monday first, in minutes since local midnight."""
        return tuple(parse_hours(text) if (text := getattr(self, day)) else () for day in WEEKDAYS)

    def date_hours(self) -> dict[date, tuple[Interval, ...]]:
        """Opening intervals of the dates whose hours differ from the week's; () when closed."""
        return {
            day: () if hours == CLOSED else parse_hours(hours) for day, hours in self.dates.items()
        }

    def weekly_open(self) -> timedelta:
        """Nominal open time in a week without holidays or DST changes."""
        return timedelta(minutes=sum(e - s for day in self.week() for s, e in day))


Assignment = Literal["manual", "round_robin", "least_loaded"]
DEFAULT_PATH = "default"  # the policy's `tiers`
DEFAULT_ACK_WITHIN = timedelta(minutes=10)


def _check_tier_names(tiers: tuple[str, ...]) -> tuple[str, ...]:
    for tier in tiers:
        if not _TIER_NAME.match(tier):
            raise ValueError(f"tier name {tier!r} must be 1-32 letters, digits, '_' or '-'")
    if len(set(tiers)) != len(tiers):
        raise ValueError(f"tier names must be unique, got {list(tiers)}")
    return tiers


class PathSpec(BaseModel):
    """`[policies.<p>.paths.<name>]`: an ordered list of teams a ticket moves up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: tuple[str, ...] = Field(min_length=1)

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: tuple[str, ...]) -> tuple[str, ...]:
        return _check_tier_names(tiers)


class TeamSettings(BaseModel):
    """`[policies.<p>.teams.<name>]`: how a team takes the tickets that enter it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assignment: Assignment = "manual"
    ack_within: Duration = DEFAULT_ACK_WITHIN
    max_reassign: int = Field(1, ge=0, le=100)
    tier_budget: Duration | None = None

    @property
    def automatic(self) -> bool:
        return self.assignment != "manual"


MANUAL_TEAM = TeamSettings.model_validate({})
DEFAULT_ESCALATE_ON: tuple[EscalatingMetric, ...] = ("first_response",)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tiers: tuple[str, ...] = Field(min_length=1)
    calendar: str = ALWAYS
    # The resolved calendar when `calendar` is not "always": recorded so a replay never needs
    # the policy file (or the holidays package) again.
    calendar_spec: CalendarSpec | None = None
    warn_at: float = Field(0.8, gt=0, lt=1)
    auto_close_after: Duration = timedelta(hours=72)
    renotify_every: Duration = timedelta(hours=1)
    # Reminders of a breached resolution SLA at the top tier stop after this many.
    renotify_max: int = Field(10, ge=0, le=1000)
    targets: dict[Priority, Targets]
    # v2: further paths by name (chosen by category at open) and per-team settings. Both are
    # left out of the recorded policy when empty, so a v1 policy records exactly as before.
    paths: dict[str, PathSpec] = {}
    teams: dict[str, TeamSettings] = {}
    # v2 (docs/rules.md): which breaches escalate, and the policy's rules. Left out of the
    # recorded policy at their defaults, so a policy without them records as before.
    escalate_on: tuple[EscalatingMetric, ...] = DEFAULT_ESCALATE_ON
    rules: tuple[Rule, ...] = ()

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: tuple[str, ...]) -> tuple[str, ...]:
        return _check_tier_names(tiers)

    @field_validator("paths")
    @classmethod
    def _path_names(cls, paths: dict[str, PathSpec]) -> dict[str, PathSpec]:
        for name in paths:
            if name == DEFAULT_PATH:
                raise ValueError(
                    f"{name!r} is the policy's own tiers; give other paths other names"
                )
            if not _TIER_NAME.match(name):
                raise ValueError(f"path name {name!r} must be 1-32 letters, digits, '_' or '-'")
        return paths

    @field_validator("targets")
    @classmethod
    def _all_priorities(cls, targets: dict[str, Targets]) -> dict[str, Targets]:
        missing = [p for p in PRIORITIES if p not in targets]
        if missing:
            raise ValueError(f"missing targets for priorities: {', '.join(missing)}")
        return targets

    @model_validator(mode="after")
    def _calendar_spec_matches(self) -> Policy:
        if self.calendar_spec is not None and self.calendar_spec.name != self.calendar:
            raise ValueError(
                f"calendar_spec is calendar {self.calendar_spec.name!r}, "
                f"but the policy names calendar {self.calendar!r}"
            )
        return self

    @model_validator(mode="after")
    def _teams_on_paths(self) -> Policy:
        known = set(self.all_teams())
        for team in self.teams:
            if team not in known:
                raise ValueError(
                    f"teams.{team}: team {team!r} is on no path of this policy"
                    f" (teams: {', '.join(sorted(known))})"
                )
        return self

    @field_validator("escalate_on")
    @classmethod
    def _escalate_on(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"names a metric twice: {list(metrics)}")
        return metrics

    @model_validator(mode="after")
    def _rules_known(self) -> Policy:
        problems = check_rules(self.rules, teams=self.all_teams(), paths=self.path_names())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_serializer(mode="wrap")
    def _omit_no_calendar(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A 24x7 policy is recorded exactly as before calendars existed (no `calendar_spec`),
        a policy without paths, teams, rules or escalate_on as before they existed."""
        data = handler(self)
        if data.get("calendar_spec", ...) is None:
            del data["calendar_spec"]
        for key in ("paths", "teams"):
            if data.get(key, ...) == {}:
                del data[key]
        if data.get("rules", ...) in ((), []):
            del data["rules"]
        if tuple(data.get("escalate_on", DEFAULT_ESCALATE_ON)) == DEFAULT_ESCALATE_ON:
            data.pop("escalate_on", None)
        return data

    def escalates_on(self, metric: str) -> bool:
        return metric in self.escalate_on

    @property
    def top_tier(self) -> str:
        return self.tiers[-1]

    def path_names(self) -> tuple[str, ...]:
        return (DEFAULT_PATH, *self.paths)

    def path_tiers(self, name: str) -> tuple[str, ...] | None:
        """The teams of path `name` in order; None when the policy has no such path."""
        if name == DEFAULT_PATH:
            return self.tiers
        spec = self.paths.get(name)
        return spec.tiers if spec is not None else None

    def path_for(self, category: str | None) -> str:
        """The path a ticket of `category` takes when it names none."""
        return category if category is not None and category in self.paths else DEFAULT_PATH

    def all_teams(self) -> tuple[str, ...]:
        """Every team on any path, in first-seen order."""
        seen = dict.fromkeys(self.tiers)
        for spec in self.paths.values():
            seen.update(dict.fromkeys(spec.tiers))
        return tuple(seen)

    def team(self, name: str) -> TeamSettings:
        return self.teams.get(name, MANUAL_TEAM)

    def targets_for(self, priority: Priority) -> Targets:
        return self.targets[priority]


# Open tickets that recorded the same policy share one Policy object (and through it one
# CalendarSpec and its holiday dates) instead of a parsed copy each: a policy is frozen and
# compared by value, so which of two equal copies a ticket holds changes nothing it decides.
# Weak values: a policy no open ticket holds any more is dropped.
_SHARED: weakref.WeakValueDictionary[str, Policy] = weakref.WeakValueDictionary()


def shared_policy(policy: Policy) -> Policy:
    """The one object equal to `policy` that holders of this policy share (`policy` itself the
    first time). Keyed by the recorded form and checked by value, so an unequal policy is
    never handed out, whatever the serializer leaves out."""
    key = policy.model_dump_json()
    kept = _SHARED.get(key)
    if kept is not None and kept == policy:
        return kept
    _SHARED[key] = policy
    return policy


# The recorded form (JSON values) of the policies open tickets hold, one dict per distinct
# policy, for the TicketOpened payload each ticket keeps: the policy's text is most of that
# payload (a calendar's holidays especially). Never mutated by anyone; bounded, newest kept.
_RECORDED: dict[str, dict[str, Any]] = {}
RECORDED_POLICIES_KEPT = 64


def shared_recorded_policy(recorded: dict[str, Any]) -> dict[str, Any]:
    """The one dict equal to `recorded` (a policy as recorded) that its holders share."""
    key = json.dumps(recorded, sort_keys=True, separators=(",", ":"))
    kept = _RECORDED.get(key)
    if kept is not None and kept == recorded:
        return kept
    if len(_RECORDED) >= RECORDED_POLICIES_KEPT:
        _RECORDED.pop(next(iter(_RECORDED)))
    _RECORDED[key] = recorded
    return recorded


def _targets(fr: str, res: str, budget: str) -> dict[str, str]:
    return {"first_response": fr, "resolution": res, "tier_budget": budget}


DEFAULT_POLICY = Policy.model_validate(
    {
        "name": "default",
        "tiers": ["L1", "L2", "L3"],
        "targets": {
            "urgent": _targets("15m", "4h", "1h"),
            "high": _targets("1h", "8h", "2h"),
            "normal": _targets("4h", "24h", "8h"),
            "low": _targets("8h", "72h", "24h"),
        },
    }
)

# Seconds instead of hours, so the dev stack shows warnings, breaches and escalations in a minute.
DEMO_POLICY = Policy.model_validate(
    {
        "name": "demo",
        "tiers": ["L1", "L2", "L3"],
        "warn_at": 0.8,
        "auto_close_after": "2m",
        "renotify_every": "30s",
        "targets": {
            "urgent": _targets("20s", "2m", "30s"),
            "high": _targets("30s", "3m", "45s"),
            "normal": _targets("45s", "5m", "1m"),
            "low": _targets("1m", "10m", "2m"),
        },
    }
)

BUILTIN_POLICIES: dict[str, Policy] = {p.name: p for p in (DEFAULT_POLICY, DEMO_POLICY)}


def _country_holidays(country: str) -> list[date]:
    """Public holidays of a country for HOLIDAY_YEARS; KeyError when the country is unknown."""
    import holidays  # only when a file is loaded: never needed to replay a recorded policy

    try:
        found = holidays.country_holidays(country, years=HOLIDAY_YEARS)
    except NotImplementedError:
        raise KeyError(country) from None
    return sorted(found)


def parse_calendar(name: str, table: Any, source: str = "<policy>") -> CalendarSpec:
    """One `[calendars.<name>]` table, resolved (country holidays expanded to dates) with
    today's DST gap rule."""
    where = f"calendars.{name}"
    if name == ALWAYS:
        raise PolicyError(f"{source}: {where}: the name {ALWAYS!r} is reserved for 24x7")
    if not isinstance(table, dict):
        raise PolicyError(f"{source}: {where} must be a table")
    for key in ("name", "dst_gap"):
        if key in table:
            hint = " (the table key is the name)" if key == "name" else ""
            raise PolicyError(f"{source}: {where}.{key}: unknown field{hint}")
    _check_dates(table, where, source)
    try:
        spec = CalendarSpec.model_validate({**table, "name": name, "dst_gap": DST_GAP_RULE})
    except ValidationError as exc:
        raise PolicyError(f"{source}: {describe_validation_error(exc, where)}") from exc
    if spec.holiday_country is not None:
        try:
            public = _country_holidays(spec.holiday_country)
        except KeyError:
            raise PolicyError(
                f"{source}: {where}.holiday_country: unknown country {spec.holiday_country!r}"
                " (use an ISO 3166 code such as 'DE' or 'US')"
            ) from None
        for day, hours in spec.dates.items():
            if hours != CLOSED and day in public:
                raise PolicyError(
                    f'{source}: {where}.dates."{day}": {day} is a public holiday of '
                    f"{spec.holiday_country} (holiday_country), closed whatever dates say"
                )
        spec = spec.model_copy(update={"holidays": tuple(sorted({*spec.holidays, *public}))})
    return spec


def _check_dates(table: dict[str, Any], where: str, source: str) -> None:
    """Each `dates` entry, named by its key: a date, its hours, and not also a holiday."""
    dates = table.get("dates", {})
    if not isinstance(dates, dict):
        raise PolicyError(
            f'{source}: {where}.dates must be a table of local dates, e.g. "2026-12-24" = '
            '"09:00-13:00"'
        )
    listed = table.get("holidays", [])
    holidays = set()
    for value in listed if isinstance(listed, list) else []:
        try:
            holidays.add(_to_date(value))
        except ValueError:
            pass  # the model names the bad holiday
    seen: set[date] = set()
    for key, value in dates.items():
        at = f'{where}.dates."{key}"'
        try:
            day, _ = parse_date_hours(key, value)
        except ValueError as exc:
            raise PolicyError(f"{source}: {at}: {exc}") from None
        if day in seen:
            raise PolicyError(f"{source}: {at}: {day} is given twice")
        if day in holidays:
            raise PolicyError(
                f"{source}: {at}: {day} is also in {where}.holidays; a date is either a "
                "holiday or has its own hours, not both"
            )
        seen.add(day)


def _check_reachable(policy: Policy, spec: CalendarSpec, where: str, source: str) -> None:
    """Every duration of the policy must fit in MAX_CALENDAR_YEARS of the calendar's hours."""
    limit = spec.weekly_open() * 52 * MAX_CALENDAR_YEARS
    durations = {"renotify_every": policy.renotify_every}
    for priority, targets in policy.targets.items():
        for field in ("first_response", "resolution", "tier_budget", "next_reply"):
            if getattr(targets, field) is not None:
                durations[f"targets.{priority}.{field}"] = getattr(targets, field)
    durations.update(elapsed_durations(policy.rules))
    for team, settings in policy.teams.items():
        durations[f"teams.{team}.ack_within"] = settings.ack_within
        if settings.tier_budget is not None:
            durations[f"teams.{team}.tier_budget"] = settings.tier_budget
    for key, value in durations.items():
        if value > limit:
            raise PolicyError(
                f"{source}: {where}.{key}: {format_duration(value)} of business time takes more "
                f"than {MAX_CALENDAR_YEARS} years on calendar {spec.name!r} "
                f"({format_duration(spec.weekly_open())} open a week)"
            )


def parse_rules(raw: Any, where: str, source: str) -> tuple[Rule, ...]:
    """`[[<where>.rules]]`, each validated on its own so an error names the file, the rule
    (position and name) and the key; the checks against the policy follow in Policy."""
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise PolicyError(f"{source}: {where}.rules must be an array of tables [[{where}.rules]]")
    out = []
    for i, table in enumerate(raw):
        name = table.get("name")
        at = f"{where}.rules[{i}]" + (f" ({name})" if isinstance(name, str) else "")
        try:
            out.append(Rule.model_validate(table))
        except ValidationError as exc:
            text = describe_validation_error(exc, at).replace(": Value error, ", ": ")
            raise PolicyError(f"{source}: {text}") from exc
    return tuple(out)


def parse_policies(text: str, source: str = "<policy>") -> dict[str, Policy]:
    """Parse a policy file; the built-in policies stay available unless the file redefines them."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"policies", "calendars"})
    if unknown:
        raise PolicyError(f"{source}: unknown top-level key(s): {', '.join(unknown)}")
    calendar_tables = data.get("calendars", {})
    if not isinstance(calendar_tables, dict):
        raise PolicyError(f"{source}: calendars must be a table of [calendars.<name>] tables")
    calendars = {
        name: parse_calendar(name, table, source) for name, table in calendar_tables.items()
    }
    tables = data.get("policies", {})
    if not isinstance(tables, dict) or not tables:
        raise PolicyError(f"{source}: no [policies.<name>] table found")
    policies = dict(BUILTIN_POLICIES)
    for name, table in tables.items():
        where = f"policies.{name}"
        if not isinstance(table, dict):
            raise PolicyError(f"{source}: {where} must be a table")
        for key in ("name", "calendar_spec"):
            if key in table:
                hint = " (the table key is the name)" if key == "name" else ""
                raise PolicyError(f"{source}: {where}.{key}: unknown field{hint}")
        calendar = table.get("calendar", ALWAYS)
        spec = None
        if isinstance(calendar, str) and calendar != ALWAYS:
            spec = calendars.get(calendar)
            if spec is None:
                defined = ", ".join(repr(n) for n in [ALWAYS, *calendars])
                raise PolicyError(
                    f"{source}: {where}.calendar: unknown calendar {calendar!r}"
                    f" (defined: {defined})"
                )
        rules = parse_rules(table.get("rules", []), where, source)
        table = {k: v for k, v in table.items() if k != "rules"}
        try:
            policy = Policy.model_validate({**table, "name": name, "calendar_spec": spec})
        except ValidationError as exc:
            raise PolicyError(f"{source}: {describe_validation_error(exc, where)}") from exc
        problems = check_rules(rules, teams=policy.all_teams(), paths=policy.path_names())
        if problems:
            raise PolicyError(f"{source}: " + "; ".join(f"{where}.{p}" for p in problems))
        policy = policy.model_copy(update={"rules": rules})  # checked just above
        if spec is not None:
            _check_reachable(policy, spec, where, source)
        policies[name] = policy
    return policies
