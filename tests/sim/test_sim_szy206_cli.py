"""sim/szy206_cli.py: argument checks (one line, exit 2) and a whole run in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest
from support.sim_cli import command, parse, run_here, taken_port
from support.szy206 import wall_ms

from meterlink.drivers.base import MeterTimeout, Reading
from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.drivers.szy206 import Szy206Driver, Szy206Link, Szy206Meter
from meterlink.protocols.szy206 import Address
from meterlink.sim import szy206_cli
from meterlink.sim.szy206_meter import Fault


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --tcp PORT and/or --pty"),
        (["--tcp", "70000"], "--tcp: 70000 is outside 0..65535"),
        (["--tcp", "abc"], "--tcp: 'abc' is not a whole number"),
        (["--pty", "--meter", "530381"], "expected DIVISION:STATION[:PAIRS]"),
        (["--pty", "--meter", "530381:13:1:9"], "expected DIVISION:STATION[:PAIRS]"),
        (["--pty", "--meter", "53038:13"], "division '53038' is not a 6-digit code"),
        (["--pty", "--meter", "53038Z:13"], "division '53038Z' is not a 6-digit code"),
        (["--pty", "--meter", "530381:0"], "station: 0 is outside 1..65534"),
        (["--pty", "--meter", "530381:65535"], "station: 65535 is outside 1..65534"),
        (["--pty", "--meter", "530381:x"], "station: 'x' is not a whole number"),
        (["--pty", "--meter", "530381:13:0"], "pairs: 0 is outside 1..23"),
        (["--pty", "--meter", "530381:13:24"], "pairs: 24 is outside 1..23"),
        (["--pty", "--meter", "530381:13", "--meter", "530381:13:2"], "530381:13 is already taken"),
        (["--pty", "--fault", "melting"], "unknown fault 'melting'"),
        (["--pty", "--fault", "14:no_answer"], "no meter at station 14"),
        (["--pty", "--fault", "x:no_answer"], "station: 'x' is not a whole number"),
        (["--pty", "--tp", "6"], "--tp: 6 must be 0, 5 or 7"),
        (["--pty", "--tp", "five"], "--tp: 'five' is not a whole number"),
        (["--pty", "--report-interval", "0"], "--report-interval: 0 must be a positive number"),
        (["--pty", "--report-interval", "soon"], "--report-interval: 'soon' is not a number"),
        (["--pty", "--confirm-timeout", "-1"], "--confirm-timeout: -1 must be a positive number"),
        (["--pty", "--speed", "inf"], "--speed: inf must be a positive number"),
        (["--pty", "--seed", "-1"], "--seed: -1 is outside"),
    ],
)
def test_bad_arguments_end_in_one_line_and_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every argument mistake is one stderr line naming it, exit code 2, nothing started."""
    assert run_here(szy206_cli, *argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert err.startswith("meterlink sim szy206-meter: ")


def test_check_fills_defaults() -> None:
    plan = szy206_cli.check(parse(szy206_cli, "--pty"))
    assert [(m.address, m.pairs) for m in plan.meters] == [(Address(division="530381", station=13), 1)]
    assert (plan.tcp_port, plan.pty, plan.tp_len, plan.report_interval, plan.faults) == (None, True, 5, None, [])
    assert plan.confirm_timeout == 3.0
    plan = szy206_cli.check(
        parse(
            szy206_cli,
            *("--tcp", "0", "--meter", "530381:13:2", "--meter", "110105:256", "--report-interval", "2.5"),
            *("--tp", "7", "--fault", "bad_crc", "--fault", "256:no_answer", "--speed", "60", "--seed", "7"),
        )
    )
    assert [(m.address.division, m.address.station, m.pairs) for m in plan.meters] == [
        ("530381", 13, 2),
        ("110105", 256, 1),
    ]
    assert plan.faults == [(None, Fault.BAD_CRC), (256, Fault.NO_ANSWER)]
    assert (plan.tcp_port, plan.pty, plan.report_interval, plan.tp_len, plan.seed, plan.speed) == (
        0,
        False,
        2.5,
        7,
        7,
        60.0,
    )
    meters = szy206_cli.build_meters(plan)
    assert [m.faults for m in meters] == [{Fault.BAD_CRC}, {Fault.BAD_CRC, Fault.NO_ANSWER}]
    assert {(m.tp_len, m.report_interval, m.speed) for m in meters} == {(7, 2.5, 60.0)}


def test_port_in_use_is_one_line_and_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    with taken_port() as port:
        assert run_here(szy206_cli, "--tcp", str(port)) == 1
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_a_whole_run_serves_tcp_and_pty_until_sigterm() -> None:
    """Start lines on stdout; the real driver polls over both endpoints and gets a self-report; SIGTERM ends it."""
    argv = [
        *("--tcp", "0", "--pty", "--meter", "530381:13:2", "--meter", "530381:14"),
        *("--fault", "14:no_answer", "--report-interval", "0.1", "--confirm-timeout", "0.3"),
    ]
    proc = subprocess.Popen(
        [*command("szy206-meter"), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        tcp_line = proc.stdout.readline().split()
        pty_line = proc.stdout.readline().split()
        assert tcp_line[:3] == ["szy206", "tcp", "listening"] and tcp_line[-1] == "stations=530381:13,530381:14"
        assert pty_line[:2] == ["szy206", "pty"] and pty_line[-1] == "stations=530381:13,530381:14"
        host, port = tcp_line[4].rsplit(":", 1)
        assert os.path.exists(pty_line[2])

        async def read_both() -> None:
            m13 = Szy206Meter("m13", Address(division="530381", station=13), pairs=2)
            m14 = Szy206Meter("m14", Address(division="530381", station=14))
            reporters: set[str] = set()

            async def on_report(meter_id: str, readings: list[Reading]) -> None:
                assert readings
                reporters.add(meter_id)

            for params in (TcpParams(host, int(port)), SerialParams(device=pty_line[2])):
                reporters.clear()
                link = Szy206Link("cli", params, timeout=0.3, retries=0, on_report=on_report, clock=wall_ms)
                driver = Szy206Driver(link)
                try:
                    values = {r.quantity: r.value for r in await driver.read(m13, 0)}
                    assert values["flow_rate"] > 0 and values["volume_total_2"] > 0
                    with pytest.raises(MeterTimeout):
                        await driver.read(m14, 0)  # its reports still come
                    for _ in range(250):  # a report sent before we listened is resent after 0.3 s
                        if reporters == {"m13", "m14"}:
                            break
                        await asyncio.sleep(0.02)
                    assert reporters == {"m13", "m14"}
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
