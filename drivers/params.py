"""Where a bus is: a serial port with its line settings, or a TCP endpoint. Shared by every driver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class SerialParams:
    device: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8


@dataclass(frozen=True, slots=True)
class TcpParams:
    host: str
    port: int = 502
