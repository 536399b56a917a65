"""``meterlink sim modbus``: simulated meters on Modbus TCP and/or an RTU pty until SIGINT/SIGTERM.

Each endpoint is announced on stdout in one flushed line that scripts can read::

    modbus tcp listening on 127.0.0.1:5020 units=1,2
    modbus rtu pty /dev/pts/7 units=1,2

With ``--stats FILE`` the meters' counts (requests, answers with values by read, faults applied)
are written to FILE as JSON every second and at the end, replaced whole so that a reader never sees
half of it: a technician can watch what a poller asks, a test can count what was answered.

Arguments are checked here rather than by argparse types, so that every mistake ends in one line
on stderr and exit code 2 (argparse would add a usage block).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meterlink.drivers.modbus import profiles

from .cliargs import UsageError, add_endpoint_arguments, check_endpoints, until_signalled, whole_number
from .cliargs import faults as parse_faults
from .meter_model import Fault, SimMeter
from .modbus_server import ModbusSimServer

log = logging.getLogger("meterlink.sim.modbus")

DEFAULT_METER = "tuf2000:1"
STATS_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Plan:
    """The checked arguments."""

    tcp_port: int | None
    pty: bool
    host: str
    meters: dict[int, str]  # unit -> profile name
    faults: list[tuple[int | None, Fault]]  # None: every meter
    seed: int
    speed: float
    stats: Path | None = None
    baud: int | None = None  # pty: the meters' fixed line speed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``meterlink sim modbus`` to ``parser``."""
    add_endpoint_arguments(
        parser,
        tcp_help="serve Modbus TCP on PORT",
        pty_help="serve Modbus RTU on a new pty",
        faults=Fault,
        target="unit",
    )
    parser.add_argument(
        "--meter",
        action="append",
        metavar="PROFILE[:UNIT]",
        help=f"a simulated meter, repeatable (default {DEFAULT_METER}); profiles: {', '.join(profiles.names())}",
    )
    parser.add_argument(
        "--baud",
        metavar="RATE",
        help="pty: answer only while the line is set to this speed, like a meter set to one baud rate (default: any)",
    )
    parser.add_argument(
        "--stats",
        metavar="FILE",
        help="write each meter's requests, answers and faults to FILE as JSON, every second and at the end",
    )


def _meters(specs: list[str]) -> dict[int, str]:
    known = profiles.names()
    meters: dict[int, str] = {}
    pending: list[str] = []  # profiles without a unit take the lowest free units afterwards
    for spec in specs:
        name, sep, unit_text = spec.partition(":")
        if name not in known:
            raise UsageError(f"--meter {spec}: unknown profile {name!r} (known: {', '.join(known)})")
        if not sep:
            pending.append(name)
            continue
        unit = whole_number(unit_text, f"--meter {spec}: unit", 1, 247)
        if unit in meters:
            raise UsageError(f"--meter {spec}: unit {unit} is already taken")
        meters[unit] = name
    free = (u for u in range(1, 248) if u not in meters)
    for name in pending:
        spare = next(free, None)
        if spare is None:
            raise UsageError(f"--meter {name}: no free unit id left")
        meters[spare] = name
    return meters


def check(args: argparse.Namespace) -> Plan:
    """Turn parsed arguments into a :class:`Plan`.

    Raises:
        UsageError: the first thing wrong, in one line.
    """
    where = check_endpoints(args)
    meters = _meters(args.meter or [DEFAULT_METER])
    faults = parse_faults(args.fault or [], Fault, "unit", 247, meters)
    stats_file = None if args.stats is None else Path(args.stats)
    if stats_file is not None and (not stats_file.name or stats_file.is_dir()):
        raise UsageError(f"--stats {args.stats}: give a file, not a folder")
    baud = None if args.baud is None else whole_number(args.baud, "--baud", 300, 4_000_000)
    return Plan(where.tcp_port, where.pty, where.host, meters, faults, where.seed, where.speed, stats_file, baud)


def stats(meters: Iterable[SimMeter]) -> dict[str, Any]:
    """The counts ``--stats FILE`` holds: per unit, what was asked and what was answered with values."""
    return {
        "updated": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "units": {
            str(m.unit): {
                "profile": m.profile.name,
                "requests": m.requests,
                "answered": sum(m.answered.values()),
                "answered_by_read": {f"fc{f:02d} {a}+{n}": c for (f, a, n), c in sorted(m.answered.items())},
                "faults": {f.value: c for f, c in sorted(m.faults_applied.items())},
            }
            for m in meters
        },
    }


def write_stats(path: Path, meters: Iterable[SimMeter]) -> None:
    """Replace ``path`` whole (write beside it, then rename).

    Raises:
        OSError: the file cannot be written.
    """
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(stats(meters), indent=2, sort_keys=True) + "\n")
    os.replace(part, path)


async def _keep_writing_stats(path: Path, meters: list[SimMeter]) -> None:
    failed = False
    while True:
        await asyncio.sleep(STATS_EVERY_S)
        try:
            write_stats(path, meters)
        except OSError as exc:
            if not failed:  # once: a full disk must not flood the log every second
                log.warning("event=sim_stats_unwritable path=%s error=%r", path, exc.strerror or str(exc))
            failed = True
        else:
            failed = False


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM. Returns 0, 2 on a bad argument, 1 if an endpoint cannot open."""
    try:
        plan = check(args)
    except UsageError as exc:
        print(f"meterlink sim modbus: {exc}", file=sys.stderr, flush=True)
        return 2
    meters = [SimMeter(name, unit, seed=plan.seed, speed=plan.speed) for unit, name in sorted(plan.meters.items())]
    for unit, fault in plan.faults:
        for meter in meters:
            if unit is None or meter.unit == unit:
                meter.set_fault(fault)
    if plan.stats is not None:
        try:
            write_stats(plan.stats, meters)
        except OSError as exc:
            print(
                f"meterlink sim modbus: --stats {plan.stats}: cannot write: {exc.strerror or exc}",
                file=sys.stderr,
                flush=True,
            )
            return 2
    server = ModbusSimServer(meters, baudrate=plan.baud)
    writer = None if plan.stats is None else asyncio.create_task(_keep_writing_stats(plan.stats, meters))
    try:
        if plan.tcp_port is not None:
            try:
                port = await server.start_tcp(plan.host, plan.tcp_port)
            except OSError as exc:
                print(
                    f"meterlink sim modbus: cannot listen on {plan.host}:{plan.tcp_port}: {exc.strerror or exc}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            print(f"modbus tcp listening on {plan.host}:{port} units={server.units}", flush=True)
        if plan.pty:
            try:
                path = server.start_pty()
            except OSError as exc:
                print(f"meterlink sim modbus: cannot open a pty: {exc.strerror or exc}", file=sys.stderr, flush=True)
                return 1
            print(f"modbus rtu pty {path} units={server.units}", flush=True)
        await until_signalled()
    finally:
        await server.stop()
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        if plan.stats is not None:
            try:
                write_stats(plan.stats, meters)  # the final counts, after the last answer
            except OSError as exc:
                log.warning("event=sim_stats_unwritable path=%s error=%r", plan.stats, exc.strerror or str(exc))
        for meter in meters:
            faults = ",".join(f"{f.value}:{n}" for f, n in sorted(meter.faults_applied.items())) or "-"
            log.info("event=sim_meter_stats unit=%d requests=%d faults=%s", meter.unit, meter.requests, faults)
    return 0
