"""What polling a bus can cost at worst, and whether its meters' poll intervals allow for it.

One figure serves two readers: the agent's watchdog allows each meter its worst case before it
calls a bus stuck, and check-config warns when a bus's worst-case cycle is longer than the
shortest poll interval on it (its polls would then miss their slots).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meterlink.drivers.modbus.bus import QUIET_AFTER_FAILURE_S
from meterlink.drivers.modbus.driver import ModbusMeter

from .config_meters import ModbusMeterConfig

if TYPE_CHECKING:
    from .config import Config
    from .config_meters import BusConfig


def poll_cost_ms(bus: BusConfig, meter: Any) -> int:
    """The longest one poll of a meter can take: every request timing out on every try (and, on a
    serial Modbus bus, followed by the quiet time that lets a late answer pass)."""
    requests = len(meter.requests) if isinstance(meter, ModbusMeter) else 1
    per_request = bus.timeout * (1 + bus.retries)
    if isinstance(meter, ModbusMeter) and bus.type == "serial":
        per_request += min(bus.timeout, QUIET_AFTER_FAILURE_S)
    return int(per_request * requests * 1000)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cycle_warnings(config: Config) -> list[str]:
    """One ``buses.NAME: ...`` line per bus whose worst-case cycle exceeds its shortest poll interval."""
    out = []
    for name, bus in config.buses.items():
        meters = [mc for mc in config.enabled_meters if mc.bus == name]
        if not meters:
            continue
        built = [
            ModbusMeter(mc.id, mc.unit_id, mc.value_specs(), max_gap=mc.register_map().max_gap)
            if isinstance(mc, ModbusMeterConfig)
            else mc
            for mc in meters
        ]
        cycle_ms = sum(poll_cost_ms(bus, m) for m in built)
        shortest = min(meters, key=config.poll_interval)
        interval = config.poll_interval(shortest)
        if cycle_ms <= interval * 1000:
            continue
        requests = sum(len(m.requests) if isinstance(m, ModbusMeter) else 1 for m in built)
        quiet = ""
        if bus.type == "serial" and bus.protocol == "modbus":
            quiet = f" + {requests * min(bus.timeout, QUIET_AFTER_FAILURE_S):.1f} s quiet after failures"
        key = f"meters[{shortest.id}].poll_interval" if shortest.poll_interval else "gateway.poll_interval"
        out.append(
            f"buses.{name}: one poll cycle can take up to {cycle_ms / 1000:.1f} s "
            f"({_plural(len(meters), 'meter')}, {_plural(requests, 'request')} x {bus.timeout:g} s x "
            f"{1 + bus.retries} tries{quiet}), longer than the shortest poll interval on the bus "
            f"({interval} s, {key}): polls would miss their slots"
        )
    return out
