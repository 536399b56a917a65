"""An SZY206 flowmeter as the agent configures it, and its flow/volume pairs as Readings.

Quantities: pair 1 gives ``flow_rate`` and ``volume_total``; pair k > 1 gives ``flow_rate_k`` and
``volume_total_k``, so a one-pair meter reads like a Modbus flowmeter and a multi-channel RTU keeps
one meter id. Flow keeps the meter's unit (``flow_unit``, the SZY206 frame does not say it);
volume is in m3. An absent value (AAH fill: the meter does not measure it) gives no reading; an
invalid one (FFH fill, non-BCD digits) gives no reading either and is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from meterlink.drivers.base import DecodeError, Reading
from meterlink.protocols.szy206 import INVALID, Address, FlowReport

log = logging.getLogger("meterlink.szy206")

MAX_PAIRS = 23
"""Flow/volume pairs that fit one frame: L <= 255 with C, A, AFN, alarm/status and a 7-byte Tp."""

FLOW_UNITS = ("m3/h", "m3/s")
VOLUME_UNIT = "m3"


@dataclass(frozen=True, slots=True)
class Szy206Meter:
    """One SZY206 terminal (flowmeter or RTU) on a link.

    Args:
        id: the meter id readings carry.
        address: its division code and station number.
        pairs: flow/volume pairs it reports (channels), 1..23.
        tp_len: the Tp edition it sends (0 none, 5 SZY206-2016, 7 SL/T 427); None to take
            whatever each frame carries. A frame with another Tp length is still used, and logged.
        flow_unit: the unit of its flow values, ``m3/h`` or ``m3/s``.

    Raises:
        ValueError: a field out of range.
    """

    id: str
    address: Address
    pairs: int = 1
    tp_len: int | None = None
    flow_unit: str = "m3/h"

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a meter needs an id")
        if not 1 <= self.pairs <= MAX_PAIRS:
            raise ValueError(f"pairs must be 1..{MAX_PAIRS}, got {self.pairs}")
        if self.tp_len not in (None, 0, 5, 7):
            raise ValueError(f"tp_len must be None, 0, 5 or 7, got {self.tp_len}")
        if self.flow_unit not in FLOW_UNITS:
            raise ValueError(f"flow_unit must be one of {', '.join(FLOW_UNITS)}, got {self.flow_unit!r}")


def quantities(pair: int) -> tuple[str, str]:
    """The (flow, volume) quantity names of pair ``pair`` (1-based)."""
    if pair == 1:
        return "flow_rate", "volume_total"
    return f"flow_rate_{pair}", f"volume_total_{pair}"


def address_text(address: Address) -> str:
    """``530381:13``: how logs and the simulator name a terminal."""
    return f"{address.division}:{address.station}"


def report_readings(meter: Szy206Meter, report: FlowReport, ts: int, slot: int, flags: int = 0) -> list[Reading]:
    """The readings of one B0H answer or C0H/81H/82H report of ``meter``.

    Raises:
        DecodeError: the frame carries fewer pairs than the meter is configured with.
    """
    if len(report.meters) < meter.pairs:
        raise DecodeError(f"meter {meter.id}: {len(report.meters)} flow/volume pairs, configured {meter.pairs}")
    if len(report.meters) > meter.pairs:
        log.debug("event=szy206_extra_pairs meter=%s pairs=%d configured=%d", meter.id, len(report.meters), meter.pairs)
    readings = []
    for pair, (flow, volume) in enumerate(report.meters[: meter.pairs], start=1):
        flow_name, volume_name = quantities(pair)
        for name, value, unit in ((flow_name, flow, meter.flow_unit), (volume_name, volume, VOLUME_UNIT)):
            if value is None:
                continue  # AAH: the meter does not measure it
            if value is INVALID:
                log.warning("event=szy206_invalid_value meter=%s quantity=%s", meter.id, name)
                continue
            readings.append(Reading(meter.id, name, float(value), unit, ts, slot, flags))
    return readings
