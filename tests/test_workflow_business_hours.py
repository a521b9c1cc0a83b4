"""SLA clocks on a business-hours calendar, through the real workflow (issue 3).

The time-skipping server starts at today's wall time, so each test first skips to the local
moment it needs (a Friday evening in Berlin) and then checks due times to the second.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from domain.policy import Policy, parse_policies
from tests.conftest import TicketRig
from tests.policy_files import contract_targets
from worker import build_worker

pytestmark = pytest.mark.asyncio
BERLIN = ZoneInfo("Europe/Berlin")
converter = DataConverter.default.payload_converter

OFFICE_TOML = """
[calendars.office]
timezone = "Europe/Berlin"
monday = "09:00-17:00"
tuesday = "09:00-17:00"
wednesday = "09:00-17:00"
thursday = "09:00-17:00"
friday = "09:00-17:00"

[policies.office]
tiers = ["L1", "L2", "L3"]
calendar = "office"
renotify_every = "1h"
renotify_max = 2
""" + contract_targets("office")
POLICIES = parse_policies(OFFICE_TOML, "office.toml")


def next_half_day(now: datetime) -> date:
    """The Thursday after the next Wednesday in Berlin: a half day whose eve is still ahead."""
    local = now.astimezone(BERLIN)
    return local.date() + timedelta(days=((2 - local.weekday()) % 7 or 7) + 1)


def half_day_policies(now: datetime) -> dict[str, Policy]:
    """The office policy with that Thursday open 09:00-13:00 only (docs/calendars.md, date
    overrides): the server's clock decides the date, so the policy is made at the test's start."""
    table = f'\n[calendars.office.dates]\n"{next_half_day(now)}" = "09:00-13:00"\n'
    return parse_policies(OFFICE_TOML + table, "office.toml")


async def skip_to_half_day_eve(rig: TicketRig) -> datetime:
    """Skip the server's clock to 16:00 Berlin on the eve of next_half_day; return that instant."""
    now = await rig.env.get_current_time()
    eve = datetime.combine(next_half_day(now) - timedelta(days=1), time(16), BERLIN)
    await rig.sleep(eve - now)
    return eve


@pytest_asyncio.fixture(loop_scope="session")
async def office(time_env: WorkflowEnvironment, db_pool: Any) -> AsyncIterator[TicketRig]:
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(time_env.client, task_queue, db_pool, POLICIES):
        rig = TicketRig(time_env, db_pool, task_queue)
        yield rig
        await rig.finish()


async def skip_to_friday_evening(rig: TicketRig) -> datetime:
    """Skip the server's clock to the next Friday 16:50 in Berlin; return that instant."""
    now = (await rig.env.get_current_time()).astimezone(BERLIN)
    days = (4 - now.weekday()) % 7 or 7
    target = (now + timedelta(days=days)).replace(hour=16, minute=50, second=0, microsecond=0)
    await rig.sleep(target - now)
    return target


