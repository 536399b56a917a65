"""Property tests: encode -> decode round trips for every function and element type, random
bytes raise only the codec's own errors, and the reassembler finds every frame among garbage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.protocols.sl651 import (
    NEED_DATA,
    Body,
    Direction,
    Element,
    EncodeError,
    Encoding,
    Frame,
    Reassembler,
    SL651Error,
    decode,
    encode,
    encode_body,
    parse_body,
)
from meterlink.protocols.sl651.codes import END_CHARS, FUNCTION_NAMES, TYPED
from meterlink.protocols.sl651.describe import describe
from meterlink.protocols.sl651.messages import number_element, observed_element, station_element
from meterlink.protocols.sl651.values import decode_number

FUNCTIONS = sorted(FUNCTION_NAMES)
IDENTS = st.one_of(st.integers(0x01, 0x75).filter(lambda i: i != 0x04), st.integers(0xFF00, 0xFFFE))
times = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(lambda t: t.replace(microsecond=0))


@st.composite
def numbers(draw: st.DrawFn) -> Element:
    decimals = draw(st.integers(0, 7))
    size = draw(st.integers(1, 8))
    magnitude = draw(st.integers(0, 10 ** (2 * (size - 1)) - 1)) if size > 1 else draw(st.integers(0, 99))
    value = -magnitude if draw(st.booleans()) and size > 1 and magnitude else magnitude
    ident = draw(IDENTS)
    if draw(st.booleans()):
        return number_element(ident, None, size << 3 | decimals)  # invalid: all FFH
    return number_element(ident, value / 10**decimals if decimals else value, size << 3 | decimals)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    function = draw(st.sampled_from(FUNCTIONS))
    up = draw(st.booleans())
    when = draw(times)
    elements: list[Element] = []
    if up and function in TYPED:
        elements += [station_element(b"\x00\x12\x34\x56\x78", 0x48), observed_element(when)]
    if function not in (0x3A, 0x41, 0x43, 0x38, 0x45, 0x50, 0x31):
        elements += draw(st.lists(numbers(), max_size=6))
    prefix = bytes.fromhex(when.strftime("%y%m%d%H") * 2) if function == 0x38 and not up else b""
    body = Body(draw(st.integers(0, 0xFFFF)), when, tuple(elements), prefix)
    return Frame(
        center=draw(st.integers(0, 255)),
        station=draw(st.binary(min_size=5, max_size=5)),
        password=draw(st.integers(0, 0xFFFF)),
        function=function,
        direction=Direction.UP if up else Direction.DOWN,
        body=encode_body(body),
        end=draw(st.sampled_from(sorted(END_CHARS))),
    )


@settings(max_examples=300)
@given(frames())
def test_frame_and_body_round_trip(frame: Frame) -> None:
    """encode -> decode gives the frame back, and its body re-encodes to the same bytes."""
    back = decode(encode(frame))
    assert back == frame
    assert encode_body(parse_body(back)) == frame.body
    describe(back)  # the JSON view of any frame we can build


@given(numbers())
def test_number_values_round_trip(element: Element) -> None:
    """BCD, negative (FFH first) and invalid (all FFH) values decode to what was encoded."""
    assert element.definition is not None
    value = decode_number(element.data, element.definition & 7)
    again = number_element(element.ident, value, element.definition)
    assert again == element


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_codec_errors(data: bytes) -> None:
    """Whatever arrives, decode and describe raise SL651Error or succeed."""
    for candidate in (data, b"\x7e\x7e" + data, b"\x01" + data):
        try:
            describe(decode(candidate))
        except SL651Error:
            pass


@settings(max_examples=100)
@given(st.lists(st.tuples(frames(), st.binary(max_size=40)), min_size=1, max_size=8), st.integers(1, 64))
def test_reassembler_finds_every_frame_among_garbage(pairs: list[tuple[Frame, bytes]], chunk: int) -> None:
    """Frames with garbage before each, fed in chunks: every frame comes out, in order."""
    wire = b"".join(noise.replace(b"\x7e\x7e", b"\x7e") + encode(frame) for frame, noise in pairs)
    reader, out = Reassembler(ascii_frames=False), []
    for at in range(0, len(wire), chunk):
        reader.feed(wire[at : at + chunk])
        while (frame := reader.next_frame()) is not NEED_DATA:
            out.append(frame)
    assert out == [frame for frame, _ in pairs]


def test_ascii_frames_round_trip() -> None:
    """An ASCII report with elements: encode -> decode -> same text."""
    body = Body(
        25, datetime(2017, 7, 18, 11, 12, 4), (Element(0xF1F1, None, b"0012341234H"), Element(0x20, None, b"0.5"))
    )
    frame = Frame(
        1,
        bytes.fromhex("0012341234"),
        0x04D2,
        0x30,
        Direction.UP,
        encode_body(body, Encoding.ASCII),
        0x03,
        encoding=Encoding.ASCII,
    )
    back = decode(encode(frame))
    assert back == frame and parse_body(back) == body


GOOD = Frame(1, b"\x00\x12\x34\x56\x78", 0x1234, 0x32, Direction.UP, b"\x00\x01" + bytes(6), 0x03)


@pytest.mark.parametrize(
    "change",
    [
        {"center": 256},
        {"center": -1},
        {"station": b"\x00\x12\x34\x56"},
        {"password": 0x10000},
        {"function": 256},
        {"start": 0x05},
        {"end": 0x41},
        {"start": 0x16},
        {"packet": (1, 1)},
        {"start": 0x16, "packet": (1, 2)},
        {"body": bytes(0x1000)},
    ],
)
@pytest.mark.parametrize("encoding", [Encoding.HEX, Encoding.ASCII])
def test_encode_refuses_fields_out_of_range(change: dict[str, Any], encoding: Encoding) -> None:
    """Every field out of range is an EncodeError, before any byte is formatted."""
    encode(GOOD._replace(encoding=encoding))
    with pytest.raises(EncodeError):
        encode(GOOD._replace(encoding=encoding, **change))
