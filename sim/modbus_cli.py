"""``meterlink sim modbus``: simulated meters on Modbus TCP and/or an RTU pty until SIGINT/SIGTERM.

Each endpoint is announced on stdout in one flushed line that scripts can read::

    modbus tcp listening on 127.0.0.1:5020 units=1,2
    modbus rtu pty /dev/pts/7 units=1,2

Arguments are checked here rather than by argparse types, so that every mistake ends in one line
on stderr and exit code 2 (argparse would add a usage block).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from meterlink.drivers.modbus import profiles

from .cliargs import UsageError, positive, until_signalled, whole_number
from .cliargs import faults as parse_faults
from .meter_model import Fault, SimMeter
from .modbus_server import ModbusSimServer

log = logging.getLogger("meterlink.sim.modbus")

DEFAULT_METER = "tuf2000:1"


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``meterlink sim modbus`` to ``parser``."""
    parser.add_argument("--tcp", metavar="PORT", help="serve Modbus TCP on PORT (0 = any free port)")
    parser.add_argument("--pty", action="store_true", help="serve Modbus RTU on a new pty")
    parser.add_argument("--host", default="127.0.0.1", help="TCP address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--meter",
        action="append",
        metavar="PROFILE[:UNIT]",
        help=f"a simulated meter, repeatable (default {DEFAULT_METER}); profiles: {', '.join(profiles.names())}",
    )
    parser.add_argument(
        "--fault",
        action="append",
        metavar="[UNIT:]NAME",
        help=f"switch a fault on, for every meter or one unit; repeatable: {', '.join(f.value for f in Fault)}",
    )
    parser.add_argument("--seed", default="0", help="seed for values and noise (default 0)")
    parser.add_argument("--speed", default="1", help="simulated seconds per real second (default 1)")


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
    if args.tcp is None and not args.pty:
        raise UsageError("nothing to serve: give --tcp PORT and/or --pty")
    port = None if args.tcp is None else whole_number(args.tcp, "--tcp", 0, 65535)
    meters = _meters(args.meter or [DEFAULT_METER])
    faults = parse_faults(args.fault or [], Fault, "unit", 247, meters)
    seed = whole_number(args.seed, "--seed", 0, 2**63 - 1)
    speed = positive(args.speed, "--speed")
    return Plan(port, args.pty, args.host, meters, faults, seed, speed)


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
    server = ModbusSimServer(meters)
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
        for meter in meters:
            faults = ",".join(f"{f.value}:{n}" for f, n in sorted(meter.faults_applied.items())) or "-"
            log.info("event=sim_meter_stats unit=%d requests=%d faults=%s", meter.unit, meter.requests, faults)
    return 0


