"""Ticket tags (docs/rules.md#tags): the name rule, the limit, and a ticket's tag set."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints

TAG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
MAX_TAGS = 20
_TAG = re.compile(TAG_PATTERN)

Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]


def _one_or_many(value: Any) -> Any:
    """A single tag may be written without the list: `tags_any = "vip"`."""
    return (value,) if isinstance(value, str) else value


def _sorted_unique(tags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(tags)))


# A set of tags as recorded: sorted, each once, so equal sets serialise to equal bytes.
TagSet = Annotated[
    tuple[Tag, ...],
    BeforeValidator(_one_or_many),
    AfterValidator(_sorted_unique),
]


def is_tag(text: str) -> bool:
    return bool(_TAG.match(text))


def changed(
    tags: Iterable[str], add: Iterable[str], remove: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(added, removed, resulting tags) of applying `add` then `remove` to `tags`; only
    what actually changes is in `added` and `removed`."""
    before = set(tags)
    after = (before | set(add)) - set(remove)
    return tuple(sorted(after - before)), tuple(sorted(before - after)), tuple(sorted(after))
