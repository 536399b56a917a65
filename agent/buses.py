"""The drivers a config asks for: one registry from a bus's protocol to what builds its driver.

Every polled meter sits on a bus, and the bus's ``protocol`` says which kind of meter it is and so
which driver reads it. :data:`DRIVERS` maps that kind to a factory that makes the driver of one bus
and the meters it reads, typed together (:class:`BuiltBus`): a ``Driver[ModbusMeter]`` is only ever
handed ``ModbusMeter``s. A new protocol adds one factory here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from meterlink.drivers.base import Driver, ReportCallback
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.params import SerialParams, TcpParams

from .clock import now_ms
from .config_meters import BusConfig, MeterConfig, ModbusMeterConfig, PolledMeterConfig, Szy206MeterConfig
from .quality import QualityCheck

if TYPE_CHECKING:
    from meterlink.drivers.szy206 import Szy206Meter

M = TypeVar("M")
K = TypeVar("K", ModbusMeterConfig, Szy206MeterConfig)


class BuiltBus(NamedTuple, Generic[M]):
    """A bus's driver and its meters, each with the config it was made from."""

    driver: Driver[M]
    meters: list[tuple[PolledMeterConfig, M]]


BusFactory = Callable[[str, BusConfig, Sequence[MeterConfig], ReportCallback | None], BuiltBus[Any]]


def bus_params(cfg: BusConfig) -> SerialParams | TcpParams:
    if cfg.type == "serial":
        return SerialParams(cfg.device, cfg.baudrate, cfg.parity, cfg.stopbits, cfg.bytesize)
    return TcpParams(cfg.host, cfg.port)


def make_bus(name: str, cfg: BusConfig) -> ModbusBus:
    return ModbusBus(name, bus_params(cfg), timeout=cfg.timeout, retries=cfg.retries)


def meter_from_config(mc: ModbusMeterConfig) -> ModbusMeter:
    return ModbusMeter(mc.id, mc.unit_id, mc.value_specs(), max_gap=mc.register_map().max_gap)


def _of_kind(kind: type[K], bus: str, configured: Sequence[MeterConfig]) -> list[K]:
    """The bus's meters as the kind its protocol reads (the config has checked each against its bus)."""
    if wrong := [mc.id for mc in configured if not isinstance(mc, kind)]:
        raise TypeError(f"bus {bus}: {', '.join(wrong)} not a {kind.__name__}")
    return [mc for mc in configured if isinstance(mc, kind)]


def _modbus_bus(
    name: str, cfg: BusConfig, configured: Sequence[MeterConfig], _on_report: ReportCallback | None
) -> BuiltBus[ModbusMeter]:
    meters = _of_kind(ModbusMeterConfig, name, configured)
    return BuiltBus(ModbusDriver(make_bus(name, cfg), now_ms), [(mc, meter_from_config(mc)) for mc in meters])


def _szy206_bus(
    name: str, cfg: BusConfig, configured: Sequence[MeterConfig], on_report: ReportCallback | None
) -> BuiltBus[Szy206Meter]:
    from .buses_szy206 import szy206_bus  # the SZY206 stack is loaded only for a site that has such a bus

    return szy206_bus(name, cfg, _of_kind(Szy206MeterConfig, name, configured), on_report)


DRIVERS: dict[str, BusFactory] = {"modbus": _modbus_bus, "szy206": _szy206_bus}


def build_bus(
    name: str, bus_cfg: BusConfig, configured: Sequence[MeterConfig], *, on_report: ReportCallback | None = None
) -> BuiltBus[Any]:
    """A bus's driver and its meters, by the bus's protocol (:data:`DRIVERS`)."""
    return DRIVERS[bus_cfg.protocol](name, bus_cfg, configured, on_report)


def quality_check(mc: PolledMeterConfig, meter: ModbusMeter | Szy206Meter) -> QualityCheck:
    if isinstance(meter, ModbusMeter):
        return QualityCheck(mc.id, meter.specs, mc.max_flow)  # specs: the config's value_specs()
    from .buses_szy206 import szy206_quality

    return szy206_quality(mc, meter)
