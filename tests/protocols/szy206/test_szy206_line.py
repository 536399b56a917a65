"""protocols/szy206/line.py: frames out of one stream, whatever the size of a read; idle partial frames given up."""

from __future__ import annotations

import random

from meterlink.protocols.szy206 import NEED_DATA, Address, Frame, LineReader, LinkKind, build_link, encode

LOGIN = encode(build_link(Address(division="530381", station=13), LinkKind.LOGIN))


def frames(reader: LineReader) -> list[Frame]:
    out = []
    while (frame := reader.next_frame()) is not NEED_DATA:
        out.append(frame)
    return out


def test_one_read_of_any_size_is_taken_and_counted() -> None:
    """A megabyte of noise in one read (more than the reassembler holds) and the frame behind it."""
    noise = random.Random(1).randbytes(1 << 20).replace(b"\x68", b"\x00")
    reader = LineReader()
    reader.feed(noise + LOGIN, 0)
    assert len(frames(reader)) == 1
    assert reader.bytes_discarded == len(noise) and reader.buffered == 0


def test_counts_survive_a_new_connection_and_an_idle_partial_frame_is_given_up() -> None:
    reader = LineReader(resync_after_ms=100)
    reader.feed(b"\x00" + LOGIN[:6], 10)
    assert reader.deadline() == 110 and not reader.tick(109)
    assert reader.drop_buffered() == 6 and reader.deadline() is None
    reader.feed(b"\x68\xff\x68" + LOGIN, 200)
    assert frames(reader) == [] and reader.tick(300)
    assert len(frames(reader)) == 1
    # Discarded: the noise byte and the fake header's three; the partial login was dropped uncounted.
    assert (reader.bytes_discarded, reader.frames_rejected, reader.frames_received, reader.resyncs) == (4, 1, 1, 1)
