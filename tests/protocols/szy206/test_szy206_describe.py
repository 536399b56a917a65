"""The JSON view (describe / decode_report) used by ``meterlink decode szy206 HEX``."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.szy206_frames import A13

from meterlink.protocols.szy206 import (
    INVALID,
    ChecksumError,
    Clock,
    Direction,
    EndByteError,
    FlowUnit,
    Frame,
    LengthError,
    SZY206Error,
    TimeLabel,
    build_flow_report,
    build_picture_frames,
    build_readings,
    build_set_clock,
    build_stored_query,
    crc8,
    decode_report,
    describe,
    encode,
    encode_flow_data,
    make_pw,
)

KEYS = {"crc_ok", "length", "direction", "div", "divs", "fcb", "function", "address", "afn", "data", "tp"}
VECTOR_1 = "681A68B35303810D00C00059000000826110000001106000004508090A3516"


def test_flow_report_view_has_exactly_the_documented_shape() -> None:
    view = decode_report(VECTOR_1)
    assert view == {
        "crc_ok": True,
        "length": 26,
        "direction": "up",
        "div": False,
        "divs": None,
        "fcb": 3,
        "function": 3,
        "address": {"division": "530381", "station": 13},
        "afn": "C0",
        "data": {"meters": [{"flow": 5.9, "volume": 106182}], "alarm": 4097, "status": 96},
        "tp": {"second": 0, "minute": 45, "hour": 8, "day": 9, "delay_min": 10},
    }
    assert json.loads(json.dumps(view, allow_nan=False)) == view


def test_absent_and_invalid_values_are_null_and_invalid_ones_are_named() -> None:
    frame = build_flow_report(A13, [(None, INVALID), (INVALID, None), (INVALID, INVALID), (None, None)])
    assert describe(frame)["data"]["meters"] == [
        {"flow": None, "volume": None, "invalid": ["volume"]},
        {"flow": None, "volume": None, "invalid": ["flow"]},
        {"flow": None, "volume": None, "invalid": ["flow", "volume"]},
        {"flow": None, "volume": None},
    ]


def test_invalid_element_values_are_null_and_their_positions_named() -> None:
    view = describe(build_readings(A13, 2, [1.5, INVALID, None]))
    assert view["data"]["values"] == [1.5, None, None] and view["data"]["invalid"] == [1]
    assert "invalid" not in describe(build_readings(A13, 2, [1.5, None]))["data"]


@pytest.mark.parametrize(
    ("unit", "flow", "shown"),
    [
        (FlowUnit.M3_PER_H, 5.9, "m3/h"),
        (FlowUnit.M3_PER_H, -5.9, None),  # nibble F: also the SZY206 minus sign, which names no unit
        (FlowUnit.M3_PER_S, -5.9, "m3/s"),
        (FlowUnit.M3_PER_S, 5.9, None),  # nibble 0: also the SZY206 plus sign
        (None, 5.9, None),
        (None, -5.9, None),
    ],
)
def test_sl427_flow_unit_bits_are_shown(unit: FlowUnit | None, flow: float, shown: str | None) -> None:
    meter = describe(build_flow_report(A13, [(flow, 7)], unit=unit))["data"]["meters"][0]
    assert meter["flow"] == flow and meter.get("flow_unit") == shown


def test_every_data_value_is_a_json_number_or_null() -> None:
    frame = build_flow_report(A13, [(INVALID, INVALID), (1.0, 2)], unit=FlowUnit.M3_PER_H)
    for meter in describe(frame)["data"]["meters"]:
        assert all(meter[key] is None or isinstance(meter[key], int | float) for key in ("flow", "volume"))


def test_seven_byte_label_adds_month_and_year() -> None:
    tp = TimeLabel(second=1, minute=2, hour=3, day=4, month=5, year=26, delay_min=0)
    view = describe(build_flow_report(A13, [(1.0, 1)], tp=tp))
    assert view["tp"] == {"second": 1, "minute": 2, "hour": 3, "day": 4, "delay_min": 0, "month": 5, "year": 26}


def test_pw_and_clock_are_shown_in_data() -> None:
    clock = Clock(second=5, minute=4, hour=3, day=28, month=11, year=26, weekday=6)
    view = describe(build_set_clock(A13, clock, pw=make_pw(1, 234)))
    assert view["data"]["pw"] == "1234" and view["data"]["clock"]["month"] == 11
    assert view["direction"] == "down" and view["afn"] == "11"


def test_picture_view_and_length_as_received() -> None:
    frames = build_picture_frames(A13, bytes(1500))
    view = decode_report(encode(frames[0]))
    assert (view["length"], view["div"], view["divs"], view["data"]["image_bytes"]) == (1, True, 2, 1024)


def test_unknown_data_falls_back_to_hex() -> None:
    view = decode_report("68 0C 68 B0 53 03 81 0D 00 64 56 34 12 00 00 72 16")
    assert view["data"] == {"hex": "5634120000"}


@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        (VECTOR_1[:-4] + "3416", ChecksumError, "wrong check (CRC)"),
        (VECTOR_1[:-2], LengthError, "wrong length"),
        (VECTOR_1[:2] + "1B" + VECTOR_1[4:], LengthError, "wrong length"),
        (VECTOR_1[:-2] + "17", EndByteError, "missing end byte 16H"),
    ],
)
def test_decode_report_says_which_check_failed(text: str, error: type[SZY206Error], reason: str) -> None:
    with pytest.raises(error) as info:
        decode_report(text)
    assert type(info.value) is error and info.value.reason == reason


def test_decode_report_refuses_non_hex_text() -> None:
    with pytest.raises(SZY206Error, match="not hexadecimal"):
        decode_report("68zz")


def test_odd_hex_digits_are_counted_not_called_non_hex() -> None:
    with pytest.raises(SZY206Error, match=r"^odd number of hex digits \(61\)$"):
        decode_report(VECTOR_1[:-1])
    with pytest.raises(SZY206Error, match=r"\(5\)"):
        decode_report("68 1A 6")


@given(st.binary(min_size=7, max_size=255))
def test_any_decodable_frame_has_a_json_view(user: bytes) -> None:
    raw = bytes((0x68, len(user), 0x68)) + user + bytes((crc8(user), 0x16))
    try:
        view = decode_report(raw)
    except SZY206Error:
        return
    assert set(view) == KEYS
    json.dumps(view, allow_nan=False)


# A site terminal's answer to a B1H stored-data query (agent/uplinks/szy206.py): a type-3 data area
# for one past slot and that slot's Tp, as in a C0H report.
B1_ANSWER = "681A68B34301000700B1691405000049870700000000010032511229003916"


def test_stored_data_answer_reads_like_a_flow_report() -> None:
    view = decode_report(B1_ANSWER)
    assert view["afn"] == "B1" and view["direction"] == "up"
    assert view["data"] == {"meters": [{"flow": 51.469, "volume": 78749}], "alarm": 0, "status": 1}
    assert view["tp"] == {"second": 32, "minute": 51, "hour": 12, "day": 29, "delay_min": 0}


def test_stored_data_answer_with_a_seven_byte_label() -> None:
    tp = TimeLabel(second=1, minute=2, hour=3, day=4, month=5, year=26, delay_min=0)
    frame = Frame(
        direction=Direction.UP,
        function=3,
        address=A13,
        afn=0xB1,
        data=encode_flow_data([(1.5, 7), (None, 9)], 0, 1),
        tp=tp,
    )
    view = decode_report(encode(frame))
    assert view["data"]["meters"] == [{"flow": 1.5, "volume": 7}, {"flow": None, "volume": 9}]
    assert view["tp"] is not None and view["tp"]["month"] == 5


def test_stored_data_query_still_reads_as_a_query() -> None:
    start = Clock(second=0, minute=0, hour=8, day=1, month=5, year=26, weekday=5)
    end = Clock(second=0, minute=0, hour=9, day=1, month=5, year=26, weekday=5)
    view = describe(build_stored_query(A13, start, end))
    assert view["direction"] == "down" and view["data"]["start"]["hour"] == 8 and view["data"]["end"]["hour"] == 9
