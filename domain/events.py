"""Domain events: one payload model per event type, and the envelope stored in the event store."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from domain.policy import Policy, Priority, shared_recorded_policy
from domain.tags import TagSet
from domain.vocabulary import Metric as Metric  # re-exported: callers import it from here

Trigger = Literal[
    "first_response_breach",
    "tier_timeout",
    "agent_request",
    "ack_timeout",
    "next_reply_breach",  # v2: only when the policy's escalate_on names next_reply
    "rule",  # v2: an escalation a rule caused (the event names the rule)
]


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]
    # Fields added after events of this type were first stored: left out while unset, so
    # such an event records exactly as it did before they existed.
    omit_unset: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.event_type = cls.__name__

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self.omit_unset:
            if data.get(key, ...) in (None, [], ()):
                data.pop(key, None)
        return data


class TicketOpened(EventPayload):
    subject: str
    customer_id: str
    priority: Priority
    category: str | None = None
    description: str | None = None
    tier: str
    policy: Policy  # resolved once, so later policy edits never move this ticket's clocks
    # v2: the path chosen at open and its teams; absent on v1 tickets (their path is `default`,
    # the recorded policy's tiers).
    path: str | None = None
    tiers: tuple[str, ...] | None = None
    tags: TagSet = ()  # v2
    omit_unset = ("tags",)


class TicketAssigned(EventPayload):
    agent_id: str
    assignee: str
    previous_assignee: str | None = None
    request_id: str | None = None
    # "auto": chosen by the team's assignment (agent_id is then the assignee); v1: "agent".
    trigger: Literal["agent", "auto"] = "agent"


class AssignmentAcknowledged(EventPayload):
    agent_id: str
    request_id: str | None = None


class AssignmentTimedOut(EventPayload):
    assignee: str
    tier: str


class AssignmentUnavailable(EventPayload):
    tier: str
    reason: str


class TicketTransferred(EventPayload):
    from_path: str
    to_path: str
    from_tier: str
    to_tier: str
    reason: str
    agent_id: str | None  # None when a rule transferred it
    request_id: str | None = None
    rule: str | None = None
    omit_unset = ("rule",)


class AgentResponded(EventPayload):
    agent_id: str
    message: str | None = None
    first_response: bool
    request_id: str | None = None


class CustomerAwaited(EventPayload):
    agent_id: str
    message: str | None = None
    request_id: str | None = None


class CustomerReplied(EventPayload):
    message: str | None = None
    reopened: bool = False
    request_id: str | None = None


class SlaWarning(EventPayload):
    metric: Metric
    tier: str
    due_at: datetime


class SlaBreached(EventPayload):
    metric: Metric
    tier: str
    due_at: datetime


class TicketEscalated(EventPayload):
    from_tier: str
    to_tier: str
    trigger: Trigger
    reason: str | None = None
    agent_id: str | None = None
    request_id: str | None = None
    rule: str | None = None
    omit_unset = ("rule",)


class PriorityChanged(EventPayload):
    agent_id: str | None  # None when a rule changed it
    from_priority: Priority
    to_priority: Priority
    reason: str | None = None
    request_id: str | None = None
    rule: str | None = None
    omit_unset = ("rule",)


class TagsChanged(EventPayload):
    """v2: `added` and `removed` are what changed, `tags` the ticket's tags after it."""

    added: TagSet = ()
    removed: TagSet = ()
    tags: TagSet = ()
    agent_id: str | None = None
    request_id: str | None = None
    rule: str | None = None
    omit_unset = ("rule",)


class RuleFired(EventPayload):
    """v2: a rule's conditions held on its trigger; the events it caused follow, each naming
    it. `since` is the moment an elapsed rule counted from (it fires once per moment)."""

    rule: str
    on: str
    since: datetime | None = None
    notify: str | None = None


class TicketResolved(EventPayload):
    agent_id: str
    resolution: str
    request_id: str | None = None


class TicketReopened(EventPayload):
    reason: str | None = None
    agent_id: str | None = None
    request_id: str | None = None


class TicketClosed(EventPayload):
    agent_id: str | None = None
    trigger: Literal["agent", "auto"]
    request_id: str | None = None


class ActionRejected(EventPayload):
    action: str
    reason: str
    agent_id: str | None = None
    request_id: str | None = None
    payload: Any = None  # what was received, as far as it decoded


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.event_type: cls
    for cls in (
        TicketOpened,
        TicketAssigned,
        AgentResponded,
        CustomerAwaited,
        CustomerReplied,
        SlaWarning,
        SlaBreached,
        TicketEscalated,
        PriorityChanged,
        TicketResolved,
        TicketReopened,
        TicketClosed,
        ActionRejected,
        AssignmentAcknowledged,
        AssignmentTimedOut,
        AssignmentUnavailable,
        TicketTransferred,
        TagsChanged,
        RuleFired,
    )
}


class DomainEvent(BaseModel):
    """The envelope, exactly as stored in `ticket_events` (less the store's own columns)."""

    model_config = ConfigDict(frozen=True)

    ticket_id: str
    seq: int = Field(ge=1)
    event_id: UUID
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime

    def data(self) -> EventPayload:
        """The typed payload."""
        model = EVENT_TYPES.get(self.event_type)
        if model is None:
            raise ValueError(f"unknown event type {self.event_type!r} (seq {self.seq})")
        return model.model_validate(self.payload)


def recorded_payload(data: EventPayload) -> dict[str, Any]:
    """`data` as an envelope records it (JSON values). A TicketOpened's policy is the dict that
    every ticket which recorded the same policy shares (the payload stays in memory for the
    `history` query while the ticket is open): equal content, so the record is the same."""
    payload: dict[str, Any] = data.model_dump(mode="json")
    if isinstance(data, TicketOpened):
        payload["policy"] = shared_recorded_policy(payload["policy"])
    return payload
