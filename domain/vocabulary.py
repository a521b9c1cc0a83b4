"""The closed sets of names the contract uses (priorities, statuses, SLA metrics), in one
place below the policy, the rules and the events that all speak of them."""

from __future__ import annotations

from typing import Literal

Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")
Status = Literal["new", "open", "pending", "resolved", "closed"]
STATUSES: tuple[Status, ...] = ("new", "open", "pending", "resolved", "closed")
# v2 adds next_reply (docs/rules.md#next-reply).
Metric = Literal["first_response", "resolution", "next_reply"]
EscalatingMetric = Literal["first_response", "next_reply"]