def instant(view: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(view["sla"][key]).astimezone(BERLIN)


async def test_friday_evening_ticket_escalates_monday_at_the_calendar_due_time(
    office: TicketRig,
) -> None:
    friday = await skip_to_friday_evening(office)
    h = await office.open(priority="urgent", policy="office")
    view = await h.query("state")
    monday_0905 = (friday + timedelta(days=3)).replace(hour=9, minute=5)
    # 10 minutes on Friday, 5 on Monday morning; the weekend does not count.
    assert abs(instant(view, "first_response_due") - monday_0905) < timedelta(seconds=1)
    await office.sleep(monday_0905 - friday - timedelta(seconds=10))
    view = await h.query("state")
    assert view["tier"] == "L1" and view["sla"]["breaches"] == []
    await office.sleep(timedelta(seconds=20))
    view = await h.query("state")
    assert view["tier"] == "L2"
    breach = view["sla"]["breaches"][0]
    assert breach["metric"] == "first_response"
    assert abs(datetime.fromisoformat(breach["due_at"]) - monday_0905) < timedelta(seconds=1)


async def test_top_tier_reminders_stop_at_renotify_max(office: TicketRig) -> None:
    await skip_to_friday_evening(office)
    h = await office.open(priority="urgent", policy="office")
    await h.execute_update("respond", {"agent_id": "amy"})
    await h.execute_update(
        "request_escalation", {"agent_id": "amy", "reason": "x", "to_tier": "L3"}
    )
    await office.sleep(timedelta(days=10))  # resolution breach Monday, then reminders
    kinds = await office.notification_kinds(office.last_id)
    assert kinds.count("breach") == 1
    assert kinds.count("breach_reminder") == 2  # renotify_max


async def test_a_ticket_opened_the_afternoon_before_a_half_day_is_due_by_its_hours(
    time_env: WorkflowEnvironment, db_pool: Any
) -> None:
    policies = half_day_policies(await time_env.get_current_time())
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(time_env.client, task_queue, db_pool, policies):
        rig = TicketRig(time_env, db_pool, task_queue)
        try:
            wednesday = await skip_to_half_day_eve(rig)
            h = await rig.open(priority="high", policy="office")  # 8h resolution
            await h.execute_update("respond", {"agent_id": "amy"})
            view = await h.query("state")
            # 1h on Wednesday, 4h on the half day (09:00-13:00), 3h on Friday
            friday_noon = (wednesday + timedelta(days=2)).replace(hour=12)
            assert abs(instant(view, "resolution_due") - friday_noon) < timedelta(seconds=1)
            # Thursday 16:30: past the due time it would have had without the half day
            await rig.sleep(timedelta(hours=24, minutes=30))
            view = await h.query("state")
            assert [b["metric"] for b in view["sla"]["breaches"]] == []
            await rig.sleep(friday_noon - wednesday - timedelta(hours=24, minutes=30, seconds=10))
            view = await h.query("state")
            assert "resolution" not in [b["metric"] for b in view["sla"]["breaches"]]
            await rig.sleep(timedelta(seconds=20))
            view = await h.query("state")
            (breach,) = [b for b in view["sla"]["breaches"] if b["metric"] == "resolution"]
            assert abs(datetime.fromisoformat(breach["due_at"]) - friday_noon) < timedelta(
                seconds=1
            )
            # the recorded calendar carries the date, and today's gap rule
            (opened, *_) = await h.query("history")
            spec = opened["payload"]["policy"]["calendar_spec"]
            assert spec["dates"] == {str(wednesday.date() + timedelta(days=1)): "09:00-13:00"}
            assert spec["dst_gap"] == "pep495"
        finally:
            await rig.finish()


async def test_timer_summary_names_the_due_time_in_the_calendar_zone(
    dev_env: WorkflowEnvironment, db_pool: Any
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(dev_env.client, task_queue, db_pool, POLICIES):
        rig = TicketRig(dev_env, db_pool, task_queue)
        h = await rig.open(priority="low", policy="office")
        view = await h.query("state")
        due = instant(view, "first_response_due")
        summaries = []
        for _ in range(100):
            summaries = [
                converter.from_payload(e.user_metadata.summary, str)
                async for e in h.fetch_history_events()
                if e.HasField("timer_started_event_attributes") and e.HasField("user_metadata")
            ]
            if summaries:
                break
            await asyncio.sleep(0.02)
        await rig.finish()
    assert summaries, "no timer was started"
    assert summaries[0].startswith("first response warning · L1 · due ")
    assert re.fullmatch(
        r"first response warning · L1 · due \d{4}-\d\d-\d\d \d\d:\d\d:\d\d Europe/Berlin",
        summaries[0],
    )
    # The warning falls at 80% of the first-response target: before the due time, in hours.
    stamp = summaries[0].removeprefix("first response warning · L1 · due ")
    warn_at = datetime.strptime(stamp.removesuffix(" Europe/Berlin"), "%Y-%m-%d %H:%M:%S")
    assert warn_at.replace(tzinfo=BERLIN) < due
    assert 9 <= warn_at.hour < 17


async def test_timer_summary_reads_date_hours_and_names_the_calendar_zone(
    dev_env: WorkflowEnvironment, db_pool: Any
) -> None:
    """Every date around today open all day, the week only Monday mornings: the summary's due
    time comes from the date hours (80% of 8h after the open), written in Berlin time."""
    today = (await dev_env.get_current_time()).astimezone(BERLIN).date()
    dates = "".join(f'"{today + timedelta(days=d)}" = "00:00-24:00"\n' for d in range(-1, 3))
    policies = parse_policies(
        '[calendars.office]\ntimezone = "Europe/Berlin"\nmonday = "09:00-12:00"\n'
        f"\n[calendars.office.dates]\n{dates}"
        '\n[policies.office]\ntiers = ["L1", "L2", "L3"]\ncalendar = "office"\n'
        + contract_targets("office"),
        "office.toml",
    )
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(dev_env.client, task_queue, db_pool, policies):
        rig = TicketRig(dev_env, db_pool, task_queue)
        h = await rig.open(priority="low", policy="office")
        view = await h.query("state")
        summaries: list[str] = []
        for _ in range(100):
            summaries = [
                converter.from_payload(e.user_metadata.summary, str)
                async for e in h.fetch_history_events()
                if e.HasField("timer_started_event_attributes") and e.HasField("user_metadata")
            ]
            if summaries:
                break
            await asyncio.sleep(0.02)
        metadata = await h.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        await rig.finish()
    opened = datetime.fromisoformat(view["opened_at"])
    warn_at = opened + timedelta(hours=6, minutes=24)
    assert summaries[:1] == [
        f"first response warning · L1 · due {warn_at.astimezone(BERLIN):%Y-%m-%d %H:%M:%S}"
        " Europe/Berlin"
    ]
    # the workflow's current details (the UI's "current details") name the nearest due time
    due = opened + timedelta(hours=8)
    assert (
        f" · next due {due.astimezone(BERLIN):%Y-%m-%d %H:%M:%S} Europe/Berlin · "
        in metadata.current_details  # then the path and the acknowledgement (teams)
    )
