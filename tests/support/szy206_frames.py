"""SZY206 values the protocol, driver and simulator tests share. Codec only: no simulator here."""

from __future__ import annotations

from meterlink.protocols.szy206 import Address, TimeLabel

DIVISION = "530381"
A13 = Address(division=DIVISION, station=13)  # 0x0D: a pty not in raw mode would turn it into 0D 0A
A14 = Address(division=DIVISION, station=14)
TP5 = TimeLabel(second=0, minute=45, hour=8, day=9, delay_min=10)  # 5 bytes: the 9th, 08:45, 10 min allowed


def address(station: int = 13) -> Address:
    return Address(division=DIVISION, station=station)
