"""``meterlink read`` without a config: raw registers in four word orders, or a profile's values."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from support.procs import METERLINK, SimProcess, start_sim

from meterlink.cli.main import main
from meterlink.cli.read_raw import pair_lines, register_lines
from meterlink.protocols.modbus.registers import DataType, WordOrder, encode

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
SIM_METERS = ["--meter", "tuf2000:3", "--meter", "emf_generic:17"]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    """tuf2000 at unit 3 over TCP, and emf_generic at 17 on a pty that only works at 19200 baud.
    Values are nearly frozen (speed 1e-6), so two reads a moment apart agree."""
    proc = start_sim("--tcp", "0", "--pty", "--baud", "19200", "--speed", "0.000001", *SIM_METERS)
    yield proc
    proc.stop()


def read(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*METERLINK, "read", *argv], capture_output=True, text=True, timeout=60)


def columns(lines: list[str], label: str, dtype: str) -> dict[str, str]:
    """The four word orders' cells of one row of the pair table (``0-1``, ``float32``)."""
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [label])
    for line in lines[start : start + 3]:
        tokens = line.split()
        if dtype in tokens[:2]:
            return dict(zip(ORDERS, tokens[-4:], strict=True))
    raise AssertionError(f"no row {label} {dtype}")


def test_each_order_decodes_its_own_encoding() -> None:
    """A value written in one word order reads back in that order's column and no other."""
    for order in WordOrder:
        registers = [0, *encode(12.5, DataType.FLOAT32, order), *encode(-5, DataType.INT32, order)]
        lines = pair_lines(100, registers)
        assert lines[0].split() == ["registers", "type", *ORDERS]
        floats = columns(lines, "101-102", "float32")
        assert [o for o, v in floats.items() if v == "12.5"] == [order.value]
        ints = columns(lines, "103-104", "int32")
        assert [o for o, v in ints.items() if v == "-5"] == [order.value]


def test_register_rows_show_unsigned_signed_and_hex() -> None:
    assert register_lines(7, [0xFFFE])[1].split() == ["7", "65534", "-2", "0xFFFE"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-c", "site.toml", "--port", "/dev/x"], "-c reads the config's meters; --port reads one unit"),
        (["--meter", "m1"], "--meter picks meters of a config: give -c FILE"),
        ([], "give -c FILE, or --port DEVICE or --tcp HOST:PORT with --unit N"),
        (["--tcp", "h:502", "--registers", "0:2"], "--unit: give the unit id"),
        (["--tcp", "h:502", "--unit", "x", "--registers", "0:2"], "--unit x: not a unit id"),
        (["--port", "/dev/x", "--unit", "300", "--registers", "0:2"], "--unit 300: outside 1..247"),
        (["--tcp", "h:502", "--unit", "1"], "give --profile NAME (its values) or --registers START:COUNT"),
        (["--tcp", "h:502", "--unit", "1", "--profile", "tuf2000", "--registers", "0:2"], "one of them"),
        (["--tcp", "h:502", "--unit", "1", "--registers", "0:200"], "COUNT must be 1..125"),
        (["--tcp", "h:502", "--unit", "1", "--registers", "5"], "give START:COUNT"),
        (["--tcp", "h:502", "--unit", "1", "--registers", "0:2", "--function", "6"], "3 (holding registers) or 4"),
        (["--tcp", "h:502", "--unit", "1", "--profile", "tuf2000", "--function", "4"], "--function goes with"),
        (["--tcp", "h:502", "--unit", "1", "--profile", "nosuch"], "--profile nosuch: no such profile"),
        (["--tcp", "h:502", "--unit", "1", "--profile", "tuf2000", "--baud", "9600"], "not of --tcp"),
        (["--port", "/dev/x", "--unit", "1", "--profile", "tuf2000", "--baud", "9600,19200"], "one setting each"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err, err


def test_raw_registers_over_tcp_show_the_order_that_matches_the_profile(sim: SimProcess) -> None:
    """tuf2000 keeps its flow rate at 0-1 as a CDAB float32: the raw table's CDAB column shows
    the value the profile read gives, the other orders do not."""
    raw = read("--tcp", f"127.0.0.1:{sim.tcp_port}", "--unit", "3", "--registers", "0:4")
    assert raw.returncode == 0, raw.stdout + raw.stderr
    lines = raw.stdout.splitlines()
    assert lines[0].startswith(f"127.0.0.1:{sim.tcp_port} unit 3: fc03 0+4 in ")
    assert [line.split()[0] for line in lines[2:6]] == ["0", "1", "2", "3"]
    flow = columns(lines, "0-1", "float32")
    by_profile = read("--tcp", f"127.0.0.1:{sim.tcp_port}", "--unit", "3", "--profile", "tuf2000")
    assert by_profile.returncode == 0, by_profile.stdout
    value = next(float(line.split()[1]) for line in by_profile.stdout.splitlines() if "flow_rate" in line)
    assert float(flow["CDAB"]) == pytest.approx(value, rel=0.05)
    assert all(float(flow[o]) != pytest.approx(value, rel=0.05) for o in ("ABCD", "BADC", "DCBA"))


def test_profile_over_a_pty_at_its_line_setting(sim: SimProcess) -> None:
    assert sim.pty is not None
    ok = read("--port", sim.pty, "--baud", "19200", "--unit", "17", "--profile", "emf_generic")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"{sim.pty} 19200 8N1 unit 17 (emf_generic): ok in ")
    assert {line.split()[0] for line in ok.stdout.splitlines()[1:]} >= {"flow_rate", "volume_total"}


def test_a_wrong_line_setting_fails_in_one_line_with_exit_1(sim: SimProcess) -> None:
    assert sim.pty is not None
    bad = read("--port", sim.pty, "--unit", "17", "--registers", "0:2", "--function", "3", "--timeout", "0.2")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stdout.strip() == f"{sim.pty} 9600 8N1 unit 17: FAILED MeterTimeout: no answer in 0.2 s x 2 tries"
