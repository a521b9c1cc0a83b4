"""Leaving a process that used a Temporal client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import NoReturn


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, for a long-running command's loop to wait on (call it
    inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # platforms without signal handlers
            loop.add_signal_handler(sig, stop.set)
    return stop


def exit_now(code: int) -> NoReturn:
    """Exit without interpreter finalization: the Temporal core's native threads may still be
    winding down, and finalizing under them can abort an already finished process
    ("PyGILState_Release"), turning a clean exit into a crash."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader left (`| head`), or it is closed
            pass
    os._exit(code)
