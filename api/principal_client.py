"""The API side of the signed principal: a Temporal client interceptor that signs the caller
of the current request into every Signal and Update it sends (header `escalation-principal`).

The request handler names the caller with `acting_as(caller)`; the interceptor reads it from a
context variable, so the same TicketClient code serves every caller without a parameter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowUpdateHandle,
)

from api.auth import Caller
from domain.principal import HEADER, Claims, PrincipalKeys, payload_digest, sign

_caller: ContextVar[Caller | None] = ContextVar("api_caller", default=None)


@contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


def principal_header(
    keys: PrincipalKeys, caller: Caller, workflow_id: str, action: str, args: Sequence[Any]
) -> Payload:
    body = args[0] if args and isinstance(args[0], Mapping) else {}
    claims = Claims(
        kind=caller.kind,
        sub=caller.id,
        wf=workflow_id,
        act=action,
        body=payload_digest(body),
        iat=int(time.time()),
    )
    return Payload(metadata={"encoding": b"json/plain"}, data=sign(keys, claims).encode())


class _Outbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, keys: PrincipalKeys) -> None:
        super().__init__(next)
        self._keys = keys

    def _headers(
        self, headers: Mapping[str, Payload], workflow_id: str, action: str, args: Sequence[Any]
    ) -> Mapping[str, Payload]:
        caller = _caller.get()
        if caller is None:
            return headers
        return {**headers, HEADER: principal_header(self._keys, caller, workflow_id, action, args)}

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        input.headers = self._headers(input.headers, input.id, input.signal, input.args)
        await super().signal_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        input.headers = self._headers(input.headers, input.id, input.update, input.args)
        return await super().start_workflow_update(input)


class PrincipalSigner(Interceptor):
    def __init__(self, keys: PrincipalKeys) -> None:
        self._keys = keys

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next, self._keys)


def signing_client(client: Client, keys: PrincipalKeys | None) -> Client:
    """`client` on the same connection, signing each call's caller (unchanged without keys)."""
    if keys is None:
        return client
    config = client.config()
    config["interceptors"] = [*config.get("interceptors", ()), PrincipalSigner(keys)]
    return Client(**config)
