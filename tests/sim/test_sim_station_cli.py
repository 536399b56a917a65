"""sim/station_cli.py: argument checks (one line, exit 2) and a whole run in a subprocess."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from support.sim_cli import command, parse, run_here, taken_port
from support.szy206_frames import A13

from meterlink.protocols.szy206 import (
    AFN,
    NEED_DATA,
    Frame,
    LinkKind,
    Reassembler,
    TimeLabel,
    build_flow_report,
    build_link,
    encode,
    parse_confirm,
)
from meterlink.sim import station_cli

WAIT = 10.0  # a fresh interpreter has to start first


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --listen PORT"),
        (["--listen", "70000"], "--listen: 70000 is outside 0..65535"),
        (["--listen", "abc"], "--listen: 'abc' is not a whole number"),
        (["--listen", "0", "--tp", "6"], "--tp: '6' is not 0, 5 or 7"),
        (["--listen", "0", "--confirm-mode", "4"], "--confirm-mode: '4' is not 0, 1, 2, 3 or none"),
        (["--listen", "0", "--drop-confirms", "-1"], "--drop-confirms: -1 is outside"),
        (["--listen", "0", "--drop-confirms", "x"], "'x' is not a whole number"),
        (["--listen", "0", "--query-interval", "0"], "--query-interval: 0 must be a positive number"),
        (["--listen", "0", "--query-interval", "inf"], "must be a positive number"),
        (["--listen", "0", "--query-interval", "soon"], "'soon' is not a number"),
    ],
)
def test_bad_arguments_end_in_one_line_and_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every argument mistake is one stderr line naming it, exit code 2, nothing started."""
    assert run_here(station_cli, *argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_check_fills_defaults_and_reads_every_option() -> None:
    plan = station_cli.check(parse(station_cli, "--listen", "0"))
    assert (plan.host, plan.port, plan.tp_len, plan.confirm_tp, plan.confirm_mode) == ("127.0.0.1", 0, None, True, 1)
    assert (plan.drop_confirms, plan.query_interval) == (0, None)
    argv = ["--listen", "5021", "--host", "0.0.0.0", "--tp", "7", "--no-confirm-tp", "--confirm-mode", "NONE"]
    plan = station_cli.check(parse(station_cli, *argv, "--drop-confirms", "3", "--query-interval", "0.5"))
    assert (plan.host, plan.port, plan.tp_len, plan.confirm_tp, plan.confirm_mode) == ("0.0.0.0", 5021, 7, False, None)
    assert (plan.drop_confirms, plan.query_interval) == (3, 0.5)


def test_port_in_use_is_one_line_and_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    with taken_port() as port:
        assert run_here(station_cli, "--listen", str(port)) == 1
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_a_whole_run_prints_the_conversation_until_sigterm() -> None:
    """The listening line, then one JSON line per frame in each direction; SIGTERM ends it with 0."""

    async def body() -> None:
        proc = await asyncio.create_subprocess_exec(
            *command("station"),
            "--listen",
            "0",
            "--confirm-mode",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        writer = None
        try:
            async with asyncio.timeout(WAIT):
                first = (await proc.stdout.readline()).decode()
            assert first.startswith("szy206 station listening on 127.0.0.1:") and first.endswith("\n")
            port = int(first.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            tp = TimeLabel(second=0, minute=45, hour=8, day=9, delay_min=10)
            report = build_flow_report(A13, [(5.9, 106182)], tp=tp)
            writer.write(encode(build_link(A13, LinkKind.LOGIN)) + encode(report))
            await writer.drain()
            reassembler = Reassembler()
            frames: list[Frame] = []
            async with asyncio.timeout(WAIT):
                while len(frames) < 2:
                    reassembler.feed(await reader.read(4096))
                    while (frame := reassembler.next_frame()) is not NEED_DATA:
                        frames.append(frame)
                lines = [json.loads(await proc.stdout.readline()) for _ in range(4)]
            assert [f.afn for f in frames] == [AFN.LINK, AFN.REPORT]
            assert parse_confirm(frames[1]).work_mode == 2
            assert [(line["dir"], line["frame"]["afn"]) for line in lines] == [
                ("in", "02"),
                ("out", "02"),
                ("in", "C0"),
                ("out", "C0"),
            ]
            peer = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
            assert {line["peer"] for line in lines} == {peer}
            assert lines[2]["frame"]["data"]["meters"] == [{"flow": 5.9, "volume": 106182}]
            assert lines[3]["frame"]["data"]["work_mode"] == 2 and lines[3]["frame"]["tp"] is not None
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(WAIT):
                rest, err = await proc.communicate()
            assert proc.returncode == 0, err
            assert b"Traceback" not in err and rest == b""
        finally:
            if writer is not None:
                writer.close()
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()

    asyncio.run(body())
