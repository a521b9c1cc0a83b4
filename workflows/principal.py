"""The worker side of the signed principal: a workflow inbound interceptor hands the
`escalation-principal` header of each Signal and Update to the handler it runs.

Each Signal and Update handler runs in its own asyncio task, entered through this interceptor,
so a context variable set here is what that handler (and only it) sees, across its awaits.
The workflow passes it on into the recorded `authorize` step (domain/principal.py verifies).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.worker import (
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain.principal import HEADER

MAX_HEADER_BYTES = 4096  # a principal is a few hundred bytes; more is not one

_principal: ContextVar[str | None] = ContextVar("escalation_principal", default=None)


def current_principal() -> str | None:
    """The principal header of the Signal or Update being handled (None: none came)."""
    return _principal.get()


def _text(headers: Any) -> str | None:
    payload: Payload | None = headers.get(HEADER) if headers else None
    if payload is None or len(payload.data) > MAX_HEADER_BYTES:
        return None
    return payload.data.decode("utf-8", "replace")


class _Inbound(WorkflowInboundInterceptor):
    async def handle_signal(self, input: HandleSignalInput) -> None:
        _principal.set(_text(input.headers))
        await super().handle_signal(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        _principal.set(_text(input.headers))
        return await super().handle_update_handler(input)


class PrincipalInterceptor(Interceptor):
    """Pass to the Worker's `interceptors`."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _Inbound
