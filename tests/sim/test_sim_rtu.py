"""protocols/modbus/rtu.py and tcp.py: CRC, frames, the hunting request framer, the MBAP header."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from meterlink.protocols.modbus import rtu, tcp
from meterlink.protocols.modbus.rtu import (
    NEED_DATA,
    ExceptionReply,
    FrameError,
    ReadResponse,
    Request,
    RequestFramer,
)

units = st.integers(0, 255)
read_functions = st.sampled_from([3, 4])
words = st.integers(0, 0xFFFF)


@pytest.mark.parametrize(
    ("frame", "crc"),
    [
        (bytes.fromhex("01 03 00 00 00 0A"), bytes.fromhex("C5 CD")),  # TUF-2000F manual p.21
        (bytes.fromhex("01 03 00 00 00 1A"), bytes.fromhex("C4 01")),  # MFE600E full block read
        (b"123456789", (0x4B37).to_bytes(2, "little")),  # CRC-16/MODBUS check value
    ],
)
def test_crc_known_values(frame: bytes, crc: bytes) -> None:
    """The CRC matches published frames and the catalogue check value, low byte first."""
    assert rtu.crc_bytes(frame) == crc
    assert rtu.check_crc(frame + crc)
    assert not rtu.check_crc(frame + crc[::-1])


def test_build_request_matches_the_manual() -> None:
    """The TUF-2000 manual's example request is built byte for byte."""
    assert rtu.build_request(1, 3, 0, 10) == bytes.fromhex("01 03 00 00 00 0A C5 CD")


def test_exception_frame() -> None:
    """An exception response is unit, fc|0x80, code, CRC."""
    frame = rtu.build_exception(1, 3, 4)
    assert frame[:3] == bytes([1, 0x83, 4]) and len(frame) == 5
    assert rtu.parse_response(frame) == ExceptionReply(1, 3, 4)


def test_response_of_the_emf_manual_example() -> None:
    """`01 03 04 BE 80 00 00` + CRC holds the registers 0xBE80 0x0000 (= -0.25 as float32 ABCD)."""
    frame = bytes.fromhex("01 03 04 BE 80 00 00")
    assert rtu.parse_response(frame + rtu.crc_bytes(frame)) == ReadResponse(1, 3, (0xBE80, 0))


@given(units, st.sampled_from([3, 4, 6]), words, st.integers(1, 125))
def test_request_round_trip(unit: int, function: int, address: int, count: int) -> None:
    """build_request then parse_request gives the request back."""
    assert rtu.parse_request(rtu.build_request(unit, function, address, count)) == Request(
        unit, function, address, count
    )


@given(units, read_functions, st.lists(words, min_size=1, max_size=125))
def test_response_round_trip(unit: int, function: int, registers: list[int]) -> None:
    """build_response then parse_response gives the registers back."""
    frame = rtu.build_response(unit, function, registers)
    assert len(frame) == 5 + 2 * len(registers)
    assert rtu.parse_response(frame) == ReadResponse(unit, function, tuple(registers))


@given(units, st.integers(1, 0x7F), st.integers(1, 255))
def test_exception_round_trip(unit: int, function: int, code: int) -> None:
    """Exception frames round-trip for every function and code."""
    assert rtu.parse_response(rtu.build_exception(unit, function, code)) == ExceptionReply(unit, function, code)


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    """Parsing arbitrary bytes returns a frame or raises FrameError, nothing else."""
    for parse in (rtu.parse_request, rtu.parse_response, tcp.decode_mbap):
        with contextlib.suppress(FrameError):
            parse(data)


@given(st.binary(max_size=200), st.integers(1, 64))
def test_framer_survives_random_bytes(data: bytes, chunk: int) -> None:
    """The framer never raises on any stream, and every request it returns has a valid CRC."""
    framer = RequestFramer()
    for i in range(0, len(data), chunk):
        framer.feed(data[i : i + chunk])
        while (request := framer.next_request()) is not NEED_DATA:
            assert isinstance(request, Request)
    assert framer.pending < rtu.REQUEST_SIZE
    assert framer.dropped + framer.pending + 8 * framer.frames == len(data)


def _only_valid_window_is_last(stream: bytes) -> bool:
    last = len(stream) - rtu.REQUEST_SIZE
    return not any(
        stream[i + 1] in rtu.REQUEST_FUNCTIONS and rtu.check_crc(stream[i : i + rtu.REQUEST_SIZE]) for i in range(last)
    )


@given(st.binary(max_size=40), units, st.sampled_from([3, 4, 6]), words, st.integers(1, 125), st.booleans())
def test_framer_hunts_through_garbage(
    garbage: bytes, unit: int, function: int, address: int, count: int, bytewise: bool
) -> None:
    """Garbage before a request is dropped byte by byte and counted; the request comes out whole."""
    frame = rtu.build_request(unit, function, address, count)
    assume(_only_valid_window_is_last(garbage + frame))
    framer = RequestFramer()
    found: list[Request] = []
    stream = garbage + frame
    chunks = [stream[i : i + 1] for i in range(len(stream))] if bytewise else [stream]
    for piece in chunks:
        framer.feed(piece)
        while (request := framer.next_request()) is not NEED_DATA:
            found.append(request)
    assert found == [Request(unit, function, address, count)]
    assert framer.dropped == len(garbage)


