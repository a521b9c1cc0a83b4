"""The workflow's message names are the domain's (docs/contract.md#actions, #queries): one list."""

from __future__ import annotations

from temporalio import workflow

from domain.commands import ACTIONS
from domain.decider import ACTION_VERBS
from workflows.ticket import WORKFLOW_TYPE, TicketWorkflow

# The SDK's own reading of the class, as the worker registers it (no public accessor).
DEFINITION = workflow._Definition.from_class(TicketWorkflow)


def test_every_action_is_a_signal_and_an_update_and_nothing_else_is() -> None:
    assert DEFINITION is not None and DEFINITION.name == WORKFLOW_TYPE
    assert set(DEFINITION.signals) == set(ACTIONS)
    assert set(DEFINITION.updates) == set(ACTIONS)
    assert set(ACTION_VERBS) == set(ACTIONS)


def test_every_update_validates_before_anything_is_written() -> None:
    assert DEFINITION is not None
    missing = [name for name, u in DEFINITION.updates.items() if u.validator is None]
    assert missing == []


def test_the_queries_are_the_contract_s() -> None:
    assert DEFINITION is not None
    assert set(DEFINITION.queries) == {"state", "history"}
