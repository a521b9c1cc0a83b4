"""Leaving a process that used a Temporal client."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


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
