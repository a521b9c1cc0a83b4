"""Rules of a policy (docs/rules.md#rules): what they say, and the checks a policy file's rules
must pass at worker start. What they do is domain/rule_engine.py.

A rule is recorded inside the policy in `TicketOpened`, so an edit of the file never changes
the rules of a ticket already open; a policy without rules records exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from domain.durations import Duration
from domain.tags import TagSet
from domain.vocabulary import Metric, Priority, Status

if TYPE_CHECKING:  # the state is built on policies, which hold rules
    from domain.state import TicketState

RuleOn = Literal[
    "opened",
    "priority_changed",
    "customer_replied",
    "tags_changed",
    "sla_warning",
    "sla_breached",
    "escalated",
    "transferred",
    "elapsed",
]
Since = Literal["opened", "customer_replied", "agent_responded", "tier_entered"]
NEXT = "next"  # escalate_to: the next tier of the ticket's path
RULE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
_KIND = re.compile(KIND_PATTERN)


def _one_or_many(value: Any) -> Any:
    """A condition on one value may be written without the list: `priority = "urgent"`."""
    return (value,) if isinstance(value, str) else value


Name = Annotated[str, Field(min_length=1, max_length=128)]
Names = Annotated[tuple[Name, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
Priorities = Annotated[tuple[Priority, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
Statuses = Annotated[tuple[Status, ...], BeforeValidator(_one_or_many), Field(min_length=1)]
Metrics = Annotated[tuple[Metric, ...], BeforeValidator(_one_or_many), Field(min_length=1)]


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


class Conditions(BaseModel):
    """`if`: every key given must match; a list matches when the ticket's value is in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    priority: Priorities | None = None
    category: Names | None = None
    customer: Names | None = None
    tags_any: TagSet | None = None
    tags_all: TagSet | None = None
    tier: Names | None = None
    path: Names | None = None
    status: Statuses | None = None
    metric: Metrics | None = None

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_none(handler(self))


class Effects(BaseModel):
    """`then`: one or more effects, applied in this order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    escalate_to: str | None = Field(None, min_length=1, max_length=32)
    set_priority: Priority | None = None
    add_tags: TagSet | None = None
    remove_tags: TagSet | None = None
    transfer_to: str | None = Field(None, min_length=1, max_length=32)
    notify: str | None = Field(None, pattern=KIND_PATTERN)

    @model_validator(mode="after")
    def _something(self) -> Effects:
        if not any(v is not None for v in self.__dict__.values()):
            raise ValueError(
                "no effect: give one or more of escalate_to, set_priority, add_tags,"
                " remove_tags, transfer_to, notify"
            )
        both = set(self.add_tags or ()) & set(self.remove_tags or ())
        if both:
            raise ValueError(f"tags {', '.join(sorted(both))} are both added and removed")
        return self

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_none(handler(self))


class Rule(BaseModel):
    """`[[policies.<p>.rules]]`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=RULE_NAME_PATTERN)
    on: RuleOn
    conditions: Conditions = Field(default_factory=Conditions, alias="if")
    then: Effects
    after: Duration | None = None  # elapsed: active time on the policy's calendar
    since: Since | None = None  # elapsed: the moment `after` counts from

    @model_validator(mode="after")
    def _elapsed_has_its_clock(self) -> Rule:
        if self.on == "elapsed":
            if self.after is None or self.since is None:
                missing = "after" if self.after is None else "since"
                raise ValueError(f"{missing}: an elapsed rule needs after and since")
        elif self.after is not None or self.since is not None:
            key = "after" if self.after is not None else "since"
            raise ValueError(f"{key}: only an elapsed rule has after and since (on = {self.on!r})")
        if self.conditions.metric is not None and self.on not in ("sla_warning", "sla_breached"):
            raise ValueError(
                f"if.metric: only a rule on sla_warning or sla_breached has a metric"
                f" (on = {self.on!r})"
            )
        return self

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = _without_none(handler(self))
        conditions = data.pop("conditions", None) or data.pop("if", None)  # by alias or not
        if conditions:
            data["if"] = conditions
        return {k: data[k] for k in ("name", "on", "after", "since", "if", "then") if k in data}

    @property
    def label(self) -> str:
        return f"rule {self.name!r}"


def check_rules(
    rules: Iterable[Rule],
    *,
    teams: Iterable[str],
    paths: Iterable[str],
) -> list[str]:
    """What is wrong with `rules` in their policy, one message per problem, each naming the
    rule (position and name) and the key: unique names, known tiers and paths."""
    known_teams, known_paths = tuple(teams), tuple(paths)
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        at = f"rules[{i}] ({rule.name})"
        if rule.name in seen:
            problems.append(
                f"{at}.name: {rule.name!r} is also the name of rules[{seen[rule.name]}]"
            )
        seen.setdefault(rule.name, i)
        target = rule.then.escalate_to
        if target is not None and target != NEXT and target not in known_teams:
            problems.append(
                f"{at}.then.escalate_to: unknown tier {target!r}"
                f" (tiers: {', '.join(known_teams)}, or {NEXT!r})"
            )
        for tier in rule.conditions.tier or ():
            if tier not in known_teams:
                problems.append(
                    f"{at}.if.tier: unknown tier {tier!r} (tiers: {', '.join(known_teams)})"
                )
        path = rule.then.transfer_to
        if path is not None and path not in known_paths:
            problems.append(
                f"{at}.then.transfer_to: unknown path {path!r} (paths: {', '.join(known_paths)})"
            )
        for p in rule.conditions.path or ():
            if p not in known_paths:
                problems.append(
                    f"{at}.if.path: unknown path {p!r} (paths: {', '.join(known_paths)})"
                )
    return problems


def elapsed_durations(rules: Iterable[Rule]) -> dict[str, timedelta]:
    """Every elapsed rule's `after`, by the key a calendar check names."""
    return {
        f"rules[{i}] ({r.name}).after": r.after for i, r in enumerate(rules) if r.after is not None
    }


def is_kind_name(text: str) -> bool:
    return bool(_KIND.match(text))


def mismatch(rule: Rule, state: TicketState, metric: str | None = None) -> str | None:
    """Why `rule`'s conditions do not hold for `state` (and the triggering breach's or
    warning's `metric`), naming the first key that fails; None when they all hold."""
    c = rule.conditions
    checks: list[tuple[str, tuple[str, ...] | None, str | None]] = [
        ("priority", c.priority, state.priority),
        ("category", c.category, state.category),
        ("customer", c.customer, state.customer_id),
        ("tier", c.tier, state.tier),
        ("path", c.path, state.path_name),
        ("status", c.status, state.status),
        ("metric", c.metric, metric),
    ]
    for key, wanted, actual in checks:
        if wanted is not None and actual not in wanted:
            return f"{key} is {actual!r}, not {' or '.join(repr(w) for w in wanted)}"
    tags = set(state.tags)
    if c.tags_any is not None and not tags & set(c.tags_any):
        return f"tags {sorted(tags)} have none of {list(c.tags_any)}"
    if c.tags_all is not None and not set(c.tags_all) <= tags:
        return f"tags {sorted(tags)} lack {sorted(set(c.tags_all) - tags)}"
    return None


def matches(rule: Rule, state: TicketState, metric: str | None = None) -> bool:
    return mismatch(rule, state, metric) is None
