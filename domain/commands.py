"""What callers send: the input that opens a ticket and the payload of every action.

These are the public contract (docs/contract.md#openticket, #actions): snake_case keys, unknown
keys rejected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
    model_validator,
)

from domain.errors import ActionRejected, InvalidTicket, describe_validation_error
from domain.policy import Priority
from domain.tags import MAX_TAGS, TagSet

TICKET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _no_nul(value: str) -> str:
    # PostgreSQL's jsonb cannot hold U+0000: refused here, it never reaches the event store.
    if "\x00" in value:
        raise ValueError("NUL characters (\\u0000) are not allowed")
    return value


# Every text field of the contract: no NUL character.
Text = Annotated[str, AfterValidator(_no_nul)]
AgentId = Annotated[Text, StringConstraints(min_length=1, max_length=128)]
Message = Annotated[Text, StringConstraints(max_length=20_000)]


class OpenTicket(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket_id: Text = Field(pattern=TICKET_ID_PATTERN)
    subject: Text = Field(min_length=1, max_length=300)
    customer_id: Text = Field(min_length=1, max_length=128)
    priority: Priority = "normal"
    category: Text | None = Field(None, max_length=128)
    description: Text | None = Field(None, max_length=20_000)
    policy: Text = Field("default", min_length=1, max_length=128)
    # v2: a path of the policy; without it the category's path, else `default`.
    path: Text | None = Field(None, min_length=1, max_length=32)
    # v2: at most MAX_TAGS, each `^[a-z0-9][a-z0-9_-]{0,39}$`; kept sorted, each once.
    tags: TagSet = Field((), max_length=MAX_TAGS)

    @model_serializer(mode="wrap")
    def _omit_no_path(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without a path or tags the input is exactly v1's, so a worker of v1 still accepts it."""
        data: dict[str, Any] = handler(self)
        if data.get("path", ...) is None:
            del data["path"]
        if not data.get("tags", ()):
            data.pop("tags", None)
        return data


class Action(BaseModel):
    """Base of every action payload; `request_id` makes an action idempotent per ticket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Text | None = Field(None, min_length=1, max_length=128)


class Assign(Action):
    agent_id: AgentId
    assignee: AgentId | None = None


class Respond(Action):
    agent_id: AgentId
    message: Message | None = None


class RequestEscalation(Action):
    agent_id: AgentId
    reason: Text = Field(min_length=1, max_length=2000)
    to_tier: Text | None = Field(None, min_length=1, max_length=32)


class AwaitCustomer(Action):
    agent_id: AgentId
    message: Message | None = None


class CustomerReplied(Action):
    message: Message | None = None


class ChangePriority(Action):
    agent_id: AgentId
    priority: Priority
    reason: Text | None = Field(None, max_length=2000)


class Resolve(Action):
    agent_id: AgentId
    resolution: Text = Field(min_length=1, max_length=20_000)


class Reopen(Action):
    reason: Text | None = Field(None, max_length=2000)
    agent_id: AgentId | None = None


class Close(Action):
    agent_id: AgentId


class Transfer(Action):
    """Functional escalation: move the ticket to another path of its policy."""

    agent_id: AgentId
    path: Text = Field(min_length=1, max_length=32)
    to_tier: Text | None = Field(None, min_length=1, max_length=32)
    reason: Text = Field(min_length=1, max_length=2000)


class Acknowledge(Action):
    agent_id: AgentId


class Tag(Action):
    """v2: add and remove tags; refused when nothing would change."""

    agent_id: AgentId
    add: TagSet = Field((), max_length=MAX_TAGS)
    remove: TagSet = Field((), max_length=MAX_TAGS)

    @model_validator(mode="after")
    def _something(self) -> Tag:
        if not self.add and not self.remove:
            raise ValueError("give add, remove or both")
        both = set(self.add) & set(self.remove)
        if both:
            raise ValueError(f"tags {', '.join(sorted(both))} are both added and removed")
        return self


# Action name (signal and update name) -> payload model.
ACTIONS: dict[str, type[Action]] = {
    "assign": Assign,
    "respond": Respond,
    "request_escalation": RequestEscalation,
    "await_customer": AwaitCustomer,
    "customer_replied": CustomerReplied,
    "change_priority": ChangePriority,
    "resolve": Resolve,
    "reopen": Reopen,
    "close": Close,
    "transfer": Transfer,
    "acknowledge": Acknowledge,
    "tag": Tag,
}


def request_use(action: Action) -> str:
    """What a `request_id` is bound to by its first use: `action|agent|digest` (the digest of
    the payload less the request id, canonical JSON), so the same id sent with another action,
    agent or payload is told apart from a retry (docs/contract.md#robustness-promises)."""
    name = next(n for n, model in ACTIONS.items() if type(action) is model)
    body = action.model_dump(mode="json", exclude_none=True, exclude={"request_id"})
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    agent = getattr(action, "agent_id", None) or "-"
    return f"{name}|{agent}|{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def parse_open_ticket(raw: Any) -> OpenTicket:
    """Validate a raw start input; InvalidTicket names every bad field."""
    if isinstance(raw, OpenTicket):
        return raw
    if not isinstance(raw, dict):
        raise InvalidTicket(f"input must be a JSON object, got {type(raw).__name__}")
    try:
        return OpenTicket.model_validate(raw)
    except ValidationError as exc:
        raise InvalidTicket(describe_validation_error(exc)) from exc


# Where a payload enters (docs/contract.md#robustness-promises): deeper than this is refused, so
# nothing recorded from it is too deep to store and read back (JSON parsers stop near 200).
MAX_PAYLOAD_DEPTH = 32


def payload_depth(value: Any, limit: int = MAX_PAYLOAD_DEPTH) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), counted without recursion
    and only up to `limit` + 1: enough to say "too deep" for a value of any depth."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            stack.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_action(name: str, raw: Any) -> Action:
    """Validate a raw action payload; ActionRejected names the action and every bad field."""
    model = ACTIONS.get(name)
    if model is None:
        raise ActionRejected(f"unknown action {name!r}; known: {', '.join(ACTIONS)}")
    if isinstance(raw, model):
        return raw
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ActionRejected(f"{name}: payload must be a JSON object, got {type(raw).__name__}")
    if payload_depth(raw) > MAX_PAYLOAD_DEPTH:
        raise ActionRejected(f"{name}: payload nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ActionRejected(f"{name}: {describe_validation_error(exc)}") from exc
