"""sim/modbus_cli.py: argument checks (one line, exit 2) and a whole run in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.sim_cli import command, parse, run_here, taken_port

from meterlink.drivers.base import ExceptionResponse
from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.sim import modbus_cli
from meterlink.sim.meter_model import Fault


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pty", "--meter", "nosuch"], "unknown profile 'nosuch'"),
        (["--pty", "--fault", "melting"], "unknown fault 'melting'"),
        (["--pty", "--meter", "tuf2000:0"], "0 is outside 1..247"),
        (["--pty", "--meter", "tuf2000:248"], "248 is outside 1..247"),
        (["--pty", "--meter", "tuf2000:x"], "'x' is not a whole number"),
        (["--pty", "--meter", "tuf2000:1", "--meter", "emf_generic:1"], "unit 1 is already taken"),
        (["--pty", "--fault", "5:no_answer"], "no meter at unit 5"),
        (["--pty", "--fault", "300:no_answer"], "300 is outside 1..247"),
        (["--tcp", "70000"], "--tcp: 70000 is outside 0..65535"),
        (["--tcp", "abc"], "--tcp: 'abc' is not a whole number"),
        ([], "give --tcp PORT and/or --pty"),
        (["--pty", "--speed", "0"], "--speed: 0 must be a positive number"),
        (["--pty", "--speed", "nan"], "must be a positive number"),
        (["--pty", "--speed", "fast"], "'fast' is not a number"),
        (["--pty", "--seed", "-1"], "--seed: -1 is outside"),
        (["--pty", "--stats", "/nonexistent/stats.json"], "--stats /nonexistent/stats.json: cannot write"),
        (["--pty", "--stats", "/tmp"], "--stats /tmp: give a file, not a folder"),
        (["--pty", "--stats", ""], "--stats : give a file, not a folder"),
    ],
)
def test_bad_arguments_end_in_one_line_and_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every argument mistake is one stderr line naming it, exit code 2, nothing started."""
    assert run_here(modbus_cli, *argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_check_fills_defaults_and_free_units() -> None:
    """No --meter means one tuf2000 at unit 1; meters without a unit take the lowest free ones."""
    plan = modbus_cli.check(parse(modbus_cli, "--pty"))
    assert plan.meters == {1: "tuf2000"} and plan.faults == [] and plan.speed == 1.0
    plan = modbus_cli.check(
        parse(
            modbus_cli,
            "--tcp",
            "0",
            "--meter",
            "emf_generic",
            "--meter",
            "tuf2000:1",
            "--meter",
            "qdy30a_level",
            "--fault",
            "bad_crc",
            "--fault",
            "3:no_answer",
            "--speed",
            "60",
            "--seed",
            "7",
        )
    )
    assert plan.meters == {1: "tuf2000", 2: "emf_generic", 3: "qdy30a_level"}
    assert plan.faults == [(None, Fault.BAD_CRC), (3, Fault.NO_ANSWER)]
    assert (plan.tcp_port, plan.pty, plan.seed, plan.speed) == (0, False, 7, 60.0)


def test_port_in_use_is_one_line_and_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A TCP port that cannot be bound ends in one line and exit code 1."""
    with taken_port() as port:
        assert run_here(modbus_cli, "--tcp", str(port)) == 1
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_a_whole_run_serves_tcp_and_pty_until_sigterm() -> None:
    """Start lines on stdout, the real driver reads over both endpoints, SIGTERM ends it with 0."""
    argv = ["--tcp", "0", "--pty", "--meter", "tuf2000", "--meter", "qdy30a_level:5", "--fault", "5:exception"]
    proc = subprocess.Popen([*command("modbus"), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        tcp_line = proc.stdout.readline().split()
        pty_line = proc.stdout.readline().split()
        assert tcp_line[:3] == ["modbus", "tcp", "listening"] and tcp_line[-1] == "units=1,5"
        assert pty_line[:3] == ["modbus", "rtu", "pty"] and pty_line[-1] == "units=1,5"
        host, port = tcp_line[4].rsplit(":", 1)
        assert os.path.exists(pty_line[3])

        async def read_both() -> None:
            tuf = ModbusMeter("m1", 1, profiles.load("tuf2000").value_specs())
            level = ModbusMeter("m5", 5, profiles.load("qdy30a_level").value_specs())
            for params in (TcpParams(host, int(port)), SerialParams(device=pty_line[3])):
                driver = ModbusDriver(ModbusBus("cli", params, timeout=1.0, retries=0))
                try:
                    values = {r.quantity: r.value for r in await driver.read(tuf, 0)}
                    assert values["flow_rate"] > 0 and values["volume_total"] > 0
                    with pytest.raises(ExceptionResponse):
                        await driver.read(level, 0)
                finally:
                    await driver.close()

        asyncio.run(read_both())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_stats_file_counts_what_each_unit_answered(tmp_path: Path) -> None:
    """--stats FILE: per unit, requests, answers with values by read, faults; final after SIGTERM."""
    stats = tmp_path / "stats.json"
    argv = ["--tcp", "0", "--meter", "tuf2000:1", "--meter", "qdy30a_level:5", "--fault", "5:exception"]
    proc = subprocess.Popen(
        [*command("modbus"), *argv, "--stats", str(stats)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tuf = ModbusMeter("m1", 1, profiles.load("tuf2000").value_specs())
    level = ModbusMeter("m5", 5, profiles.load("qdy30a_level").value_specs())
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[4].rsplit(":", 1)[1])
        written = json.loads(stats.read_text())  # there from the start, before any request
        assert written["units"]["1"]["requests"] == 0 and written["units"]["5"]["profile"] == "qdy30a_level"

        async def poll() -> None:
            driver = ModbusDriver(ModbusBus("cli", TcpParams("127.0.0.1", port), timeout=1.0, retries=0))
            try:
                for _ in range(3):
                    await driver.read(tuf, 0)
                with pytest.raises(ExceptionResponse):
                    await driver.read(level, 0)
            finally:
                await driver.close()

        asyncio.run(poll())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    units = json.loads(stats.read_text())["units"]
    reads = {f"fc{r.function:02d} {r.address}+{r.count}": 3 for r in tuf.requests}
    assert units["1"] == {
        "profile": "tuf2000",
        "requests": 3 * len(tuf.requests),
        "answered": 3 * len(tuf.requests),
        "answered_by_read": reads,
        "faults": {},
    }
    assert units["5"] == {
        "profile": "qdy30a_level",
        "requests": 1,
        "answered": 0,
        "answered_by_read": {},
        "faults": {"exception": 1},
    }
    assert not stats.with_name(stats.name + ".part").exists()
