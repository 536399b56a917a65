"""The quality flags a reading carries: bits in the store, lower-case names in the payload."""

from __future__ import annotations

from enum import IntFlag


class Flag(IntFlag):
    """Quality flags a reading carries to the platform (names appear in the payload)."""

    NONE = 0
    CLOCK_UNSYNCED = 1  # taken while the system clock was not synchronised (no RTC, no NTP yet)
    SUSPECT = 4  # failed a plausibility rule: an abnormal jump, a negative totalizer (agent/quality)
    METER_RESET = 8  # a totalizer dropped: meter reset or replaced, not a negative volume
    WRAPPED = 16  # a totalizer wrapped around its register range
    MANUAL = 32  # entered by a technician (meterlink manual-reading), with photo evidence
    REPLACEMENT = 64  # a registered meter change: the totalizer starts again at this value

    def names(self) -> list[str]:
        """The set flags' names as the payload spells them, in bit order."""
        return [f.name.lower() for f in Flag if f and f in self and f.name]
