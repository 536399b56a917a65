"""`meterlink decode sl651`: JSON on stdout only; a broken frame is one line on stderr and exit 1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.procs import METERLINK

SCHEDULED = (
    "7E7E1000123456781234320025020003140612020000F1F1001234567848F0F014061202002019000055071900021538121290033D9E"
)
ASCII_TEST = (
    "01303630303132333431323334303444323330303034440230303139313730373138313131323034535420303031323334313233342048"
    "205454203137303731383131313220504A20302E3520505420302E35205A20302E3330312056542031302E3931200346444545"
)


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*METERLINK, "decode", "sl651", *args], capture_output=True, text=True, timeout=30)


def test_a_scheduled_report_decodes_to_the_documented_json() -> None:
    proc = decode(SCHEDULED)
    assert proc.returncode == 0 and proc.stderr == ""
    view = json.loads(proc.stdout)
    assert view["crc_ok"] is True and view["encoding"] == "hex" and view["direction"] == "up"
    assert (view["center"], view["station"], view["password"], view["function"]) == (16, "0012345678", "1234", "32")
    assert (view["length"], view["start"], view["end"], view["serial"]) == (37, "02", "03", 3)
    assert view["send_time"] == "2014-06-12T02:00:00" and view["observation_time"] == "2014-06-12T02:00"
    assert view["station_type"] == "48"
    assert view["elements"][2] == {"id": "20", "value": 5.5, "def": "19", "raw": "000055", "name": "PJ 当前降水量 mm"}
    assert [e["value"] for e in view["elements"][3:]] == [21.5, 12.9]


def test_spaced_hex_a_raw_file_and_an_ascii_frame_as_text(tmp_path: Path) -> None:
    spaced = " ".join(SCHEDULED[i : i + 2] for i in range(0, len(SCHEDULED), 2))
    assert json.loads(decode(spaced).stdout) == json.loads(decode(SCHEDULED).stdout)
    (tmp_path / "frame.bin").write_bytes(bytes.fromhex(SCHEDULED))
    assert json.loads(decode("--file", str(tmp_path / "frame.bin")).stdout) == json.loads(decode(SCHEDULED).stdout)
    (tmp_path / "ascii.txt").write_bytes(bytes.fromhex(ASCII_TEST) + b"\n")
    view = json.loads(decode("--file", str(tmp_path / "ascii.txt")).stdout)
    assert view["encoding"] == "ascii" and view["function"] == "30" and view["station_type"] == "48"
    values = [(e["id"], e["value"]) for e in view["elements"][2:]]
    assert values == [("20", 0.5), ("26", 0.5), ("39", 0.301), ("38", 10.91)]


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (SCHEDULED[:-4] + "3D9F", "wrong CRC"),
        (SCHEDULED[:-6] + "04" + SCHEDULED[-4:], "wrong CRC"),
        (SCHEDULED[:-6] + "99" + SCHEDULED[-4:], "wrong end character"),
        (SCHEDULED[:22] + "0026" + SCHEDULED[26:], "wrong length"),
        (SCHEDULED[:-2], "wrong length"),
        ("7E7D" + SCHEDULED[4:], "wrong start characters"),
        ("zz", "input is not hexadecimal"),
        (SCHEDULED[:-1], "odd number of hex digits"),
    ],
)
def test_broken_frames_say_which_fault(frame: str, says: str) -> None:
    proc = decode(frame)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
