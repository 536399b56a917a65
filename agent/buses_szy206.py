"""An SZY206 bus: its link, its driver and its meters, and their quality limits.

Apart from :mod:`.buses` so that a site without an SZY206 bus never loads the SZY206 stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from meterlink.drivers.base import ReportCallback
from meterlink.drivers.szy206 import Szy206Driver, Szy206Link, Szy206Meter, quantities
from meterlink.protocols.szy206.fields import Address

from .buses import BuiltBus, bus_params
from .clock import now_ms
from .config_meters import BusConfig, PolledMeterConfig, Szy206MeterConfig
from .quality import QualityCheck

VOLUME_MAX = 9_999_999_999  # a 5-byte BCD cumulative volume
_TP_LEN = {None: None, "szy206": 5, "sl427": 7, "none": 0}


def szy206_address(text: str) -> Address:
    division, station = text.split(":")
    return Address(division=division, station=int(station))


def szy206_bus(
    name: str, cfg: BusConfig, configured: Sequence[Szy206MeterConfig], on_report: ReportCallback | None
) -> BuiltBus[Szy206Meter]:
    """SZY206 meters also report on their own: their self-reports go to ``on_report``."""
    meters = [
        Szy206Meter(mc.id, szy206_address(mc.address), mc.pairs, _TP_LEN[mc.time_label], mc.flow_unit)
        for mc in configured
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
    return BuiltBus(Szy206Driver(link), list(zip(configured, meters, strict=True)))


def szy206_quality(mc: PolledMeterConfig, meter: Szy206Meter) -> QualityCheck:
    volumes: dict[str, float | None] = {quantities(p)[1]: VOLUME_MAX for p in range(1, meter.pairs + 1)}
    return QualityCheck(mc.id, max_flow_m3h=mc.max_flow, maxima=volumes)
