"""The elements an SL651 report carries: each mapped meter's flow and accumulated volume.

Per meter, in the order of ``[uplink.sl651.meters]``, its flow element then its volume element,
each with the identifier and data definition configured, in the unit the centre expects (the
agent's readings are m3/h and m3). A value that is missing, or that its data definition cannot
hold, is sent as the standard's invalid value (all FFH) rather than left out, so a report always
has the same elements. A report slot carries what was polled for that slot; a real-time query
(37H) the newest values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from meterlink.protocols.sl651 import Element, EncodeError
from meterlink.protocols.sl651.messages import number_element
from meterlink.protocols.sl651.values import decode_number, split_definition

from ..latest import LatestValues
from .sl651_config import FLOW_UNITS, READING_UNITS, VOLUME_UNITS, ElementMap, MeterElements, unit_of

log = logging.getLogger("meterlink.sl651")

Quantity = Literal["flow_rate", "volume_total"]


def convert(value: float, reading_unit: str, quantity: Quantity, to: str) -> float | None:
    """``value`` in ``reading_unit`` (the agent's unit for ``quantity``) as ``to``; None if unknown."""
    if reading_unit != READING_UNITS[quantity]:
        return None
    table = FLOW_UNITS if quantity == "flow_rate" else VOLUME_UNITS
    return value * table[to]


def element_of(element: ElementMap, value: float | None) -> Element:
    """``value`` as ``element``'s identifier and definition; invalid (all FFH) when it cannot be held."""
    definition = element.definition_byte
    try:
        return number_element(element.ident, value, definition)
    except EncodeError:
        return number_element(element.ident, None, definition)


def element_value(element: Element) -> float | int | None:
    """The number an element kept in a report holds (None: invalid)."""
    if element.definition is None:
        return None
    return decode_number(element.data, split_definition(element.definition)[1])


class ReportElements:
    """Builds a report's elements from the latest values.

    Args:
        meters: meter id -> its element map.
        latest: the values the pollers keep.
    """

    def __init__(self, meters: Mapping[str, MeterElements], latest: LatestValues) -> None:
        self.meters = meters
        self.latest = latest
        self._unit_warned: set[tuple[str, str]] = set()

    def elements(self, slot: int | None = None, window_ms: int = 0) -> list[Element]:
        """The elements of the report for ``slot`` (values polled in (slot - window_ms, slot]), or
        of a real-time answer (None: the newest values)."""
        out = []
        for meter, mapped in self.meters.items():
            if mapped.flow is not None:
                out.append(element_of(mapped.flow, self._value(meter, "flow_rate", mapped.flow, slot, window_ms)))
            if mapped.volume is not None:
                out.append(
                    element_of(mapped.volume, self._value(meter, "volume_total", mapped.volume, slot, window_ms))
                )
        return out

    def _value(
        self, meter: str, quantity: Quantity, element: ElementMap, slot: int | None, window: int
    ) -> float | None:
        # A slot's report: what was polled for that slot, never a later poll's value nor a stale one.
        reading = self.latest.get(meter, quantity) if slot is None else self.latest.at(meter, quantity, slot, window)
        if reading is None:
            return None
        value = convert(reading.value, reading.unit, quantity, unit_of(element, quantity))
        if value is None and (meter, reading.unit) not in self._unit_warned:
            self._unit_warned.add((meter, reading.unit))
            log.warning("event=sl651_unit_unknown meter=%s quantity=%s unit=%r", meter, quantity, reading.unit)
        return value
