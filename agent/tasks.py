"""Stopping tasks for sure.

On Python 3.11, ``asyncio.wait_for`` drops a cancellation that arrives in the same loop turn as
the result it waits for (pymodbus waits for every answer that way): the task goes on as if never
cancelled. A single ``cancel()`` then ``gather`` can wait forever at shutdown, so the agent cancels
again until every task has really ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

RECANCEL_EVERY_S = 0.5


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], every: float = RECANCEL_EVERY_S) -> None:
    """Cancel ``tasks`` and return once all have ended, cancelling again those still running every
    ``every`` seconds. Their results and exceptions are left for the caller to read."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
