"""Ticket text is printed with its control characters made visible, never interpreted
(docs/contract.md#robustness-promises): no terminal escape reaches a terminal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain import events as ev
from reports.printable import visible, visible_lines
from reports.timeline import render_timeline, timeline
from tests.conftest import TicketRig
from tests.test_tickets_cli import ok

FORGED = "Refund\x1b[2K\r\x1b[32mticket T-0: all good\x1b[0m\u202e"


def test_visible_shows_every_control_and_bidi_override() -> None:
    assert visible(FORGED) == "Refund\\e[2K\\r\\e[32mticket T-0: all good\\e[0m\\u202e"
    assert visible("a\nb\tc\x00\x7f\x9b") == "a\\nb\\tc\\x00\\x7f\\x9b"
    assert visible_lines("line 1\nline\x1b 2") == "line 1\nline\\e 2"
    assert visible("plain text, ümlauts, 日本語") == "plain text, ümlauts, 日本語"


def test_a_timeline_prints_forged_text_escaped() -> None:
    opened = ev.DomainEvent(
        ticket_id="T-1",
        seq=1,
        event_id=uuid.uuid4(),
        event_type="CustomerReplied",
        payload={"message": FORGED},
        occurred_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    text = render_timeline("T-1", timeline([opened]), "event store")
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert "Refund\\e[2K" in text and "\\e[32m" in text


@pytest.mark.devserver
async def test_tickets_show_and_history_print_forged_text_escaped(dev_rig: TicketRig) -> None:
    tid = f"ESC-{uuid.uuid4().hex[:8]}"
    await ok(dev_rig, "open", tid, "--subject", FORGED, "--customer", "acme\x1b[31m")
    dev_rig.handles.append(dev_rig.client.get_workflow_handle(f"ticket-{tid}"))
    await ok(dev_rig, "customer-replied", tid, "-m", FORGED)
    for command in ("show", "history"):
        text = await ok(dev_rig, command, tid)
        assert "\x1b" not in text and "\r" not in text, command
        assert "\\e[2K" in text, command
