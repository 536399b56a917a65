"""Whole frames: encode/decode round trips for every supported AFN, errors, Tp and PW rules, fuzz."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.szy206_frames import A13

from meterlink.protocols.szy206 import (
    AFN,
    INVALID,
    Address,
    ChecksumError,
    Clock,
    DataError,
    Direction,
    EncodeError,
    EndByteError,
    FlowUnit,
    Frame,
    LengthError,
    LinkKind,
    StartByteError,
    SZY206Error,
    TimeLabel,
    UnsupportedError,
    build_clock_answer,
    build_confirm,
    build_flow_report,
    build_link,
    build_link_reply,
    build_picture_frames,
    build_picture_query,
    build_read_clock,
    build_readings,
    build_realtime_query,
    build_set_clock,
    build_set_query_kinds,
    build_set_report_kinds,
    build_stored_query,
    carries_pw,
    crc8,
    decode,
    describe,
    encode,
    infer_tp_len,
    make_pw,
    parse_clock,
    parse_confirm,
    parse_flow_report,
    parse_kinds,
    parse_link,
    parse_link_reply,
    parse_picture,
    parse_pw,
    parse_readings,
    parse_stored_query,
)
from meterlink.protocols.szy206.elements import ELEMENTS, Count, Value

KEEPALIVE = bytes.fromhex("680868B05303810D0002F23C16")

# -- strategies ----------------------------------------------------------------------------------

addresses = st.builds(Address, division=st.text("0123456789", min_size=6, max_size=6), station=st.integers(0, 0xFFFF))
labels5 = st.builds(
    TimeLabel,
    second=st.integers(0, 59),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    day=st.integers(1, 31),
    delay_min=st.integers(0, 255),
)
labels7 = st.builds(
    TimeLabel,
    second=st.integers(0, 59),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    day=st.integers(1, 31),
    delay_min=st.integers(0, 255),
    month=st.integers(1, 12),
    year=st.integers(0, 99),
)
labels = st.one_of(st.none(), labels5, labels7)
clocks = st.builds(
    Clock,
    second=st.integers(0, 59),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    day=st.integers(1, 31),
    month=st.integers(1, 12),
    year=st.integers(0, 99),
    weekday=st.integers(0, 7),
)
fcbs = st.integers(0, 3)
flows = st.one_of(st.none(), st.just(INVALID), st.integers(-999_999_999, 999_999_999).map(lambda n: n / 1000))
volumes = st.one_of(st.none(), st.just(INVALID), st.integers(0, 9_999_999_999))
words = st.integers(0, 0xFFFF)
pws = st.builds(make_pw, st.integers(0, 9), st.integers(0, 999))


@st.composite
def any_frames(draw: st.DrawFn) -> Frame:
    """Arbitrary frames (any AFN and data) that fit in L."""
    div = draw(st.booleans())
    return Frame(
        direction=draw(st.sampled_from(list(Direction))),
        div=div,
        divs=draw(st.integers(0, 255)) if div else None,
        fcb=draw(fcbs),
        function=draw(st.integers(0, 15)),
        address=draw(addresses),
        afn=draw(st.integers(0, 255)),
        data=draw(st.binary(max_size=200)),
        pw=draw(st.one_of(st.none(), st.binary(min_size=2, max_size=2))),
        tp=draw(labels),
    )


def _round_trip(frame: Frame, **options: object) -> Frame:
    raw = encode(frame)
    back = decode(raw, **options)  # type: ignore[arg-type]
    assert back == frame
    assert encode(back) == raw
    return back


# -- round trips, one per supported message ------------------------------------------------------


@given(any_frames())
def test_any_frame_round_trips_when_pw_and_tp_are_given(frame: Frame) -> None:
    _round_trip(frame, tp_len=frame.tp.size if frame.tp else 0, pw=frame.pw is not None)


@given(addresses, st.sampled_from(list(LinkKind)), fcbs, labels, st.booleans())
def test_link_round_trip_and_reply(
    address: Address, kind: LinkKind, fcb: int, tp: TimeLabel | None, echo: bool
) -> None:
    request = _round_trip(build_link(address, kind, fcb=fcb, tp=tp))
    assert parse_link(request) is kind
    reply = _round_trip(build_link_reply(request, echo=echo))
    assert reply.direction is Direction.DOWN and reply.address == address and reply.fcb == fcb
    assert parse_link_reply(reply) == (kind if echo else 0)


@given(
    addresses,
    st.lists(st.tuples(flows, volumes), max_size=10),
    words,
    words,
    labels,
    fcbs,
    st.sampled_from([AFN.REPORT, AFN.ALARM_REPORT, AFN.MANUAL_REPORT, AFN.QUERY_REALTIME]),
)
def test_flow_report_round_trip_with_inferred_tp(
    address: Address,
    meters: list[tuple[Value, Count]],
    alarm: int,
    status: int,
    tp: TimeLabel | None,
    fcb: int,
    afn: int,
) -> None:
    frame = _round_trip(
        build_flow_report(
            address,
            meters,
            alarm=alarm,
            status=status,
            tp=tp,
            fcb=fcb,
            afn=afn,
        )
    )
    report = parse_flow_report(frame)
    assert [tuple(m) for m in report.meters] == meters
    assert (report.alarm, report.status, report.tp) == (alarm, status, tp)


@given(
    st.lists(
        st.tuples(st.integers(-999_999_999, 999_999_999).map(lambda n: n / 1000), volumes), min_size=1, max_size=5
    ),
    st.sampled_from(list(FlowUnit)),
    labels7,
)
def test_sl427_flow_report_with_unit_bits(meters: list[tuple[float, int]], unit: FlowUnit, tp: TimeLabel) -> None:
    frame = _round_trip(build_flow_report(A13, meters, unit=unit, tp=tp))
    assert [m.flow for m in parse_flow_report(frame).meters] == [f for f, _ in meters]


@given(addresses, st.sampled_from(sorted(ELEMENTS)), st.data(), labels, words, words)
def test_single_value_report_round_trip(
    address: Address, function: int, data: st.DataObject, tp: TimeLabel | None, alarm: int, status: int
) -> None:
    element = ELEMENTS[function]
    top = 10 ** element.digits() - 1
    low = -top if element.signed else 0
    values = data.draw(
        st.lists(st.one_of(st.none(), st.integers(low, top).map(lambda n: n / element.scale)), max_size=6)
    )
    frame = build_readings(address, function, values, alarm=alarm, status=status, tp=tp)
    # 2-byte items cannot tell a 7-byte Tp from a 5-byte one by length: the caller says which.
    back = _round_trip(frame, tp_len=tp.size if tp else 0) if element.size == 2 else _round_trip(frame)
    readings = parse_readings(back)
    assert list(readings.values) == values and (readings.alarm, readings.status) == (alarm, status)


@given(
    addresses,
    st.lists(st.tuples(flows, volumes), min_size=1, max_size=4),
    labels,
    labels,
    st.one_of(st.none(), st.integers(0, 3)),
    st.one_of(st.none(), st.integers(0, 15)),
)
def test_confirm_round_trip(
    address: Address,
    meters: list[tuple[object, object]],
    report_tp: TimeLabel | None,
    tp: TimeLabel | None,
    mode: int | None,
    function: int | None,
) -> None:
    report = build_flow_report(address, meters, tp=report_tp)  # type: ignore[arg-type]
    confirm = _round_trip(build_confirm(report, work_mode=mode, tp=tp, function=function))
    assert confirm.direction is Direction.DOWN and confirm.afn == AFN.REPORT
    assert confirm.function == (report.function if function is None else function)
    assert parse_confirm(confirm).work_mode == mode and parse_confirm(confirm).tp == tp


@given(addresses, st.integers(0, 15), fcbs, labels)
def test_realtime_query_round_trip(address: Address, function: int, fcb: int, tp: TimeLabel | None) -> None:
    frame = _round_trip(build_realtime_query(address, function, fcb=fcb, tp=tp))
    assert frame.data == b"" and frame.afn == AFN.QUERY_REALTIME


@given(addresses, clocks, clocks, labels)
def test_stored_query_round_trip(address: Address, start: Clock, end: Clock, tp: TimeLabel | None) -> None:
    frame = _round_trip(build_stored_query(address, start, end, tp=tp))
    # Stamps carry no weekday.
    assert parse_stored_query(frame) == (replace(start, weekday=0), replace(end, weekday=0))


@given(addresses, clocks, pws, labels)
def test_clock_set_read_and_answer_round_trip(address: Address, clock: Clock, pw: bytes, tp: TimeLabel | None) -> None:
    set_clock = _round_trip(build_set_clock(address, clock, pw=pw, tp=tp))
    assert set_clock.pw == pw and parse_clock(set_clock) == clock
    _round_trip(build_read_clock(address, tp=tp))
    assert parse_clock(_round_trip(build_clock_answer(address, clock))) == clock


@given(addresses, words, st.lists(st.integers(0, 9999), max_size=8), pws, st.one_of(st.none(), labels5))
def test_kinds_round_trip(address: Address, kinds: int, intervals: list[int], pw: bytes, tp: TimeLabel | None) -> None:
    query = _round_trip(build_set_query_kinds(address, kinds, pw=pw, tp=tp))
    assert parse_kinds(query).kinds == kinds and query.pw == pw
    report = _round_trip(build_set_report_kinds(address, kinds, intervals, pw=pw, tp=tp))
    assert parse_kinds(report).intervals_min == tuple(intervals)


@given(
    addresses,
    st.binary(min_size=1, max_size=5000),
    st.sampled_from([AFN.PICTURE, AFN.PICTURE_REPORT]),
    st.sampled_from([300, 1024]),
)
def test_picture_frames_round_trip(address: Address, image: bytes, afn: int, chunk: int) -> None:
    frames = build_picture_frames(address, image, afn=afn, chunk=chunk)
    assert b"".join(parse_picture(_round_trip(f)) for f in frames) == image
    if len(frames) > 1:
        assert [f.divs for f in frames] == list(range(len(frames), 0, -1))
    for frame in frames:
        raw = encode(frame)
        assert raw[1] == -(-(len(frame.data) - 2) // 1024)  # L counts KiB of image


def test_picture_query() -> None:
    frame = _round_trip(build_picture_query(A13, 7))
    assert frame.data == b"\x07" and frame.direction is Direction.DOWN


def test_picture_frame_with_an_ordinary_length_still_decodes() -> None:
    frame = build_picture_frames(A13, b"\x01\x02\x03")[0]
    user = encode(frame)[3:-2]
    raw = bytes((0x68, len(user), 0x68)) + user + bytes((crc8(user), 0x16))
    assert decode(raw) == frame


def test_picture_frame_with_floor_length_decodes() -> None:
    frame = build_picture_frames(A13, b"\x05" * 100)[0]
    raw = bytearray(encode(frame))
    raw[1] = 0  # 100 // 1024
    assert decode(bytes(raw)) == frame


# -- PW and Tp -----------------------------------------------------------------------------------


def test_pw_policy() -> None:
    assert carries_pw(False, 0x11) and carries_pw(False, 0x92) and carries_pw(False, 0xA1)
    assert not carries_pw(True, 0x11) and not carries_pw(False, 0xC0) and not carries_pw(False, 0x51)


def test_pw_keys() -> None:
    assert make_pw(3, 456) == bytes.fromhex("3456")
    assert parse_pw(make_pw(9, 999)) == (9, 999)
    with pytest.raises(EncodeError):
        make_pw(10, 0)
    with pytest.raises(DataError):
        parse_pw(b"\xa0\x00")


def test_pw_can_be_forced_either_way() -> None:
    frame = Frame(direction=Direction.DOWN, address=A13, afn=0x30, data=b"", pw=b"\x12\x34")
    assert decode(encode(frame)) == frame  # policy: 30H carries PW
    raw = encode(Frame(direction=Direction.DOWN, address=A13, afn=0x30, data=b"\x12\x34"))
    assert decode(raw, pw=False).data == b"\x12\x34"
    up = Frame(direction=Direction.UP, address=A13, afn=0x77, data=b"\x01", pw=b"\x00\x01")
    assert decode(encode(up), pw=True) == up


def test_tp_inference_rule() -> None:
    payload_flow = bytes(14)  # one meter and the state words: no room for a Tp
    assert infer_tp_len(True, 0xC0, 3, payload_flow) == 0
    assert infer_tp_len(True, 0xC0, 3, payload_flow + bytes.fromhex("004508090A")) == 5
    assert infer_tp_len(True, 0xC0, 3, payload_flow + bytes.fromhex("30151412052600")) == 7
    # The length fits a Tp but the bytes are not a time: no Tp.
    assert infer_tp_len(True, 0xC0, 3, payload_flow + bytes.fromhex("0099AA0900")) == 0
    # No rule for this AFN: everything is data.
    assert infer_tp_len(True, 0x77, 0, bytes.fromhex("004508090A")) == 0
    # Confirms: 0 or 1 data byte.
    for data in (b"", b"\x01"):
        for label in (b"", bytes.fromhex("004508090A"), bytes.fromhex("30151412052600")):
            assert infer_tp_len(False, 0xC0, 3, data + label) == len(label)


def test_tp_length_can_be_forced() -> None:
    label = TimeLabel(second=1, minute=2, hour=3, day=4, delay_min=0)
    frame = build_flow_report(A13, [(1.0, 2)], status=0x0099, tp=label)
    raw = encode(frame)
    assert decode(raw, tp_len=5) == frame
    assert decode(raw, tp_len=0).data == frame.data + frame.tp.to_bytes()  # type: ignore[union-attr]
    with pytest.raises(DataError):
        decode(raw, tp_len=7)  # the last 7 bytes start 99H 00H: not a time label
    with pytest.raises(UnsupportedError):
        decode(raw, tp_len=6)
    with pytest.raises(DataError):
        decode(encode(Frame(direction=Direction.UP, address=A13, afn=0x02, data=b"\xf2")), tp_len=5)


def test_two_byte_items_prefer_the_szy206_label() -> None:
    tp7 = TimeLabel(second=30, minute=15, hour=14, day=12, month=5, year=26, delay_min=5)
    raw = encode(build_readings(A13, 13, [12.34], tp=tp7))
    assert decode(raw).tp != tp7  # documented ambiguity: 5 wins
    assert decode(raw, tp_len=7).tp == tp7


# -- errors --------------------------------------------------------------------------------------


def test_wrong_check_is_a_checksum_error() -> None:
    raw = bytearray(KEEPALIVE)
    raw[-2] ^= 0x01
    with pytest.raises(ChecksumError) as info:
        decode(bytes(raw))
    assert (info.value.expected, info.value.found) == (0x3C, 0x3D)
    raw = bytearray(KEEPALIVE)
    raw[5] ^= 0x40  # a data bit
    with pytest.raises(ChecksumError):
        decode(bytes(raw))


@pytest.mark.parametrize(
    "raw",
    [
        KEEPALIVE[:-1],  # truncated
        KEEPALIVE + b"\x16",  # one byte too many
        KEEPALIVE[:1] + b"\x09" + KEEPALIVE[2:],  # L says 9
        KEEPALIVE[:1] + b"\x03" + KEEPALIVE[2:],  # L too small for any frame
        b"\x68\x08\x68",
        b"",
    ],
)
def test_wrong_length_is_a_length_error(raw: bytes) -> None:
    with pytest.raises(LengthError):
        decode(raw)


def test_missing_end_byte_is_an_end_byte_error() -> None:
    with pytest.raises(EndByteError):
        decode(KEEPALIVE[:-1] + b"\x17")


@pytest.mark.parametrize("raw", [b"\x69" + KEEPALIVE[1:], KEEPALIVE[:2] + b"\x69" + KEEPALIVE[3:], b"\x00"])
def test_wrong_start_is_a_start_byte_error(raw: bytes) -> None:
    with pytest.raises(StartByteError):
        decode(raw)


def test_all_errors_share_the_root_and_value_error() -> None:
    for cls in (ChecksumError, LengthError, EndByteError, StartByteError, DataError, UnsupportedError, EncodeError):
        assert issubclass(cls, SZY206Error) and issubclass(cls, ValueError)
        assert cls.reason


def test_frame_constructor_checks_fields() -> None:
    with pytest.raises(EncodeError):
        Frame(direction=Direction.UP, div=True, address=A13, afn=0xC0)  # DIV without DIVS
    with pytest.raises(EncodeError):
        Frame(direction=Direction.UP, fcb=4, address=A13, afn=0xC0)
    with pytest.raises(EncodeError):
        Frame(direction=Direction.UP, address=A13, afn=0xC0, pw=b"\x00")
    with pytest.raises(EncodeError):
        Address(division="53038", station=1)
    with pytest.raises(EncodeError):
        TimeLabel(second=60, minute=0, hour=0, day=1)
    with pytest.raises(EncodeError):
        encode(Frame(direction=Direction.UP, address=A13, afn=0xC0, data=bytes(250)))


def test_parsers_refuse_other_frames() -> None:
    keepalive = decode(KEEPALIVE)
    for parser in (
        parse_flow_report,
        parse_confirm,
        parse_clock,
        parse_kinds,
        parse_picture,
        parse_stored_query,
        parse_link_reply,
        parse_readings,
    ):
        with pytest.raises(UnsupportedError):
            parser(keepalive)
    with pytest.raises(UnsupportedError):
        parse_flow_report(build_readings(A13, 2, [1.0]))


def test_mode_2_address_round_trips() -> None:
    raw = encode(
        Frame(direction=Direction.UP, address=Address(division="0012AB", station=0xCDEF), afn=0x02, data=b"\xf2")
    )
    frame = decode(raw)
    assert frame.address.sl502_code == "12ABEFCD"
    assert A13.sl502_code is None


# -- fuzz ----------------------------------------------------------------------------------------


@given(st.binary(max_size=300), st.sampled_from([None, 0, 5, 7]), st.sampled_from([None, True, False]))
def test_random_bytes_raise_only_codec_errors(raw: bytes, tp_len: int | None, pw: bool | None) -> None:
    with contextlib.suppress(SZY206Error):
        decode(raw, tp_len=tp_len, pw=pw)


@given(st.binary(min_size=7, max_size=255), st.sampled_from([None, 0, 5, 7]), st.sampled_from([None, True, False]))
def test_random_user_data_with_a_good_check_decodes_or_raises_codec_errors(
    user: bytes, tp_len: int | None, pw: bool | None
) -> None:
    raw = bytes((0x68, len(user), 0x68)) + user + bytes((crc8(user), 0x16))
    try:
        frame = decode(raw, tp_len=tp_len, pw=pw)
    except SZY206Error:
        return
    view = describe(frame)  # never raises on a decoded frame
    assert view["crc_ok"] is True
    for parser in (
        parse_flow_report,
        parse_confirm,
        parse_clock,
        parse_kinds,
        parse_picture,
        parse_stored_query,
        parse_link,
        parse_link_reply,
        parse_readings,
    ):
        with contextlib.suppress(SZY206Error):
            parser(frame)
