"""Modbus TCP answers cut from a byte stream, however the stream was split into reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.protocols.modbus import rtu, tcp

replies = st.builds(
    lambda tid, unit, registers: (tid, unit, rtu.read_response_pdu(3, registers)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFF),
    st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
)


@given(frames=st.lists(replies, min_size=1, max_size=8), cuts=st.lists(st.integers(1, 40), max_size=60))
def test_frames_come_out_whole_and_in_order_whatever_the_reads(
    frames: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(tcp.encode_mbap(tid, unit, pdu) for tid, unit, pdu in frames)
    framer = tcp.ReplyFramer()
    out: list[tuple[int, int, bytes]] = []
    at = 0
    for size in [*cuts, len(stream)]:
        framer.feed(stream[at : at + size])
        at += size
        while (reply := framer.next_reply()) is not None:
            out.append((reply.transaction_id, reply.unit, reply.pdu))
    assert out == frames
    assert framer.pending == 0


def test_a_partial_frame_waits_for_its_rest() -> None:
    frame = tcp.encode_mbap(7, 1, rtu.read_response_pdu(3, [1, 2]))
    framer = tcp.ReplyFramer()
    framer.feed(frame[:9])
    assert framer.next_reply() is None and framer.pending == 9
    framer.feed(frame[9:])
    assert framer.next_reply() == tcp.TcpReply(7, 1, frame[7:])
    assert framer.pending == 0


@pytest.mark.parametrize(
    "header",
    [
        b"\x00\x01\x00\x01\x00\x05\x01",  # protocol id 1
        b"\x00\x01\x00\x00\x00\x01\x01",  # length 1: not even a function code
        b"\x00\x01\x00\x00\x01\x00\x01",  # length 256
    ],
)
def test_a_header_that_is_not_modbus_is_a_frame_error(header: bytes) -> None:
    framer = tcp.ReplyFramer()
    framer.feed(header + b"\x03\x02\x00\x01")
    with pytest.raises(rtu.FrameError):
        framer.next_reply()
