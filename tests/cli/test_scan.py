"""``meterlink scan`` against the Modbus simulator over TCP and over a pty, as a technician runs it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest
from support.procs import METERLINK, SimProcess, start_sim

from meterlink.cli.main import main
from meterlink.drivers.modbus import scan
from meterlink.drivers.modbus.scan import Answer, UsageError

UNITS = ["--meter", "tuf2000:3", "--meter", "emf_generic:17", "--meter", "xintai_water_meter:200"]


@pytest.fixture
def tcp_sim() -> Iterator[SimProcess]:
    sim = start_sim("--tcp", "0", *UNITS)
    yield sim
    sim.stop()


@pytest.fixture
def pty_sim_19200() -> Iterator[SimProcess]:
    """Three meters on a line that only works at 19200 baud."""
    sim = start_sim("--pty", "--baud", "19200", *UNITS)
    yield sim
    sim.stop()


def run_scan(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*METERLINK, "scan", *argv], capture_output=True, text=True, timeout=timeout)


# -- what to try, without a bus ---------------------------------------------------------------------


def test_units_parse_as_ranges_and_lists() -> None:
    """Ranges and lists merge and sort; out-of-range and malformed parts are refused by name."""
    assert scan.parse_units("1-3,200,2", scan.SERIAL_UNITS) == [1, 2, 3, 200]
    assert scan.compact([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8"
    for text, message in [("0-5", "0 is outside 1..247"), ("5-1", "runs backwards"), ("a", "'a' is not a unit")]:
        with pytest.raises(UsageError, match=message):
            scan.parse_units(text, scan.SERIAL_UNITS)
    assert scan.parse_units("255", scan.TCP_UNITS) == [255]


def test_settings_start_at_9600_8n1_and_rates_go_outermost() -> None:
    """The default order: 9600 8N1 first, each rate's parities before the next rate."""
    settings = scan.serial_settings("/dev/x", scan.DEFAULT_BAUDRATES, scan.DEFAULT_PARITIES)
    assert [scan.setting_name(s) for s in settings[:4]] == ["9600 8N1", "9600 8E1", "9600 8O1", "19200 8N1"]
    assert len(settings) == len(scan.DEFAULT_BAUDRATES) * 3


def test_gateway_exceptions_mean_no_device_and_others_mean_one() -> None:
    """0A/0B come from a gateway for an absent unit; any other exception proves a device."""
    assert not Answer("exception", code=0x0B).present and not Answer("exception", code=0x0A).present
    assert Answer("exception", code=0x02).present and Answer("registers", registers=(0,)).present
    assert not Answer("timeout").present and not Answer("noise").present


