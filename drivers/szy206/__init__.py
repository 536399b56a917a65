"""SZY206 meters: B0H polling, self-reports confirmed and handed over, over serial or TCP.

Modules: ``driver`` (reading a meter), ``link`` (one bus: pipe, lock, queries, what each event
means), ``reports`` (self-reports handed over, committed, confirmed), ``meter`` (its configuration
and quantities), ``counters`` (what a link saw), ``transport`` (pyserial and asyncio pipes),
``pump`` (runs a sans-I/O conversation from asyncio, for this link and for the agent's and the
simulators' SZY206 sides). The protocol's rules - FCB, retries, which answer ends which request,
which copy of a report to confirm - are the codec's ``protocols/szy206/conversation``; time
labels its ``times``.
"""

from meterlink.drivers.base import ReportCallback

from .counters import LinkCounters
from .driver import Szy206Driver
from .link import SITE_UTC_OFFSET_H, Answer, Szy206Link
from .meter import MAX_PAIRS, Szy206Meter, quantities
from .pump import Pump
from .reports import SelfReports

__all__ = [
    "MAX_PAIRS",
    "SITE_UTC_OFFSET_H",
    "Answer",
    "LinkCounters",
    "Pump",
    "ReportCallback",
    "SelfReports",
    "Szy206Driver",
    "Szy206Link",
    "Szy206Meter",
    "quantities",
]
