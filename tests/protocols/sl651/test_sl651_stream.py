"""protocols/sl651/stream.py: the reassembler's hunting at the edges of its buffer."""

from __future__ import annotations

from datetime import datetime

from meterlink.protocols.sl651 import NEED_DATA, Reassembler, encode
from meterlink.protocols.sl651.messages import build_keep_alive


def test_a_last_7e_is_kept_as_a_possible_start_until_a_resync_drops_it() -> None:
    """A resync past a trailing 7EH must not step back onto it (a caller that resyncs until
    nothing is buffered would loop for ever)."""
    reader = Reassembler()
    reader.feed(b"\x00\x7e")
    assert reader.next_frame() is NEED_DATA and reader.buffered == 1 and reader.bytes_discarded == 1
    reader.resync()
    assert reader.next_frame() is NEED_DATA
    assert (reader.buffered, reader.bytes_discarded, reader.frames_rejected) == (0, 2, 1)


def test_a_frame_after_a_kept_7e_is_found() -> None:
    wire = encode(build_keep_alive(center=1, station=bytes(5), password=0, serial=1, send_time=datetime(2026, 3, 1)))
    reader = Reassembler()
    reader.feed(b"\x00\x7e")
    assert reader.next_frame() is NEED_DATA
    reader.feed(wire)
    frame = reader.next_frame()
    assert frame is not NEED_DATA and encode(frame) == wire
    assert reader.bytes_discarded == 2 and reader.buffered == 0