def test_a_sweep_is_bounded_by_units_times_timeout() -> None:
    assert scan.sweep_seconds(247, 0.2) == pytest.approx(247 * 0.2 + scan.CONNECT_S)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --port DEVICE (a serial port) or --tcp HOST:PORT"),
        (["--port", "/dev/x", "--tcp", "h:1"], "one of them"),
        (["--tcp", "h:1", "--baud", "9600"], "--baud and --parity are line settings of a serial port"),
        (["--tcp", "h:99999"], "'99999' is not a TCP port"),
        (["--port", "/dev/x", "--baud", "9601"], "9601 is not a baud rate"),
        (["--port", "/dev/x", "--parity", "N,X"], "'X' is not one of N, E, O"),
        (["--port", "/dev/x", "--units", "1-300"], "300 is outside 1..247"),
        (["--port", "/dev/x", "--timeout", "0"], "give 0.01 to 10 seconds"),
        (["--port", "/dev/x", "--timeout", "soon"], "not a number of seconds"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err


def test_a_missing_port_is_one_line() -> None:
    result = run_scan("--port", "/dev/ttyNOSUCH0", "--baud", "9600", "--parity", "N")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("meterlink scan: /dev/ttyNOSUCH0")


# -- against the simulators ---------------------------------------------------------------------------


def test_tcp_finds_each_unit_and_what_it_answered(tcp_sim: SimProcess) -> None:
    """Units 3, 17 and 200 behind one endpoint; the others (the simulator answers 0B) are not devices."""
    result = run_scan("--tcp", f"127.0.0.1:{tcp_sim.tcp_port}", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [d["unit"] for d in found] == [3, 17, 200]
    assert all(d["host"] == "127.0.0.1" and d["port"] == tcp_sim.tcp_port for d in found)
    # The profiles hold registers at 0 (read by FC 03); none of them serves FC 04.
    assert all("registers" in d["fc03"] and d["fc04"]["exception"] == 1 for d in found)
    assert result.stderr.startswith(f"scanning 127.0.0.1:{tcp_sim.tcp_port}: at most 50 s (247 units x 0.2 s")


def test_tcp_plain_lines_name_unit_and_answers(tcp_sim: SimProcess) -> None:
    result = run_scan("--tcp", f"127.0.0.1:{tcp_sim.tcp_port}", "--units", "1-20")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["unit", "3"], ["unit", "17"]]
    assert "exception 01 (illegal function)" in lines[0]
    assert "tcp: 2 found" in result.stderr


def test_pty_finds_the_units_at_the_setting_that_works_and_stops_there(pty_sim_19200: SimProcess) -> None:
    """9600 finds nothing; 19200 finds all three; 4800, after it, is never tried."""
    assert pty_sim_19200.pty is not None
    units = "1-5,15-20,198-202"
    argv = ["--port", pty_sim_19200.pty, "--baud", "9600,19200,4800", "--parity", "N", "--units", units]
    result = run_scan(*argv, "--timeout", "0.1", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [(d["unit"], d["line"], d["device"]) for d in found] == [
        (u, "19200 8N1", pty_sim_19200.pty) for u in (3, 17, 200)
    ]
    assert "9600 8N1: 0 found" in result.stderr and "19200 8N1: 3 found" in result.stderr
    assert "4800" not in result.stderr.split("19200 8N1: 3 found")[1]
    assert "3 line settings" in result.stderr


def test_pty_at_a_wrong_line_setting_finds_nothing(pty_sim_19200: SimProcess) -> None:
    assert pty_sim_19200.pty is not None
    argv = ["--port", pty_sim_19200.pty, "--baud", "9600,38400", "--parity", "N", "--units", "1-20,195-205"]
    result = run_scan(*argv, "--timeout", "0.1", "--json")
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == []
    assert "9600 8N1: 0 found" in result.stderr and "38400 8N1: 0 found" in result.stderr


def test_ctrl_c_prints_what_was_found_so_far() -> None:
    """Interrupted mid-sweep (units 1 and 2 found, 245 still to ask), the scan lists what it found."""
    sim = start_sim("--pty", "--meter", "tuf2000:1", "--meter", "emf_generic:2")
    try:
        assert sim.pty is not None
        proc = subprocess.Popen(
            [*METERLINK, "scan", "--port", sim.pty, "--baud", "9600", "--parity", "N", "--timeout", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = [proc.stdout.readline(), proc.stdout.readline()]
        assert [line.split()[:2] for line in first] == [["unit", "1"], ["unit", "2"]]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        sim.stop()
    assert proc.returncode == 130, err
    assert "interrupted: 2 found so far" in err and "Traceback" not in err
    assert [line.split()[:2] for line in out.splitlines()] == [["unit", "1"], ["unit", "2"]]


def test_a_terminal_gets_a_progress_bar_and_a_pipe_plain_lines(tcp_sim: SimProcess) -> None:
    """stderr on a pty: tqdm draws a bar (carriage returns, a rate); on a pipe: no bar at all."""
    argv = [*METERLINK, "scan", "--tcp", f"127.0.0.1:{tcp_sim.tcp_port}", "--units", "1-30"]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a window tqdm can draw in
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        out, _ = proc.communicate(timeout=60)
        chunks = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child's end is closed and everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and "unit 3" in out
    assert "\r" in terminal and "unit/s" in terminal and "/30 [" in terminal
    plain = run_scan("--tcp", f"127.0.0.1:{tcp_sim.tcp_port}", "--units", "1-30")
    assert "\r" not in plain.stderr and "unit/s" not in plain.stderr
