"""SZY206 meters: B0H polling, self-reports confirmed and handed over, over serial or TCP.

Modules: ``driver`` (reading a meter), ``link`` (one bus: pipe, lock, queries, dispatch),
``receiver`` (reassembly and idle give-up), ``reports`` (self-reports handed over and confirmed),
``meter`` (its configuration and quantities), ``transport`` (pyserial and asyncio pipes). Time
labels are converted by the codec's ``protocols/szy206/times``.
"""

from .driver import Szy206Driver
from .link import SITE_UTC_OFFSET_H, Answer, LinkCounters, Szy206Link
from .meter import MAX_PAIRS, Szy206Meter, quantities
from .reports import ReportCallback, SelfReports

__all__ = [
    "MAX_PAIRS",
    "SITE_UTC_OFFSET_H",
    "Answer",
    "LinkCounters",
    "ReportCallback",
    "SelfReports",
    "Szy206Driver",
    "Szy206Link",
    "Szy206Meter",
    "quantities",
]
