"""Commissioning tools for a technician on site: read meters once, list profiles (status: agent/status.py)."""

from __future__ import annotations

import time
from pathlib import Path

from meterlink.drivers.base import DriverError
from meterlink.drivers.modbus import profiles
from meterlink.drivers.params import describe

from . import config as cfgmod
from .buses import build_bus, bus_params
from .clock import now_ms
from .config_meters import PolledMeterConfig, Szy206MeterConfig
from .errors import MeterlinkError


def at(mc: PolledMeterConfig) -> str:
    return f"address {mc.address}" if isinstance(mc, Szy206MeterConfig) else f"unit {mc.unit_id}"


async def read_once(config_path: Path, only: list[str] | None) -> int:
    """Poll each meter once and print what it says. Exit 1 if any meter failed."""
    config = cfgmod.load(config_path)
    wanted = [m for m in config.meters if not only or m.id in only]
    if only and (unknown := set(only) - {m.id for m in config.meters}):
        raise MeterlinkError(f"no meter {', '.join(sorted(unknown))} in {config_path}")
    failed = 0
    for bus_name, bus_cfg in config.buses.items():
        meters = [m for m in wanted if m.bus == bus_name]
        if not meters:
            continue
        driver, built = build_bus(bus_name, bus_cfg, meters)
        print(f"bus {bus_name} ({describe(bus_params(bus_cfg))})")
        try:
            for mc, meter in built:
                if isinstance(mc, Szy206MeterConfig):
                    plan = f"B0H to {mc.address}"
                else:
                    plan = ", ".join(f"fc{r.function:02d} {r.address}+{r.count}" for r in meter.requests)
                started = time.monotonic()
                try:
                    readings = await driver.read(meter, now_ms())
                except DriverError as exc:
                    failed += 1
                    print(f"  {mc.id} {at(mc)}: FAILED {type(exc).__name__}: {exc}  [{plan}]")
                    continue
                ms = (time.monotonic() - started) * 1000
                print(f"  {mc.id} {at(mc)}: ok in {ms:.0f} ms  [{plan}]")
                for r in readings:
                    print(f"    {r.quantity:<18} {r.value:>16.6g} {r.unit}")
        finally:
            await driver.close()
    return 1 if failed else 0


def show_profiles(name: str | None) -> int:
    if name is None:
        for n in profiles.names():
            print(f"{n:<20} {profiles.load(n).title}")
        return 0
    try:
        profile = profiles.load(name)
    except KeyError:
        raise MeterlinkError(f"no profile {name!r}; built-in: {', '.join(profiles.names())}") from None
    s = profile.serial
    print(f"{profile.name}: {profile.title}")
    print(
        f"function {profile.function:02d}, numbering {profile.numbering}, serial {s.baudrate} "
        f"{s.bytesize}{s.parity}{s.stopbits}"
    )
    for reg in profile.registers:
        extra = ""
        if reg.fraction:
            extra += f" + fraction @{reg.fraction.address} {reg.fraction.type}"
        if reg.high:
            extra += f" + high @{reg.high.address} x{reg.high.multiplier:g}"
        if reg.decimals_register is not None:
            extra += f" / 10^reg{reg.decimals_register}"
        print(f"  {reg.quantity:<18} @{reg.address:<5} {reg.type:<8} {reg.word_order}{extra}  {reg.unit}")
    for note in profile.notes:
        print(f"  note: {note}")
    return 0
