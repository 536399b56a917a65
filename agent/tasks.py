"""Stopping tasks for sure, and hearing about the ones that failed.

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
    ``every`` seconds (their grace: a publish awaiting its acknowledgement may need it).

    If the task calling this is itself cancelled meanwhile, it goes on until its own tasks have
    ended, then raises CancelledError: a stopped parent never leaves children running. Results and
    exceptions of ``tasks`` are left for the caller (:func:`failures`).
    """
    loop = asyncio.get_running_loop()
    pending = {t for t in tasks if not t.done()}
    cancelled = False
    while pending:
        for t in pending:
            t.cancel()
        deadline = loop.time() + every
        while pending and loop.time() < deadline:
            try:
                _, pending = await asyncio.wait(pending, timeout=deadline - loop.time())
            except asyncio.CancelledError:
                cancelled = True
                pending = {t for t in pending if not t.done()}
    if cancelled:
        raise asyncio.CancelledError


def failures(tasks: Iterable[asyncio.Task[object]]) -> list[tuple[asyncio.Task[object], BaseException]]:
    """The ended tasks that raised something other than a cancellation, with what they raised."""
    out = []
    for t in tasks:
        if t.done() and not t.cancelled():
            error = t.exception()
            if error is not None:
                out.append((t, error))
    return out
