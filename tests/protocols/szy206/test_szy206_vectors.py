"""SZY206 codec against the development vectors, public frames and our own vectors.

Vector files are copies kept in tests/data (tests do not read /work/shared):
- vectors_szy206_dev.json: the development set from the protocol notes;
- szy206_public_frames.json: three frames quoted in an open-source SZY206 test file, one of each
  shape the notes call out (C0H with a 5-byte Tp, C0H without Tp and AA fill, a 1 KiB picture
  frame with DIV and L counted in KiB), with fields decoded by hand;
- szy206_own_vectors.json: frames built with our encoder for every AFN we support, with their
  JSON view (regression vectors; regenerate with tests/protocols/szy206/make_szy206_vectors.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meterlink.protocols.szy206 import (
    INVALID,
    Direction,
    crc8,
    decode,
    decode_report,
    encode,
    parse_flow_report,
    parse_picture,
)

DATA = Path(__file__).resolve().parents[2] / "data"


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


DEV = _load("vectors_szy206_dev.json")
PUBLIC = _load("szy206_public_frames.json")["frames"]
OWN = _load("szy206_own_vectors.json")["frames"]


@pytest.mark.parametrize("vector", DEV, ids=[f"dev{i}-{v['afn']}" for i, v in enumerate(DEV)])
def test_dev_vector_decodes_to_its_fields(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    decoded = vector["decoded"]
    assert vector["crc_ok"] is True
    assert f"{crc8(raw[3:-2]):02X}" == vector["crc"]["calc"] == vector["crc"]["in_frame"]
    frame = decode(raw)
    assert raw[1] == decoded["L"] == decoded["user_data_len"]
    control = decoded["C"]
    assert frame.control == int(control["hex"], 16)
    assert int(frame.direction) == control["DIR"]
    assert frame.direction == (Direction.UP if vector["direction"] == "up" else Direction.DOWN)
    assert frame.div == bool(control["DIV"])
    assert frame.fcb == control["FCB"]
    assert frame.function == control["func"]
    assert frame.address.division == decoded["A"]["A1_admin_code_BCD"]
    assert frame.address.station == decoded["A"]["A2_station_LE"]
    assert frame.address.to_bytes().hex().upper() == decoded["A"]["hex"]
    assert f"{frame.afn:02X}" == decoded["AFN"]["hex"] == vector["afn"]
    # data_hex is everything after AFN: D, then PW and Tp when present.
    tail = frame.data + (frame.pw or b"") + (frame.tp.to_bytes() if frame.tp else b"")
    assert tail.hex().upper() == decoded["data_hex"]
    assert encode(frame) == raw


def test_dev_sl427_example_has_a_7_byte_time_label_and_a_velocity() -> None:
    frame = decode(bytes.fromhex(DEV[0]["hex"]))
    assert frame.tp is not None and frame.tp.size == 7
    assert (frame.tp.year, frame.tp.month, frame.tp.day) == (26, 5, 12)
    assert (frame.tp.hour, frame.tp.minute, frame.tp.second, frame.tp.delay_min) == (14, 15, 30, 0)
    view = decode_report(DEV[0]["hex"])
    assert view["data"]["values"] == [44.555]
    assert (view["data"]["alarm"], view["data"]["status"]) == (0x2000, 0x0070)


def test_dev_keepalive_link_code() -> None:
    view = decode_report(DEV[2]["hex"])
    assert view["data"]["link"] == "keep-alive" and DEV[2]["decoded"]["link"] == "f2"


@pytest.mark.parametrize("vector", PUBLIC, ids=[v["name"] for v in PUBLIC])
def test_public_frame_decodes_to_hand_decoded_fields(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    expect = vector["expect"]
    frame = decode(raw)
    assert frame.direction.name.lower() == expect["direction"]
    assert (frame.fcb, frame.function, frame.afn) == (expect["fcb"], expect["function"], expect["afn"])
    assert (frame.address.division, frame.address.station) == (expect["division"], expect["station"])
    if expect["tp"] is None:
        assert frame.tp is None
    else:
        assert frame.tp is not None
        got = {k: getattr(frame.tp, k) for k in expect["tp"]}
        assert got == expect["tp"] and frame.tp.size == 5
    if "meters" in expect:
        report = parse_flow_report(frame)
        assert [list(m) for m in report.meters] == expect["meters"]
        assert (report.alarm, report.status) == (expect["alarm"], expect["status"])
    if "image_bytes" in expect:
        assert (frame.div, frame.divs) == (expect["div"], expect["divs"])
        assert len(raw) == 1039 and raw[1] == 1
        assert len(parse_picture(frame)) == expect["image_bytes"]
    assert encode(frame) == raw


def test_public_flow_report_alarm_and_status_read_low_byte_first() -> None:
    view = decode_report(PUBLIC[0]["hex"])
    assert view["data"] == {"meters": [{"flow": 5.9, "volume": 106182}], "alarm": 0x1001, "status": 0x0060}
    assert view["length"] == 26 and view["tp"] == {"second": 0, "minute": 45, "hour": 8, "day": 9, "delay_min": 10}


def test_public_aa_filled_flow_is_absent_not_invalid() -> None:
    report = parse_flow_report(decode(bytes.fromhex(PUBLIC[1]["hex"])))
    assert report.meters[0].flow is None and report.meters[0].flow is not INVALID


@pytest.mark.parametrize("vector", OWN, ids=[v["name"] for v in OWN])
def test_own_vector(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    options = vector.get("options", {})
    assert decode_report(raw, **options) == vector["view"]
    assert encode(decode(raw, **options)) == raw
