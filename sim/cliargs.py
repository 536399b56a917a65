"""What the simulators' commands share: argument checks that end in one line, the options every
simulated meter command has, and waiting for a signal.

Arguments are checked here rather than by argparse types, so that every mistake ends in one line on
stderr naming the option (argparse would add a usage block).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
from collections.abc import Collection
from dataclasses import dataclass
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


def faults(
    specs: list[str], kinds: type[E], target: str, high: int, present: Collection[int]
) -> list[tuple[int | None, E]]:
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


def add_endpoint_arguments(
    parser: argparse.ArgumentParser, *, tcp_help: str, pty_help: str, faults: type[Enum], target: str
) -> None:
    """The options every simulated meter command has: where it serves, faults (of enum ``faults``, for
    every meter or the one a ``target`` number picks), seed and speed."""
    parser.add_argument("--tcp", metavar="PORT", help=f"{tcp_help} (0 = any free port)")
    parser.add_argument("--pty", action="store_true", help=pty_help)
    parser.add_argument("--host", default="127.0.0.1", help="TCP address to listen on (default 127.0.0.1)")
    names = ", ".join(str(f.value) for f in faults)
    parser.add_argument(
        "--fault",
        action="append",
        metavar=f"[{target.upper()}:]NAME",
        help=f"switch a fault on, for every meter or one {target}; repeatable: {names}",
    )
    parser.add_argument("--seed", default="0", help="seed for values and noise (default 0)")
    parser.add_argument("--speed", default="1", help="simulated seconds per real second (default 1)")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a simulator serves, and the seed and speed of its meters (checked)."""

    tcp_port: int | None
    pty: bool
    host: str
    seed: int
    speed: float


def check_endpoints(args: argparse.Namespace) -> Endpoints:
    """The options of :func:`add_endpoint_arguments`, checked.

    Raises:
        UsageError: nothing to serve, or a bad number.
    """
    if args.tcp is None and not args.pty:
        raise UsageError("nothing to serve: give --tcp PORT and/or --pty")
    port = None if args.tcp is None else whole_number(args.tcp, "--tcp", 0, 65535)
    seed = whole_number(args.seed, "--seed", 0, 2**63 - 1)
    return Endpoints(port, args.pty, args.host, seed, positive(args.speed, "--speed"))
