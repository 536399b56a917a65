"""Who answers where: one meter per address of an endpoint, one bus per serial port.

Two meters with one unit id on one TCP endpoint read the same device, and the store would keep its
values twice under two names; a second bus on a serial port never opens, because the first holds it.
So an endpoint (a serial device, or a host and port) with its address (a Modbus unit id, an SZY206
``DIVISION:STATION``) names one meter only, whichever ``[buses.*]`` the meters are listed under.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .config_meters import BusConfig, ManualMeterConfig, MeterConfig, Szy206MeterConfig


def _printable(text: str) -> str:
    return text if text.isprintable() else repr(text)


def _port(device: str) -> str:
    """One name per serial port: a /dev/serial/by-id link and the tty it points to are one port."""
    try:
        return os.path.realpath(device)
    except (OSError, ValueError):  # a NUL in the name: the name is all there is
        return device


def endpoint(bus: BusConfig) -> tuple[str, str]:
    """What a bus talks to: ``("serial", port)`` or ``("tcp", "host:port")``."""
    if bus.type == "serial":
        return ("serial", _port(bus.device or ""))
    return ("tcp", f"{(bus.host or '').lower()}:{bus.port}")


def place(bus: BusConfig) -> str:
    """The endpoint as the technician wrote it."""
    return _printable(bus.device or "") if bus.type == "serial" else f"{bus.host}:{bus.port}"


def conflicts(buses: Mapping[str, BusConfig], meters: Sequence[MeterConfig]) -> list[str]:
    """One ``path.to.key: reason`` line per bus or meter that another already holds; empty if none.

    Meters naming a bus that does not exist are left to the caller's own check.
    """
    lines = []
    port_owner: dict[str, str] = {}
    for name, bus in buses.items():
        if bus.type != "serial":
            continue
        port = _port(bus.device or "")
        if port in port_owner:
            lines.append(
                f"buses.{name}.device: {place(bus)} is already the device of bus {port_owner[port]} "
                "(one port is one bus: put the meters of both on one bus)"
            )
        else:
            port_owner[port] = name
    holder: dict[tuple[tuple[str, str], str], MeterConfig] = {}
    for meter in meters:
        if isinstance(meter, ManualMeterConfig) or (on := buses.get(meter.bus)) is None:
            continue
        address = f"address: {meter.address}" if isinstance(meter, Szy206MeterConfig) else f"unit_id: {meter.unit_id}"
        first = holder.setdefault((endpoint(on), address), meter)
        if first is meter:
            continue
        where = f"on bus {meter.bus}" if first.bus == meter.bus else f"at {place(on)} (bus {first.bus})"
        lines.append(f"meters[{meter.id}].{address} is already used by {first.id} {where}")
    return lines
