"""``meterlink scan``: find the Modbus devices on a serial port or behind a TCP endpoint.

Found devices go to stdout as they answer (``--json``: one array at the end); what the scan is
doing goes to stderr: a progress bar on a terminal (tqdm), plain lines otherwise. Ctrl-C stops the
sweep and still prints what was found. Exit 0 when something answered, 1 when nothing did, 2 for a
bad option, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
from dataclasses import dataclass
from typing import Any

from meterlink.drivers.base import TransportError
from meterlink.drivers.modbus import scan
from meterlink.drivers.modbus.scan import Answer, Found, UsageError, Where
from meterlink.drivers.params import SerialParams, TcpParams, describe


@dataclass(frozen=True, slots=True)
class Plan:
    """The checked options: the settings to try in order, the units, the timeout."""

    settings: list[Where]
    units: list[int]
    timeout: float
    as_json: bool


def tcp_endpoint(text: str) -> TcpParams:
    """``HOST:PORT`` (port 502 when left out).

    Raises:
        UsageError: an empty host or a bad port.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "502"
    if not host:
        raise UsageError(f"--tcp {text}: give HOST:PORT")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise UsageError(f"--tcp {text}: {port_text!r} is not a TCP port (1..65535)")
    return TcpParams(host.strip("[]"), int(port_text))


def timeout_of(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--timeout {text}: not a number of seconds") from None
    if not (math.isfinite(value) and 0.01 <= value <= 10):
        raise UsageError(f"--timeout {text}: give 0.01 to 10 seconds")
    return value


def baudrates_of(text: str) -> list[int]:
    from meterlink.agent.config_meters import BAUDRATES

    rates = parse_int_list(text, "--baud")
    if bad := [b for b in rates if b not in BAUDRATES]:
        raise UsageError(f"--baud {text}: {bad[0]} is not a baud rate (one of {', '.join(map(str, BAUDRATES))})")
    return rates


def parse_int_list(text: str, option: str) -> list[int]:
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items):
        raise UsageError(f"{option} {text}: give numbers separated by commas")
    return list(dict.fromkeys(int(item) for item in items))


def plan_of(args: argparse.Namespace) -> Plan:
    """Check the options.

    Raises:
        UsageError: the first thing wrong, in one line.
    """
    if (args.port is None) == (args.tcp is None):
        raise UsageError("give --port DEVICE (a serial port) or --tcp HOST:PORT, one of them")
    timeout = timeout_of(args.timeout)
    settings: list[Where]
    if args.tcp is not None:
        if args.baud is not None or args.parity is not None:
            raise UsageError("--baud and --parity are line settings of a serial port, not of --tcp")
        settings = [tcp_endpoint(args.tcp)]
        allowed = scan.TCP_UNITS
    else:
        rates = baudrates_of(args.baud) if args.baud is not None else list(scan.DEFAULT_BAUDRATES)
        parities = scan.parse_list(args.parity or ",".join(scan.DEFAULT_PARITIES), "--parity", "NEO")
        settings = list(scan.serial_settings(args.port, rates, parities))
        allowed = scan.SERIAL_UNITS
    units = scan.parse_units(args.units or "1-247", allowed)
    return Plan(settings, units, timeout, args.json)


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def announce(plan: Plan) -> str:
    """What the scan will do and how long it may take, said before it starts."""
    per_setting = scan.sweep_seconds(len(plan.units), plan.timeout)
    bound = f"at most {duration(per_setting)} ({len(plan.units)} units x {plan.timeout:g} s when none answers)"
    first = plan.settings[0]
    if len(plan.settings) == 1:
        return f"scanning {describe(first)}: {bound}"
    where = first.device if isinstance(first, SerialParams) else describe(first)
    return (
        f"scanning {where}: {len(plan.settings)} line settings from {scan.setting_name(first)}, {bound} each, "
        f"{duration(per_setting * len(plan.settings))} in all; stops after the first setting at which a device answers"
    )


class Display:
    """Where the scan's progress goes: a tqdm bar on a terminal, plain lines on stderr otherwise."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.found: list[Found] = []
        self.garbled = 0
        self._bar: Any = None
        self._fancy = sys.stderr.isatty()

    def start(self, where: Where) -> None:
        self.garbled = 0
        if self._fancy:
            from tqdm import tqdm

            self._bar = tqdm(total=len(self.plan.units), desc=scan.setting_name(where), unit="unit", leave=False)
        else:
            print(f"trying {describe(where)}: units {scan.compact(self.plan.units)}", file=sys.stderr, flush=True)

    def unit(self, unit: int, answer: Answer, device: Found | None) -> None:
        self.garbled += answer.kind == "noise"
        if device is not None:
            self.found.append(device)
            if not self.plan.as_json:
                self._out(device.line())
        if self._bar is not None:
            self._bar.update(1)

    def end(self, where: Where, found: int) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        noise = f", {self.garbled} garbled answers (a device at another line setting?)" if self.garbled else ""
        print(f"{scan.setting_name(where)}: {found} found{noise}", file=sys.stderr, flush=True)

    def _out(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


async def sweep_all(plan: Plan, display: Display) -> bool:
    """Try each setting until one answers; True when Ctrl-C stopped it (what was found is kept)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        for where in plan.settings:
            display.start(where)
            try:
                found = await scan.sweep(where, plan.units, plan.timeout, display.unit)
            except scan.LineRefused as exc:
                display.close()
                print(f"skipped: {exc}", file=sys.stderr, flush=True)
                continue
            display.end(where, len(found))
            if found:
                break
    except asyncio.CancelledError:
        return True
    finally:
        display.close()
        loop.remove_signal_handler(signal.SIGINT)
    return False


def run_scan(args: argparse.Namespace) -> int:
    try:
        plan = plan_of(args)
    except UsageError as exc:
        print(f"meterlink scan: {exc}", file=sys.stderr)
        return 2
    print(announce(plan), file=sys.stderr, flush=True)
    display = Display(plan)
    try:
        interrupted = asyncio.run(sweep_all(plan, display))
    except TransportError as exc:
        print(f"meterlink scan: {exc}", file=sys.stderr)
        return 1
    if interrupted:
        print(f"interrupted: {len(display.found)} found so far", file=sys.stderr)
        if not plan.as_json:
            for device in display.found:
                print(device.line())
    if plan.as_json:
        print(json.dumps([d.to_json() for d in display.found]))
    elif not display.found and not interrupted:
        print("no device answered", file=sys.stderr)
    if interrupted:
        return 130
    return 0 if display.found else 1