def test_framer_skips_a_bad_crc_and_counts_it() -> None:
    """A request with a corrupted CRC is skipped (counted once) and the next good one is found."""
    good = rtu.build_request(7, 4, 100, 2)
    bad = bytearray(rtu.build_request(1, 3, 0, 10))
    bad[-1] ^= 0x55
    framer = RequestFramer()
    framer.feed(bytes(bad) + good)
    assert framer.next_request() == Request(7, 4, 100, 2)
    assert framer.next_request() is NEED_DATA
    assert framer.bad_crc == 1
    assert framer.dropped == len(bad)


def test_framer_returns_back_to_back_requests() -> None:
    """Two requests in one chunk come out in order; a partial one waits for more bytes."""
    a, b = rtu.build_request(1, 3, 0, 2), rtu.build_request(2, 3, 4, 4)
    framer = RequestFramer()
    framer.feed(a + b + b[:5])
    assert framer.next_request() == Request(1, 3, 0, 2)
    assert framer.next_request() == Request(2, 3, 4, 4)
    assert framer.next_request() is NEED_DATA
    framer.feed(b[5:])
    assert framer.next_request() == Request(2, 3, 4, 4)


def test_framer_buffer_is_bounded() -> None:
    """Past max_buffer bytes the oldest are dropped and counted, never kept."""
    framer = RequestFramer(max_buffer=64)
    framer.feed(b"\x00" * 1000)
    assert framer.pending == 64 and framer.dropped == 936
    assert framer.next_request() is NEED_DATA
    assert framer.dropped == 1000 - framer.pending


def test_out_of_range_read_count_is_framed_not_refused() -> None:
    """A read of 0 registers with a valid CRC is a request the server answers with exception 03."""
    frame = bytes([1, 3, 0, 0, 0, 0])
    frame += rtu.crc_bytes(frame)
    assert rtu.parse_request(frame) == Request(1, 3, 0, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: rtu.build_request(256, 3, 0, 1),
        lambda: rtu.build_request(1, 5, 0, 1),
        lambda: rtu.build_request(1, 3, 0, 126),
        lambda: rtu.build_request(1, 3, 0x10000, 1),
        lambda: rtu.build_response(1, 3, []),
        lambda: rtu.build_response(1, 3, [0x10000]),
        lambda: rtu.build_exception(1, 3, 0),
        lambda: tcp.encode_mbap(0x10000, 1, b"\x03"),
        lambda: tcp.encode_mbap(1, 1, b""),
    ],
)
def test_bad_arguments_raise_frame_error(call: object) -> None:
    """Values that cannot go in a frame raise FrameError."""
    with pytest.raises(FrameError):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    "frame",
    [
        bytes.fromhex("01 03 04 00 01"),  # truncated
        bytes.fromhex("01 03 03 00 01 00") + b"\x00\x00",  # odd byte count, bad CRC
        rtu.with_pdu(1, bytes.fromhex("03 04 00 01")),  # byte count says 4, 2 follow
        rtu.with_pdu(1, bytes.fromhex("10 00 00 00 01")),  # not a read
        rtu.with_pdu(1, bytes.fromhex("83 04 00")),  # exception with an extra byte
    ],
)
def test_malformed_responses(frame: bytes) -> None:
    """Malformed responses raise FrameError with a reason."""
    with pytest.raises(FrameError):
        rtu.parse_response(frame)


@given(words, units, st.binary(min_size=1, max_size=253))
def test_mbap_round_trip(tid: int, unit: int, pdu: bytes) -> None:
    """encode_mbap then decode_mbap gives the header; length counts unit + PDU."""
    frame = tcp.encode_mbap(tid, unit, pdu)
    header = tcp.decode_mbap(frame)
    assert (header.transaction_id, header.protocol_id, header.unit) == (tid, 0, unit)
    assert header.pdu_size == len(pdu) and frame[tcp.MBAP_SIZE :] == pdu


def test_mbap_refuses_other_protocols_and_lengths() -> None:
    """A non-zero protocol id or a length outside 2..254 is not Modbus TCP."""
    with pytest.raises(FrameError, match="protocol"):
        tcp.decode_mbap(bytes.fromhex("0001 0001 0006 01"))
    with pytest.raises(FrameError, match="length"):
        tcp.decode_mbap(bytes.fromhex("0001 0000 0001 01"))
    with pytest.raises(FrameError, match="length"):
        tcp.decode_mbap(bytes.fromhex("0001 0000 00FF 01"))
