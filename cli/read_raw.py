"""``meterlink read --port DEV | --tcp HOST:PORT --unit N ...``: one unit, without a config.

With ``--registers START:COUNT`` it prints the raw registers, and every pair of neighbouring
registers decoded as float32, uint32 and int32 in all four word orders side by side: the column
that shows what the meter's display shows is the word order to configure. With ``--profile NAME``
it reads the profile's values, as ``meterlink read -c`` does for a configured meter.

Exit 0 when the unit answered, 1 when it did not (or the port would not open), 2 for bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass
from typing import cast

from meterlink.drivers.base import DriverError
from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.modbus.registermap import Profile, SerialDefaults
from meterlink.drivers.modbus.scan import Parity, UsageError, parse_list
from meterlink.drivers.params import SerialParams, TcpParams, describe
from meterlink.protocols.modbus.plan import MAX_REGISTERS_PER_READ, ReadRequest
from meterlink.protocols.modbus.registers import DataType, WordOrder, decode

from .scan import baudrates_of, tcp_endpoint, timeout_of

# What `read -c` reads from the config, and what these options give without one.
OPTIONS = ("port", "tcp", "unit", "profile", "registers", "function", "baud", "parity", "timeout")
PAIR_TYPES = (DataType.FLOAT32, DataType.UINT32, DataType.INT32)
ORDERS = tuple(WordOrder)
COLUMN = 16


@dataclass(frozen=True, slots=True)
class RawRead:
    """The checked options: where, which unit, and either a profile or a block of registers."""

    where: SerialParams | TcpParams
    unit: int
    profile: Profile | None
    request: ReadRequest | None
    timeout: float


def given(args: argparse.Namespace) -> list[str]:
    """The options of a read without a config that are on the command line, as typed."""
    return ["--" + name for name in OPTIONS if getattr(args, name, None) is not None]


def registers_of(text: str, function: int) -> ReadRequest:
    start_text, sep, count_text = text.partition(":")
    if not (sep and start_text.isdigit() and count_text.isdigit()):
        raise UsageError(f"--registers {text}: give START:COUNT, e.g. 0:10 (wire addresses, from 0)")
    start, count = int(start_text), int(count_text)
    if not 1 <= count <= MAX_REGISTERS_PER_READ:
        raise UsageError(f"--registers {text}: COUNT must be 1..{MAX_REGISTERS_PER_READ}")
    if start + count > 0x10000:
        raise UsageError(f"--registers {text}: runs past register 65535")
    return ReadRequest(function, start, count)


def profile_of(name: str) -> Profile:
    try:
        return profiles.load(name)
    except KeyError:
        raise UsageError(f"--profile {name}: no such profile (built-in: {', '.join(profiles.names())})") from None


def check(args: argparse.Namespace) -> RawRead:
    """Check the options of a read without a config.

    Raises:
        UsageError: the first thing wrong, in one line.
    """
    if (args.port is None) == (args.tcp is None):
        raise UsageError("give -c FILE, or --port DEVICE or --tcp HOST:PORT with --unit N")
    if args.unit is None or not args.unit.isdigit():
        raise UsageError(
            "--unit: give the unit id (1..247) to read" if args.unit is None else f"--unit {args.unit}: not a unit id"
        )
    unit = int(args.unit)
    if not (0 <= unit <= 255 if args.tcp is not None else 1 <= unit <= 247):
        raise UsageError(f"--unit {unit}: outside {'0..255' if args.tcp is not None else '1..247'}")
    if (args.profile is None) == (args.registers is None):
        raise UsageError("give --profile NAME (its values) or --registers START:COUNT (raw), one of them")
    if args.function is not None and args.profile is not None:
        raise UsageError("--function goes with --registers: a profile names its own")
    if args.function not in (None, "3", "4"):
        raise UsageError(f"--function {args.function}: 3 (holding registers) or 4 (input registers)")
    profile = profile_of(args.profile) if args.profile is not None else None
    request = registers_of(args.registers, int(args.function or 3)) if args.registers is not None else None
    return RawRead(where_of(args, profile), unit, profile, request, timeout_of(args.timeout or "1"))


def where_of(args: argparse.Namespace, profile: Profile | None) -> SerialParams | TcpParams:
    if args.tcp is not None:
        if args.baud is not None or args.parity is not None:
            raise UsageError("--baud and --parity are line settings of a serial port, not of --tcp")
        return tcp_endpoint(args.tcp)
    # Left out, the line settings are the profile's (its meter's factory settings), else 9600 8N1.
    line = profile.serial if profile is not None else SerialDefaults()
    rates = baudrates_of(args.baud) if args.baud is not None else [line.baudrate]
    parities = parse_list(args.parity, "--parity", "NEO") if args.parity is not None else [line.parity]
    if len(rates) > 1 or len(parities) > 1:
        raise UsageError("--baud and --parity: one setting each (meterlink scan tries several)")
    return SerialParams(args.port, rates[0], cast(Parity, parities[0]), line.stopbits, line.bytesize)


# -- the raw table (pure) -----------------------------------------------------------------------------


def cell(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.7g}" if isinstance(value, float) else str(value)


def register_lines(start: int, registers: list[int]) -> list[str]:
    lines = [f"{'register':<10}{'uint16':>8}{'int16':>8}  hex"]
    for address, word in enumerate(registers, start):
        signed = word - 0x10000 if word & 0x8000 else word
        lines.append(f"{address:<10}{word:>8}{signed:>8}  0x{word:04X}")
    return lines


def pair_lines(start: int, registers: list[int]) -> list[str]:
    """Each pair of neighbouring registers (from every address: where a value starts is unknown) as
    float32, uint32 and int32 in the four word orders, one column per order."""
    lines = [f"{'registers':<13}{'type':<9}" + "".join(f"{o.value:>{COLUMN}}" for o in ORDERS)]
    for offset in range(len(registers) - 1):
        pair = registers[offset : offset + 2]
        for row, dtype in enumerate(PAIR_TYPES):
            label = f"{start + offset}-{start + offset + 1}" if row == 0 else ""
            values = "".join(f"{cell(decode(pair, dtype, order)):>{COLUMN}}" for order in ORDERS)
            lines.append(f"{label:<13}{dtype.value:<9}{values}")
    return lines


# -- I/O ----------------------------------------------------------------------------------------------


async def read(plan: RawRead) -> int:
    bus = ModbusBus("read", plan.where, timeout=plan.timeout, retries=1)
    started = time.monotonic()
    head = f"{describe(plan.where)} unit {plan.unit}"
    try:
        if plan.request is not None:
            r = plan.request
            registers = await bus.read(plan.unit, r)
            print(f"{head}: fc{r.function:02d} {r.address}+{r.count} in {(time.monotonic() - started) * 1000:.0f} ms")
            print("\n".join(register_lines(r.address, registers)))
            if len(registers) > 1:
                print()
                print("\n".join(pair_lines(r.address, registers)))
            return 0
        assert plan.profile is not None
        meter = ModbusMeter(plan.profile.name, plan.unit, plan.profile.value_specs(), max_gap=plan.profile.max_gap)
        requests = ", ".join(f"fc{r.function:02d} {r.address}+{r.count}" for r in meter.requests)
        readings = await ModbusDriver(bus).read(meter, 0)
        print(f"{head} ({plan.profile.name}): ok in {(time.monotonic() - started) * 1000:.0f} ms  [{requests}]")
        for reading in readings:
            print(f"    {reading.quantity:<18} {reading.value:>16.6g} {reading.unit}")
        return 0
    except DriverError as exc:
        print(f"{head}: FAILED {type(exc).__name__}: {exc}")
        return 1
    finally:
        await bus.close()


def run_read_raw(args: argparse.Namespace) -> int:
    try:
        plan = check(args)
    except UsageError as exc:
        print(f"meterlink read: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(read(plan))
