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


def describe(params: SerialParams | TcpParams) -> str:
    """A bus's place as a technician reads it: ``/dev/ttyUSB0 9600 8N1`` or ``10.0.0.5:502``."""
    if isinstance(params, SerialParams):
        return f"{params.device} {params.baudrate} {params.bytesize}{params.parity}{params.stopbits}"
    return f"{params.host}:{params.port}"
