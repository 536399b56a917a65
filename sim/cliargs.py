"""What the simulators' commands share: argument checks that end in one line, and waiting for a signal.

Arguments are checked here rather than by argparse types, so that every mistake ends in one line on
stderr naming the option (argparse would add a usage block).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import Collection
from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class UsageError(Exception):
    """A bad argument; the message names it."""


def whole_number(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a whole number") from None
    if not low <= value <= high:
        raise UsageError(f"{what}: {value} is outside {low}..{high}")
    return value


def positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{what}: {text} must be a positive number")
    return value


def faults(specs: list[str], kinds: type[E], target: str, high: int,
           present: Collection[int]) -> list[tuple[int | None, E]]:
    """``--fault [TARGET:]NAME`` options: (target or None for every meter, fault), each checked.

    ``target`` names what the number picks ("unit", "station"), ``present`` the numbers that exist.
    """
    out: list[tuple[int | None, E]] = []
    for spec in specs:
        number, sep, name = spec.rpartition(":")
        try:
            fault = kinds(name)
        except ValueError:
            names = ", ".join(str(k.value) for k in kinds)
            raise UsageError(f"--fault {spec}: unknown fault {name!r} (known: {names})") from None
        which = whole_number(number, f"--fault {spec}: {target}", 1, high) if sep else None
        if which is not None and which not in present:
            raise UsageError(f"--fault {spec}: no meter at {target} {which}")
        out.append((which, fault))
    return out


async def until_signalled() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
