"""The drivers a config asks for: one registry from a bus's protocol to what builds its driver.

Every polled meter sits on a bus, and the bus's ``protocol`` says which kind of meter it is and so
which driver reads it. :data:`DRIVERS` maps that kind to a factory that makes the driver of one bus
and the meters it reads, typed together (:class:`BuiltBus`): a ``Driver[ModbusMeter]`` is only ever
handed ``ModbusMeter``s. A new protocol adds one factory here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from meterlink.drivers.base import Driver
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.drivers.szy206 import ReportCallback, Szy206Driver, Szy206Link, Szy206Meter
from meterlink.drivers.szy206 import quantities as szy206_quantities
from meterlink.protocols.szy206.fields import Address

from .clock import now_ms
from .config_meters import BusConfig, MeterConfig, ModbusMeterConfig, PolledMeterConfig, Szy206MeterConfig
from .quality import QualityCheck

SZY206_VOLUME_MAX = 9_999_999_999  # a 5-byte BCD cumulative volume

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


def szy206_address(text: str) -> Address:
    division, station = text.split(":")
    return Address(division=division, station=int(station))


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


_TP_LEN = {None: None, "szy206": 5, "sl427": 7, "none": 0}


def _szy206_bus(
    name: str, cfg: BusConfig, configured: Sequence[MeterConfig], on_report: ReportCallback | None
) -> BuiltBus[Szy206Meter]:
    """SZY206 meters also report on their own: their self-reports go to ``on_report``."""
    szy206 = _of_kind(Szy206MeterConfig, name, configured)
    meters = [
        Szy206Meter(mc.id, szy206_address(mc.address), mc.pairs, _TP_LEN[mc.time_label], mc.flow_unit) for mc in szy206
    ]
    link = Szy206Link(
        name,
        bus_params(cfg),
        timeout=cfg.timeout,
        retries=min(cfg.retries, 3),
        meters=meters,
        on_report=on_report,
        clock=now_ms,
    )
    return BuiltBus(Szy206Driver(link), list(zip(szy206, meters, strict=True)))


DRIVERS: dict[str, BusFactory] = {"modbus": _modbus_bus, "szy206": _szy206_bus}


def build_bus(
    name: str, bus_cfg: BusConfig, configured: Sequence[MeterConfig], *, on_report: ReportCallback | None = None
) -> BuiltBus[Any]:
    """A bus's driver and its meters, by the bus's protocol (:data:`DRIVERS`)."""
    return DRIVERS[bus_cfg.protocol](name, bus_cfg, configured, on_report)


def quality_check(mc: PolledMeterConfig, meter: ModbusMeter | Szy206Meter) -> QualityCheck:
    if isinstance(meter, Szy206Meter):
        volumes: dict[str, float | None] = {
            szy206_quantities(p)[1]: SZY206_VOLUME_MAX for p in range(1, meter.pairs + 1)
        }
        return QualityCheck(mc.id, max_flow_m3h=mc.max_flow, maxima=volumes)
    return QualityCheck(mc.id, meter.specs, mc.max_flow)  # specs: the config's value_specs()
