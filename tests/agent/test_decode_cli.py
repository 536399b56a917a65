"""`meterlink decode szy206`: JSON on stdout only; a broken frame is one line on stderr and exit 1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.procs import METERLINK

C0_TP5 = "681A68B35303810D00C00059000000826110000001106000004508090A3516"


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*METERLINK, "decode", "szy206", *args], capture_output=True, text=True, timeout=30)


def test_a_flow_report_decodes_to_the_documented_json() -> None:
    proc = decode(C0_TP5)
    assert proc.returncode == 0 and proc.stderr == ""
    view = json.loads(proc.stdout)
    assert view["crc_ok"] is True and view["length"] == 0x1A and view["direction"] == "up"
    assert view["div"] is False and view["divs"] is None and view["fcb"] == 3 and view["function"] == 3
    assert view["address"] == {"division": "530381", "station": 13}
    assert view["afn"] == "C0"
    assert view["data"]["meters"] == [{"flow": 5.9, "volume": 106182}]
    assert isinstance(view["data"]["alarm"], int) and isinstance(view["data"]["status"], int)
    assert view["tp"] == {"second": 0, "minute": 45, "hour": 8, "day": 9, "delay_min": 10}


def test_hex_with_spaces_and_raw_bytes_from_a_file(tmp_path: Path) -> None:
    spaced = " ".join(C0_TP5[i : i + 2] for i in range(0, len(C0_TP5), 2))
    assert json.loads(decode(spaced).stdout) == json.loads(decode(C0_TP5).stdout)
    (tmp_path / "frame.bin").write_bytes(bytes.fromhex(C0_TP5))
    assert json.loads(decode("--file", str(tmp_path / "frame.bin")).stdout) == json.loads(decode(C0_TP5).stdout)


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (C0_TP5[:-4] + "3416", "wrong check (CRC)"),
        (C0_TP5[:-2] + "15", "missing end byte 16H"),
        ("681B" + C0_TP5[4:], "wrong length"),
        (C0_TP5[:-6], "wrong length"),
        ("zz", "input is not hexadecimal"),
        (C0_TP5[:-1], "odd number of hex digits (61)"),
    ],
)
def test_broken_frames_say_which_fault(frame: str, says: str) -> None:
    proc = decode(frame)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["decode", "szy206", "--tp", "5", C0_TP5],
        ["decode", "--tp", "5", "szy206", C0_TP5],
        ["decode", "szy206", C0_TP5, "--tp", "5"],
        ["decode", "szy206", C0_TP5[:20], "--tp", "5", C0_TP5[20:]],
    ],
)
def test_tp_may_come_before_or_after_the_frame(argv: list[str]) -> None:
    proc = subprocess.run([*METERLINK, *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert json.loads(proc.stdout) == json.loads(decode(C0_TP5).stdout)


def test_a_forced_tp_length_is_used() -> None:
    # Forced to 0, the label stays in the data, which then does not read as a flow report.
    view = json.loads(decode("--tp", "0", C0_TP5).stdout)
    assert view["tp"] is None and "meters" not in view["data"]


def test_a_bad_tp_value_is_a_command_line_error() -> None:
    proc = decode(C0_TP5, "--tp", "6")
    assert proc.returncode == 2 and proc.stdout == "" and "--tp" in proc.stderr
