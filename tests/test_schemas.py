"""The committed JSON Schemas (schemas/) are the pydantic models' own: a change to a public model
without regenerating them (`python -m tickets.schemas`) fails here."""

from __future__ import annotations

import json
from pathlib import Path

from domain.commands import ACTIONS
from domain.events import EVENT_TYPES
from tickets import schemas


def test_committed_schemas_match_the_models() -> None:
    drift = schemas.drifted()
    assert drift == [], (
        "schemas/ is out of date; run `.venv/bin/python -m tickets.schemas` and commit:\n  "
        + "\n  ".join(drift)
    )


def test_every_public_payload_has_a_schema() -> None:
    names = set(schemas.generate())
    assert {"open_ticket.json", "ticket_view.json", "domain_event.json"} <= names
    assert {f"actions/{a}.json" for a in ACTIONS} <= names
    assert {f"events/{e}.json" for e in EVENT_TYPES} <= names
    assert len(names) == 3 + len(ACTIONS) + len(EVENT_TYPES)


def test_schemas_describe_the_contract() -> None:
    opened = schemas.generate()["open_ticket.json"]
    assert opened["additionalProperties"] is False  # unknown keys are rejected
    assert set(opened["required"]) == {"ticket_id", "subject", "customer_id"}
    assert opened["properties"]["priority"]["enum"] == ["urgent", "high", "normal", "low"]
    escalate = schemas.generate()["actions/request_escalation.json"]
    assert set(escalate["required"]) == {"agent_id", "reason"}
    # The recorded policy is described field by field, not as "any object".
    policy = schemas.generate()["events/TicketOpened.json"]["$defs"]["Policy"]
    assert {"name", "tiers", "targets"} <= set(policy["properties"])


def test_check_lists_drifted_files_and_write_fixes_them(tmp_path: Path, capsys) -> None:
    assert schemas.main(["--dir", str(tmp_path)]) == 0
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 0
    view = tmp_path / "ticket_view.json"
    data = json.loads(view.read_text())
    data["title"] = "Edited"
    view.write_text(json.dumps(data))
    (tmp_path / "actions" / "close.json").unlink()
    (tmp_path / "events" / "Gone.json").write_text("{}")
    capsys.readouterr()
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "ticket_view.json (differs from the models)" in err
    assert "actions/close.json (missing)" in err
    assert "events/Gone.json (no longer generated)" in err
    assert schemas.main(["--dir", str(tmp_path)]) == 0
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 0


def test_schemas_describe_paths_and_assignment() -> None:
    generated = schemas.generate()
    assert set(generated["actions/transfer.json"]["required"]) == {"agent_id", "path", "reason"}
    assert generated["actions/acknowledge.json"]["required"] == ["agent_id"]
    assert "path" in generated["open_ticket.json"]["properties"]
    view = generated["ticket_view.json"]
    assert {"path", "tiers", "assignment"} <= set(view["properties"])
    assigned = generated["events/TicketAssigned.json"]["properties"]["trigger"]
    assert assigned["enum"] == ["agent", "auto"] and assigned["default"] == "agent"
