"""`meterlink sim sl651-center` as a process, with a real TCP client playing the station:
reports acknowledged (serial echoed), a copy after a lost acknowledgement acknowledged again and
kept once, a query on command, every frame printed as decode JSON, bad arguments in one line."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from support.procs import METERLINK

from meterlink.protocols.sl651 import NEED_DATA, Direction, Frame, Reassembler, encode, parse_body
from meterlink.protocols.sl651.messages import build_report, number_element, report_body

STATION = bytes.fromhex("0012345678")


def _report(serial: int) -> bytes:
    when = datetime(2026, 3, 1, 8, 0)
    body = report_body(
        serial=serial,
        send_time=when,
        station=STATION,
        station_type=0x48,
        observed=when,
        elements=[number_element(0x27, 12.345), number_element(0x38, 12.6)],
    )
    return encode(build_report(0x32, center=1, station=STATION, password=0x1234, body=body))


@pytest.fixture
def center() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [*METERLINK, "sim", "sl651-center", "--listen", "0", "--drop-acks", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.match(r"sl651 center listening on [\d.]+:(\d+)", line)
    assert match, line
    yield proc, int(match.group(1))
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _frames(sock: socket.socket, count: int) -> list[Frame]:
    reader = Reassembler()
    out: list[Frame] = []
    while len(out) < count:
        reader.feed(sock.recv(4096))
        while (frame := reader.next_frame()) is not NEED_DATA:
            out.append(frame)
    return out


def _records(proc: subprocess.Popen[str], count: int) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    return [json.loads(proc.stdout.readline()) for _ in range(count)]


def test_reports_are_acknowledged_once_kept_and_queries_go_out(center: tuple[subprocess.Popen[str], int]) -> None:
    """First ack dropped (--drop-acks 1): the resent copy gets one; a second report its own."""
    proc, port = center
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        first = _report(7)
        sock.sendall(b"\x00garbage" + first[:20])  # noise, and a report split in two segments
        sock.sendall(first[20:])
        assert _records(proc, 1)[0]["frame"]["serial"] == 7  # printed, not acknowledged
        sock.sendall(first)  # the station resends after no acknowledgement
        (ack,) = _frames(sock, 1)
        assert ack.direction is Direction.DOWN and ack.function == 0x32 and ack.end == 0x1B
        assert parse_body(ack).serial == 7 and ack.station == STATION
        sock.sendall(_report(8))
        (ack2,) = _frames(sock, 1)
        assert parse_body(ack2).serial == 8
        records = _records(proc, 4)  # in (copy), out (ack), in (8), out (ack)
        assert [r["dir"] for r in records] == ["in", "out", "in", "out"]
        report = records[2]["frame"]
        assert report["function"] == "32" and report["station"] == "0012345678"
        assert [(e["id"], e["value"]) for e in report["elements"][2:]] == [("27", 12.345), ("38", 12.6)]
        assert proc.stdin is not None
        proc.stdin.write("37\n")
        proc.stdin.flush()
        (query,) = _frames(sock, 1)
        assert query.function == 0x37 and query.direction is Direction.DOWN and query.end == 0x05
        assert _records(proc, 1)[0]["frame"]["function"] == "37"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert "reports=2 repeats=1 acks_sent=2 acks_dropped=1" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [([], "give --listen PORT"), (["--listen", "x"], "--listen: 'x' is not a whole number")],
)
def test_bad_arguments_are_one_line(args: list[str], says: str) -> None:
    proc = subprocess.run([*METERLINK, "sim", "sl651-center", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and says in proc.stderr
