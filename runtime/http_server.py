"""uvicorn's HTTP/1.1 protocol with the bounds uvicorn leaves out, for the API and the codec
server: at most `max_connections` open connections (more are closed at once), and a connection
that is not inside a request (fresh, idle between requests, or still trickling its request
line and headers) is closed after `idle_timeout` seconds. uvicorn itself only times out
keep-alive connections after a first response, so 500 connections that never send a byte would
otherwise stay open for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def bounded_h11(max_connections: int, idle_timeout: float) -> type[H11Protocol]:
    """An H11Protocol class for `uvicorn.Config(http=...)` with these bounds."""

    class BoundedH11Protocol(H11Protocol):
        _idle: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()  # over the limit: the connections already open go on
                return
            self._arm()

        def _arm(self) -> None:
            if self._idle is not None:
                self._idle.cancel()
            self._idle = self.loop.call_later(idle_timeout, self._idle_expired)

        def _idle_expired(self) -> None:
            self._idle = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:
                try:
                    self.timeout_keep_alive_handler()  # uvicorn's own close of an idle one
                except Exception:  # h11 refuses a close mid-message: drop the connection
                    self.transport.close()
            # inside a request: the app's own timeouts (body, request) bound it

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            super().connection_lost(exc)

    return BoundedH11Protocol
