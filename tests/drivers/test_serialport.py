"""Why a serial port cannot be opened, found with real files: a pty, a plain file, a missing path,
a port another process holds. (Permission denied needs another user: tests/agent/test_serial_open_errors.py.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterlink.drivers.params import SerialParams
from meterlink.drivers.serialport import diagnose
from meterlink.drivers.szy206.transport import open_transport

HOLDER = """
import sys, time, serial
port = serial.Serial(sys.argv[1], exclusive=True)
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def pty() -> Iterator[str]:
    """A pty's slave name; only its master stays open, so nothing else holds the slave."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    yield name
    os.close(master)


@pytest.fixture
def held(pty: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The pty opened exclusively (pyserial's lock) by another process: (device, its pid)."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), pty], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield pty, proc.pid
    proc.kill()
    proc.wait()


def test_a_pty_opens(pty: str) -> None:
    assert diagnose(pty) is None


def test_a_plain_file_is_not_a_tty(tmp_path: Path) -> None:
    (tmp_path / "ttyUSB0").write_text("")
    fault = diagnose(str(tmp_path / "ttyUSB0"))
    assert fault is not None and fault.kind == "not_tty"
    assert fault.text == f"{tmp_path}/ttyUSB0 is not a serial port: a regular file, not a tty"


def test_a_device_that_is_not_a_tty() -> None:
    fault = diagnose("/dev/null")
    assert fault is not None and fault.kind == "not_tty"
    assert fault.text == "/dev/null is not a serial port: a character device that is not a tty"


def test_a_missing_port_lists_the_adapters_by_id(tmp_path: Path, pty: str) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0").symlink_to(pty)
    fault = diagnose("/dev/ttyUSB7", by_id=by_id)
    assert fault is not None and fault.kind == "absent"
    assert fault.text == (
        f"/dev/ttyUSB7 does not exist right now (adapter unplugged?); plugged in now: "
        f"{by_id}/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0 (-> {pty}); name the port by id, that name "
        "survives re-plugging"
    )


def test_a_missing_port_with_no_adapter_at_all(tmp_path: Path) -> None:
    fault = diagnose("/dev/ttyUSB7", by_id=tmp_path / "no-such-folder")
    assert fault is not None and fault.kind == "absent"
    assert fault.text == (
        f"/dev/ttyUSB7 does not exist right now (adapter unplugged?); no serial adapter is "
        f"listed in {tmp_path}/no-such-folder"
    )


def test_a_port_another_process_holds_names_it(held: tuple[str, int]) -> None:
    device, pid = held
    fault = diagnose(device)
    assert fault is not None and fault.kind == "busy"
    assert fault.text.startswith(f"{device} is busy: held by process {pid} ("), fault.text
    assert "holder.py" in fault.text


def test_the_szy206_transport_says_why_it_cannot_open(tmp_path: Path) -> None:
    (tmp_path / "ttyS9").write_text("")

    async def attempt() -> str:
        with pytest.raises(OSError) as info:
            await open_transport(SerialParams(str(tmp_path / "ttyS9")), lambda data: None, lambda t, e: None, 1.0)
        return str(info.value)

    assert asyncio.run(attempt()) == f"{tmp_path}/ttyS9 is not a serial port: a regular file, not a tty"


def test_the_szy206_transport_takes_the_port_for_itself(held: tuple[str, int]) -> None:
    """Opened exclusively like a Modbus bus: a second opener is told, not given a shared line."""
    device, pid = held

    async def attempt() -> str:
        with pytest.raises(OSError) as info:
            await open_transport(SerialParams(device), lambda data: None, lambda t, e: None, 1.0)
        return str(info.value)

    assert asyncio.run(attempt()).startswith(f"{device} is busy: held by process {pid}")
