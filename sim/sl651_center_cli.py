"""``meterlink sim sl651-center``: a simulated SL651 centre until SIGINT/SIGTERM.

On start it prints one flushed line that scripts can read::

    sl651 center listening on 127.0.0.1:5051

then one JSON line per frame, in either direction::

    {"dir": "in", "peer": "127.0.0.1:40112", "frame": {... meterlink decode sl651 output ...}}

Queries on command: each line on standard input names a function code in hex (``37`` real-time
data, ``38`` the last hour of 39H, ``51`` clock, ``4A`` set clock, ``45`` version, ...), sent to
every connected station; ``38 ID DEF STEP`` asks for another element (identifier and data
definition in hex, e.g. ``38 27 2B 1``: flow every minute); ``--query-interval S`` sends 37H
every S seconds. Arguments are checked here so that every mistake is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import stat
import sys
from dataclasses import dataclass
from typing import Any

from .cliargs import UsageError, positive, until_signalled, whole_number
from .sl651_center import Center

PROG = "meterlink sim sl651-center"


@dataclass(frozen=True, slots=True)
class Plan:
    host: str
    port: int
    drop_acks: int
    query_interval: float | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``meterlink sim sl651-center`` to ``parser``."""
    parser.add_argument("--listen", metavar="PORT", help="TCP port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--drop-acks", default="0", metavar="N", help="do not send the first N acknowledgements")
    parser.add_argument("--query-interval", metavar="S", help="query 37H (real-time data) every S seconds")


def check(args: argparse.Namespace) -> Plan:
    """The checked arguments; raises UsageError naming the first wrong one."""
    if args.listen is None:
        raise UsageError("give --listen PORT (0 = any free port)")
    port = whole_number(args.listen, "--listen", 0, 65535)
    drop = whole_number(args.drop_acks, "--drop-acks", 0, 2**31 - 1)
    interval = None if args.query_interval is None else positive(args.query_interval, "--query-interval")
    return Plan(args.host, port, drop, interval)


def _print_record(record: dict[str, Any]) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


async def _commands(center: Center) -> None:
    """Read function codes from standard input, one a line, and query with each."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return
    if not (stat.S_ISFIFO(mode) or (stat.S_ISCHR(mode) and sys.stdin.isatty()) or stat.S_ISSOCK(mode)):
        return  # /dev/null or a file: epoll cannot watch it, and there are no commands to read
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):  # not a pipe or terminal: no commands
        return
    while line := await reader.readline():
        words = line.decode("ascii", "replace").split()
        if not words:
            continue
        try:
            function, options = _command(words)
        except ValueError:
            print(f"{PROG}: {' '.join(words)!r} is not a command (37, 38, 38 27 2B 1, 51, ...)", file=sys.stderr)
            continue
        count = center.query(function, **options)
        print(f"{PROG}: sent {function:02X}H to {count} station(s)", file=sys.stderr, flush=True)


def _command(words: list[str]) -> tuple[int, dict[str, Any]]:
    """A function code in hex; for 38H optionally the element, its definition (hex) and the step
    in minutes. Raises ValueError."""
    function = int(words[0], 16)
    if not 0x2F <= function <= 0xFF or (len(words) > 1 and function != 0x38) or len(words) > 4:
        raise ValueError(words[0])
    options: dict[str, Any] = {}
    if len(words) > 1:
        options["ident"] = int(words[1], 16)
    if len(words) > 2:
        options["definition"] = int(words[2], 16)
    if len(words) > 3:
        options["step_minutes"] = int(words[3])
        if not 1 <= options["step_minutes"] <= 99 * 60:
            raise ValueError(words[3])
    if not 0 <= options.get("ident", 0) <= 0xFFFF or not 0 <= options.get("definition", 0) <= 0xFF:
        raise ValueError(words[1])
    return function, options


async def _every(center: Center, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        center.query(0x37)


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM. Returns 0, 2 on a bad argument, 1 if the port cannot be bound."""
    try:
        plan = check(args)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return 2
    center = Center(host=plan.host, port=plan.port, drop_acks=plan.drop_acks, on_record=_print_record)
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            port = await center.start()
        except OSError as exc:
            print(f"{PROG}: cannot listen on {plan.host}:{plan.port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"sl651 center listening on {plan.host}:{port}", flush=True)
        tasks.append(asyncio.create_task(_commands(center), name="sl651-center.commands"))
        if plan.query_interval is not None:
            tasks.append(asyncio.create_task(_every(center, plan.query_interval), name="sl651-center.queries"))
        await until_signalled()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await center.stop()
        print(
            f"{PROG}: reports={len(center.reports)} repeats={center.repeats} acks_sent={center.acks_sent} "
            f"acks_dropped={center.acks_dropped} frames_rejected={center.frames_rejected}",
            file=sys.stderr,
            flush=True,
        )
    return 0
