"""The language-neutral contract: JSON Schema files generated from the pydantic models.

    python -m tickets.schemas            write schemas/ (the files are committed)
    python -m tickets.schemas --check    exit 1 listing every file that differs from the models

Inputs (`OpenTicket`, the action payloads) are described as they are validated; outputs
(`TicketView`, the event payloads and their envelope) as they are serialised to JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from domain.commands import ACTIONS, OpenTicket
from domain.events import EVENT_TYPES, DomainEvent
from domain.view import TicketView
from runtime.config import PROJECT_ROOT

SCHEMA_DIR = PROJECT_ROOT / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

Mode = Literal["validation", "serialization"]


class _Generator(GenerateJsonSchema):
    """Describes a model with a wrapping serializer (e.g. `Policy`, which leaves out an unset
    `calendar_spec`) by its fields, not as "any object" (the serializer's return type)."""

    def ser_schema(
        self,
        schema: core_schema.SerSchema
        | core_schema.IncExSeqSerSchema
        | core_schema.IncExDictSerSchema,
    ) -> JsonSchemaValue | None:
        if schema["type"] == "function-wrap":
            returned: Any = schema.get("return_schema")
            if returned is None or returned["type"] in ("dict", "any"):
                return None
        return super().ser_schema(schema)


def _schema(model: type[BaseModel], mode: Mode, title: str, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode, schema_generator=_Generator)
    schema = {"$schema": DIALECT, **schema, "title": title}
    if description:
        schema["description"] = description
    return schema


def generate() -> dict[str, dict[str, Any]]:
    """Relative path under schemas/ -> schema, for every public payload."""
    out: dict[str, dict[str, Any]] = {
        "open_ticket.json": _schema(
            OpenTicket,
            "validation",
            "OpenTicket",
            "Input of workflow TicketWorkflow (id `ticket-<ticket_id>`): opens a ticket.",
        ),
        "ticket_view.json": _schema(
            TicketView,
            "serialization",
            "TicketView",
            "Result of every action Update, of the `state` query and of the closed workflow.",
        ),
        "domain_event.json": _schema(
            DomainEvent,
            "serialization",
            "DomainEvent",
            "A stored domain event (the `history` query returns a list of these); `payload` "
            "follows events/<event_type>.json.",
        ),
    }
    for name, model in ACTIONS.items():
        out[f"actions/{name}.json"] = _schema(
            model,
            "validation",
            name,
            f"Payload of the `{name}` Update and Signal of TicketWorkflow.",
        )
    for event_type, event_model in EVENT_TYPES.items():
        out[f"events/{event_type}.json"] = _schema(
            event_model,
            "serialization",
            event_type,
            f"`payload` of a domain event whose `event_type` is `{event_type}`.",
        )
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def drifted(root: Path = SCHEMA_DIR) -> list[str]:
    """Files that are missing, stale, or no longer generated (relative to `root`)."""
    wanted = {path: render(schema) for path, schema in generate().items()}
    problems = []
    for path, text in sorted(wanted.items()):
        file = root / path
        if not file.exists():
            problems.append(f"{path} (missing)")
        elif file.read_text(encoding="utf-8") != text:
            problems.append(f"{path} (differs from the models)")
    if root.exists():
        for file in sorted(root.rglob("*.json")):
            rel = file.relative_to(root).as_posix()
            if rel not in wanted:
                problems.append(f"{rel} (no longer generated)")
    return problems


def write(root: Path = SCHEMA_DIR) -> list[str]:
    """Write every schema, remove stale ones; returns the paths written or removed."""
    wanted = {path: render(schema) for path, schema in generate().items()}
    changed = []
    for path, text in sorted(wanted.items()):
        file = root / path
        if not file.exists() or file.read_text(encoding="utf-8") != text:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
            changed.append(path)
    for file in sorted(root.rglob("*.json")):
        rel = file.relative_to(root).as_posix()
        if rel not in wanted:
            file.unlink()
            changed.append(f"{rel} (removed)")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tickets.schemas",
        description="Generate the JSON Schema files of the public contract into schemas/.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file would change"
    )
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="default: schemas/")
    args = parser.parse_args(argv)
    if args.check:
        problems = drifted(args.dir)
        if problems:
            print("JSON Schemas out of date (run `python -m tickets.schemas`):", file=sys.stderr)
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            return 1
        print(f"schemas up to date ({len(generate())} files)")
        return 0
    changed = write(args.dir)
    print(f"{len(changed)} file(s) written or removed in {args.dir}" if changed else "no change")
    for path in changed:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
