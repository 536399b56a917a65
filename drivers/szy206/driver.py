"""Reading one SZY206 meter: a B0H real-time query on its link, the answer as Readings."""

from __future__ import annotations

from meterlink.drivers.base import DecodeError, Reading
from meterlink.protocols.szy206 import SZY206Error, build_realtime_query, parse_flow_report
from meterlink.protocols.szy206.elements import FLOW_TYPE  # C type code 3: flow/volume pairs

from .link import Szy206Link
from .meter import Szy206Meter, report_readings


class Szy206Driver:
    """Polls SZY206 meters on one link with B0H (query real-time values).

    Args:
        link: the bus the meters sit on; it also receives their self-reports.
    """

    def __init__(self, link: Szy206Link) -> None:
        self.link = link
        self.name = link.name

    async def listen(self) -> None:
        """Keep the line open for the whole run: the meters report on their own."""
        await self.link.keep_open()

    async def read(self, meter: Szy206Meter, slot_ms: int, flags: int = 0) -> list[Reading]:
        """Query ``meter`` once (with the link's retries) and return its flow/volume readings.

        ``ts`` of every reading is the answer's arrival time, ``slot`` is ``slot_ms``. Absent
        (AAH) and invalid (FFH) values give no reading.

        Raises:
            MeterTimeout: no answer in timeout x tries.
            BadFrame: bytes arrived but no valid answer.
            DecodeError: a valid answer that is not flow/volume data of this meter's shape.
            TransportError: the port or connection is unusable.
        """
        self.link.add_meter(meter)  # its self-reports are welcome from now on
        answer = await self.link.query(build_realtime_query(meter.address, FLOW_TYPE))
        try:
            report = parse_flow_report(answer.frame)
        except SZY206Error as exc:
            raise DecodeError(f"meter {meter.id}: {exc}") from exc
        self.link.reports.note_alarm(meter, report.alarm)
        return report_readings(meter, report, answer.ts, slot_ms, flags)

    async def close(self) -> None:
        await self.link.close()
