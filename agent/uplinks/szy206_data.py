"""The data area the site terminal reports: each position's flow/volume pair, alarm and status words.

For each ``szy206_position`` 1..N, the flow and volume of the meter at that position (AA-filled,
"absent", where a position has no meter or the meter no value), then the alarm word (the
flow-meter-fault bit when a meter with no value is failing its polls) and the status word
(D1-D0 = 1: self-report with confirm). A report slot carries what was polled for that slot; a
real-time query the newest values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from meterlink.protocols.szy206 import AlarmBit, encode_flow_data

from ..latest import LatestValues

STATUS_SELF_REPORT = 1  # status word D1-D0: self-report with confirm


class ReportData:
    """Builds the C0H/B0H data area from the latest values.

    Args:
        positions: position -> meter id.
        latest: the values the pollers keep.
        interval_ms: the report interval (which poll belongs to a slot).
        failing: whether a meter is failing its polls now; only then does a missing value raise
            the flow-meter-fault alarm (a meter not polled yet is no faulty one).
    """

    def __init__(
        self,
        positions: Mapping[int, str],
        latest: LatestValues,
        interval_ms: int,
        failing: Callable[[str], bool],
    ) -> None:
        self.positions = positions
        self.latest = latest
        self.interval_ms = interval_ms
        self.failing = failing

    def area(self, slot: int | None = None) -> bytes:
        """The data area of report slot ``slot``, or of a real-time answer (None): pairs in
        position order, then alarm and status words."""
        count = max(self.positions) if self.positions else 0
        pairs: list[tuple[float | None, int | None]] = []
        fault = False
        for position in range(1, count + 1):
            meter = self.positions.get(position)
            flow = self._value(meter, "flow_rate", slot) if meter else None
            volume = self._value(meter, "volume_total", slot) if meter else None
            if meter and flow is None and volume is None and self.failing(meter):
                fault = True
            pairs.append((fit_flow(flow), fit_volume(volume)))
        alarm = int(AlarmBit.FLOW_METER_FAULT) if fault else 0
        return encode_flow_data(pairs, alarm, STATUS_SELF_REPORT)

    def _value(self, meter: str, quantity: str, slot: int | None) -> float | None:
        if slot is None:  # a real-time query: the newest value
            latest = self.latest.get(meter, quantity)
        else:  # a report slot: what was polled for it, never a later poll's value nor a stale one
            latest = self.latest.at(meter, quantity, slot, self.interval_ms)
        return None if latest is None else latest.value


def fit_flow(value: float | None) -> float | None:
    """A flow the 5-byte field can carry (3 decimals, |x| <= 999999.999), else absent."""
    if value is None or not abs(value) <= 999_999.999:
        return None
    return round(value, 3)


def fit_volume(value: float | None) -> int | None:
    """Cumulative volume is a whole number of m3 in SZY206; negative cannot be sent."""
    if value is None or value < 0 or value > 9_999_999_999:
        return None
    return int(value)
