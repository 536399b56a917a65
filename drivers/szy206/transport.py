"""Byte pipes under an SZY206 link: a serial port (pyserial) or a TCP connection (asyncio).

Both push what arrives to ``on_data(bytes)`` from the event loop and report the end of the pipe
once through ``on_lost(transport, error)``; ``write`` sends a whole frame at once. They know
nothing of frames.

- Serial: pyserial opens and configures the port (baud rate, parity, raw mode) and always opens it
  non-blocking; the event loop watches its fd (``loop.add_reader``) and the reads are plain
  ``os.read`` calls, so no thread and no pyserial-asyncio. A frame is at most a few hundred bytes,
  which fits a tty's output buffer, so it is written directly; a short write is an error.
  EIO or end of file on read (the other end of a pty went away, a USB adapter was pulled) ends
  the pipe.
- TCP: an asyncio Protocol; the meter is the server, the agent connects. asyncio sets
  TCP_NODELAY, so a small frame leaves at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Protocol

import serial

from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.drivers.serialport import diagnose

DataCallback = Callable[[bytes], None]
LostCallback = Callable[["Transport", "Exception | None"], None]


class Transport(Protocol):
    """What a link needs from its pipe."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port (RS-485 adapter, or a pty in tests) watched by the event loop."""

    def __init__(self, port: serial.Serial, on_data: DataCallback, on_lost: LostCallback) -> None:
        self._port = port
        self._fd = port.fileno()
        self._on_data = on_data
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)
        self._closed = False

    @classmethod
    def open(cls, params: SerialParams, on_data: DataCallback, on_lost: LostCallback) -> SerialTransport:
        """Open and configure the port.

        Raises:
            serial.SerialException: the device is missing, held by another program (the port is
                locked exclusively, as a Modbus bus locks it), or cannot be configured.
        """
        port = serial.Serial(
            port=params.device,
            baudrate=params.baudrate,
            parity=params.parity,
            stopbits=params.stopbits,
            bytesize=params.bytesize,
            timeout=0,
            write_timeout=0,
            exclusive=True,
        )
        try:
            return cls(port, on_data, on_lost)
        except BaseException:
            port.close()
            raise

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the other end is gone
            self._lose(exc)
            return
        if not data:
            self._lose(None)
            return
        self._on_data(data)

    def _lose(self, error: Exception | None) -> None:
        if self._closed:
            return
        self.close()
        self._on_lost(self, error)

    def write(self, data: bytes) -> None:
        """Write one frame.

        Raises:
            OSError: the port is closed, gone, or took only part of the frame.
        """
        if self._closed:
            raise OSError("serial port is closed")
        try:
            written = self._port.write(data)
        except serial.SerialException as exc:
            raise OSError(str(exc)) from exc
        if written != len(data):
            raise OSError(f"serial port took {written} of {len(data)} bytes")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._port.close()


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, on_data: DataCallback) -> None:
        self.on_data = on_data
        self.owner: TcpTransport | None = None

    def data_received(self, data: bytes) -> None:
        self.on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner is not None:
            self.owner.lost(exc)


class TcpTransport:
    """A TCP connection to a meter (or to a serial server in front of one)."""

    def __init__(self, transport: asyncio.Transport, on_lost: LostCallback) -> None:
        self._transport = transport
        self._on_lost = on_lost
        self._closed = False

    @classmethod
    async def open(
        cls, params: TcpParams, on_data: DataCallback, on_lost: LostCallback, timeout: float
    ) -> TcpTransport:
        """Connect within ``timeout`` seconds.

        Raises:
            OSError: refused, unreachable, or ``TimeoutError`` (an OSError) after ``timeout``.
        """
        loop = asyncio.get_running_loop()
        protocol = _TcpProtocol(on_data)
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(lambda: protocol, params.host, params.port)
        assert isinstance(transport, asyncio.Transport)
        owner = cls(transport, on_lost)
        protocol.owner = owner
        return owner

    def lost(self, error: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_lost(self, error)

    def write(self, data: bytes) -> None:
        """Queue one frame for sending.

        Raises:
            OSError: the connection is closed or closing.
        """
        if self._closed or self._transport.is_closing():
            raise OSError("connection is closed")
        self._transport.write(data)

    def close(self) -> None:
        self._closed = True
        self._transport.close()


async def open_transport(
    params: SerialParams | TcpParams, on_data: DataCallback, on_lost: LostCallback, timeout: float
) -> SerialTransport | TcpTransport:
    """Open the pipe ``params`` names.

    Raises:
        OSError: it cannot be opened; for a serial port, the message says why (see serialport.py).
    """
    if isinstance(params, SerialParams):
        try:
            return SerialTransport.open(params, on_data, on_lost)
        except serial.SerialException as exc:
            fault = diagnose(params.device)
            raise OSError(fault.text if fault else str(exc)) from exc
    return await TcpTransport.open(params, on_data, on_lost, timeout)
