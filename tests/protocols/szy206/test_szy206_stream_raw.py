"""Split layer of the reassembler (next_raw, frames_raw) and the batch CRC it checks frames with.

The reassembler cuts the buffer with a regular expression and checks CRCs a read at a time; the
tests hold it to the hunting rules applied position by position (``Reference`` below, the rules
as notes section 4 states them): same frames, same counts, for any stream and any chunking.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.szy206_frames import A13, TP5

from meterlink.protocols.szy206 import (
    NEED_DATA,
    Address,
    BufferFullError,
    Direction,
    Frame,
    LinkKind,
    Reassembler,
    build_confirm,
    build_flow_report,
    build_link,
    build_picture_frames,
    build_realtime_query,
    decode,
    encode,
)
from meterlink.protocols.szy206.crc import crc8, crc8_many, crc8_reference
from meterlink.protocols.szy206.frame import picture_total

REPORT = build_flow_report(A13, [(5.9, 106182), (None, 404000)], alarm=0x1001, status=0x60, tp=TP5)
SAMPLES: list[Frame] = [
    build_link(A13, LinkKind.LOGIN),
    REPORT,
    build_confirm(REPORT, tp=TP5),
    build_realtime_query(A13),
    build_flow_report(Address(division="440607", station=256), [(1.0, 2)] * 8, tp=TP5),  # 101 bytes
    Frame(direction=Direction.UP, div=True, divs=2, address=A13, afn=0x53, data=b""),  # L = 8, DIV
    *build_picture_frames(A13, bytes(range(256)) * 5),  # a 1 KiB chunk (L = 1) and a 256-byte one
]
RAWS = [encode(frame) for frame in SAMPLES]


class Reference:
    """The hunting rules, position by position, returning wire bytes: skip to the next 68H; require
    68H two bytes on; take L + 5 bytes, or the picture length, if the last is 16H and the CRC
    matches; otherwise reject the candidate and drop one byte; wait when bytes are missing."""

    def __init__(self) -> None:
        self.buf = b""
        self.discarded = 0
        self.rejected = 0

    def feed(self, data: bytes) -> None:
        self.buf += data

    def resync(self) -> None:
        if self.buf:
            self.buf = self.buf[1:]
            self.discarded += 1
            self.rejected += 1

    def _take(self, buf: bytes, pos: int, end: int) -> bool:
        return end <= len(buf) and buf[end - 1] == 0x16 and crc8_reference(buf[pos + 3 : end - 2]) == buf[end - 2]

    def next_raw(self) -> bytes | None:
        buf, pos = self.buf, 0
        while True:
            found = buf.find(b"\x68", pos)
            if found < 0:
                self.discarded += len(buf) - pos
                self.buf = b""
                return None
            self.discarded += found - pos
            pos = found
            if len(buf) - pos < 4:
                break
            if buf[pos + 2] != 0x68:
                self.discarded += 1
                pos += 1
                continue
            length = buf[pos + 1]
            if length >= 7 + (1 if buf[pos + 3] & 0x40 else 0):
                end = pos + length + 5
                if end > len(buf):
                    break
                if self._take(buf, pos, end):
                    self.buf = buf[end:]
                    return buf[pos:end]
            total = picture_total(buf, pos)
            if total == 0 or pos + total > len(buf):
                break
            if total > 0 and self._take(buf, pos, pos + total):
                self.buf = buf[pos + total :]
                return buf[pos : pos + total]
            self.rejected += 1
            self.discarded += 1
            pos += 1
        self.buf = buf[pos:]
        return None

    def drain(self) -> list[bytes]:
        out = []
        while (raw := self.next_raw()) is not None:
            out.append(raw)
        return out


def drain_raw(reassembler: Reassembler) -> list[bytes]:
    out = []
    while (raw := reassembler.next_raw()) is not NEED_DATA:
        assert isinstance(raw, bytes)
        out.append(raw)
    return out


def corrupt(raw: bytes, spot: int, flip: int) -> bytes:
    bad = bytearray(raw)
    bad[spot % len(bad)] ^= flip
    return bytes(bad)


# Pieces of a hostile stream: good frames, frames with a byte flipped, noise rich in 68H and 16H,
# headers 68H L 68H with any L (impossible, stalling, or picture-like ones), a picture cut short.
pieces = st.one_of(
    st.sampled_from(RAWS),
    st.sampled_from(RAWS),
    st.builds(corrupt, st.sampled_from(RAWS), st.integers(0, 2000), st.integers(1, 255)),
    st.binary(max_size=30),
    st.lists(st.sampled_from([0x68, 0x16, 0x00, 0x08, 0xC0]), max_size=12).map(bytes),
    st.builds(lambda length, tail: bytes((0x68, length, 0x68)) + tail, st.integers(0, 255), st.binary(max_size=12)),
    st.sampled_from([RAWS[-2][:40], RAWS[1][:-1]]),
)
cut_points = st.lists(st.integers(0, 10_000), max_size=12)


def take(reassembler: Reassembler, mode: str) -> list[bytes] | list[Frame]:
    if mode == "frames_raw":
        raws: list[bytes] = reassembler.frames_raw()
        return raws
    if mode == "next_raw":
        return drain_raw(reassembler)
    frames = []
    while (frame := reassembler.next_frame()) is not NEED_DATA:
        assert isinstance(frame, Frame)
        frames.append(frame)
    return frames


def run_both(stream: bytes, cuts: list[int], mode: str) -> None:
    """Feed both in the same pieces; after each drain, the same frames and the same counts."""
    reassembler, reference = Reassembler(), Reference()

    def same() -> None:
        got = take(reassembler, mode)
        expected = reference.drain()
        assert got == (expected if mode != "next_frame" else [decode(raw) for raw in expected])
        assert (reassembler.bytes_discarded, reassembler.frames_rejected) == (reference.discarded, reference.rejected)
        assert reassembler.buffered == len(reference.buf)
        taken.append(len(got))

    taken: list[int] = []
    edges = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        reassembler.feed(stream[start:end])
        reference.feed(stream[start:end])
        same()
    while reference.buf:  # the link goes idle on a stalled candidate: both give it up
        reassembler.resync()
        reference.resync()
        same()
    assert reassembler.buffered == 0 and reassembler.frames_decoded == sum(taken)


MODES = ["frames_raw", "next_raw", "next_frame"]


@settings(max_examples=300)
@given(st.lists(pieces, max_size=25), cut_points, st.sampled_from(MODES))
def test_same_frames_and_counts_as_the_rules_position_by_position(
    parts: list[bytes], cuts: list[int], mode: str
) -> None:
    run_both(b"".join(parts), cuts, mode)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bad_share", [0.02, 0.3])
def test_long_hostile_streams_match_the_rules(seed: int, bad_share: float) -> None:
    """Streams long enough for every path: long runs (batch CRC) with a bad frame inside, recuts
    over windows, hunting through dense noise, pictures longer than a window, reads of any size."""
    rng = random.Random(seed)
    parts = []
    for _ in range(1500):
        roll = rng.random() / bad_share
        if roll >= 1:
            parts.append(rng.choice(RAWS[:6]) if roll >= 1.2 else rng.choice(RAWS[6:]))
        elif roll < 0.4:
            parts.append(corrupt(rng.choice(RAWS), rng.randrange(2000), rng.randrange(1, 256)))
        elif roll < 0.6:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(20))))
        elif roll < 0.8:
            parts.append(bytes(rng.choice(b"\x68\x16\x00\x08") for _ in range(rng.randrange(40))))
        else:
            parts.append(bytes((0x68, rng.randrange(256), 0x68)))
    stream = b"".join(parts)
    cuts = [rng.randrange(len(stream)) for _ in range(rng.choice([0, 3, 30, 300]))]
    run_both(stream, cuts, MODES[seed % 3])


def test_whole_stream_at_once() -> None:
    reassembler = Reassembler()
    reassembler.feed(b"".join(RAWS))
    assert reassembler.frames_raw() == RAWS
    assert reassembler.frames_raw() == [] and reassembler.next_raw() is NEED_DATA
    assert (reassembler.bytes_discarded, reassembler.frames_rejected, reassembler.frames_decoded) == (0, 0, len(RAWS))


@pytest.mark.parametrize("batch", [True, False])
def test_byte_by_byte(batch: bool) -> None:
    reassembler = Reassembler()
    got: list[bytes] = []
    stream = b"".join(RAWS)
    for i in range(len(stream)):
        reassembler.feed(stream[i : i + 1])
        got += reassembler.frames_raw() if batch else drain_raw(reassembler)
    assert got == RAWS
    assert reassembler.buffered == 0 and reassembler.bytes_discarded == 0


@given(st.lists(st.sampled_from(RAWS), min_size=1, max_size=10), cut_points)
def test_any_chunking_gives_the_same_raw_frames(raws: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(raws)
    reassembler = Reassembler()
    got: list[bytes] = []
    edges = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        reassembler.feed(stream[start:end])
        got += reassembler.frames_raw()
    assert got == raws
    assert (reassembler.bytes_discarded, reassembler.frames_rejected, reassembler.buffered) == (0, 0, 0)


@given(
    st.lists(st.tuples(st.binary(max_size=40).map(lambda b: b.replace(b"\x68", b"\x00")), st.sampled_from(RAWS))),
    cut_points,
)
def test_garbage_between_frames_is_counted(pairs: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(junk + raw for junk, raw in pairs) + b"\x01\x02"
    reassembler = Reassembler()
    got: list[bytes] = []
    edges = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        reassembler.feed(stream[start:end])
        got += drain_raw(reassembler)
    assert got == [raw for _, raw in pairs]
    assert reassembler.bytes_discarded == sum(len(junk) for junk, _ in pairs) + 2
    assert reassembler.frames_rejected == 0 and reassembler.buffered == 0


def test_resync_gives_up_a_stalled_candidate() -> None:
    bad = bytearray(RAWS[0])
    bad[1] = 200  # L claims 205 bytes
    reassembler = Reassembler()
    reassembler.feed(bytes(bad) + RAWS[1] + RAWS[3])
    assert reassembler.frames_raw() == [] and reassembler.next_raw() is NEED_DATA
    assert reassembler.buffered == len(bad) + len(RAWS[1]) + len(RAWS[3])
    reassembler.resync()
    assert reassembler.frames_raw() == [RAWS[1], RAWS[3]]
    assert (reassembler.frames_rejected, reassembler.bytes_discarded, reassembler.buffered) == (1, len(bad), 0)
    assert reassembler.last_error


def test_resync_keeps_complete_frames_not_yet_handed_out() -> None:
    stalled = bytes((0x68, 200, 0x68, 0xB0, 0, 0))
    reassembler = Reassembler()
    reassembler.feed(RAWS[0] + RAWS[1] + stalled)
    assert reassembler.next_raw() == RAWS[0]  # RAWS[1] waits in the queue
    assert reassembler.buffered == len(RAWS[1]) + len(stalled)
    reassembler.resync()  # gives up the stalled candidate, not the frame waiting
    assert reassembler.frames_raw() == [RAWS[1]]
    assert (reassembler.frames_rejected, reassembler.bytes_discarded, reassembler.buffered) == (1, len(stalled), 0)


def test_the_three_methods_share_one_queue() -> None:
    reassembler = Reassembler()
    reassembler.feed(b"".join(RAWS))
    assert reassembler.next_raw() == RAWS[0]
    assert reassembler.next_frame() == SAMPLES[1]
    assert reassembler.frames_raw() == RAWS[2:]
    assert reassembler.next_frame() is NEED_DATA and reassembler.next_raw() is NEED_DATA
    assert reassembler.frames_decoded == len(RAWS)


def test_raw_frames_decode_to_what_next_frame_returns() -> None:
    reassembler = Reassembler()
    reassembler.feed(b"".join(RAWS))
    raws = reassembler.frames_raw()
    reassembler.feed(b"".join(raws))
    frames = []
    while (frame := reassembler.next_frame()) is not NEED_DATA:
        frames.append(frame)
    assert frames == [decode(raw) for raw in raws] == SAMPLES


def test_raw_returns_a_frame_that_next_frame_drops() -> None:
    """The split layer checks framing and CRC; PW and Tp are the decoder's business."""
    keepalive = encode(build_link(A13, LinkKind.KEEPALIVE))  # no room for a 7-byte Tp
    raw_side, frame_side = Reassembler(tp_len=7), Reassembler(tp_len=7)
    raw_side.feed(keepalive)
    frame_side.feed(keepalive)
    assert raw_side.frames_raw() == [keepalive] and raw_side.frames_rejected == 0
    assert frame_side.next_frame() is NEED_DATA
    assert (frame_side.frames_rejected, frame_side.bytes_discarded, frame_side.frames_decoded) == (1, 13, 0)


def test_queued_frames_count_against_the_buffer_bound() -> None:
    reassembler = Reassembler(max_buffer=70_000)
    picture = encode(build_picture_frames(A13, bytes(60_000), chunk=60_000)[0])
    reassembler.feed(picture + RAWS[0])
    assert reassembler.next_raw() == picture  # RAWS[0] is cut and waits
    reassembler.feed(bytes(60_000))
    with pytest.raises(BufferFullError):
        reassembler.feed(bytes(10_000 - len(RAWS[0]) + 1))
    assert reassembler.next_raw() == RAWS[0]


def test_a_buffer_waiting_for_bytes_is_not_cut_again_until_fed() -> None:
    reassembler = Reassembler()
    raw = RAWS[1]
    reassembler.feed(raw[:10])
    assert reassembler.frames_raw() == [] and reassembler.frames_raw() == []
    reassembler.feed(raw[10:])
    assert reassembler.frames_raw() == [raw]


def test_a_bad_crc_frame_in_a_long_run_is_rejected_and_the_rest_found() -> None:
    frames = [RAWS[i % 6] for i in range(200)]
    frames[120] = corrupt(frames[120], -2, 0x01)  # its CS
    reassembler = Reassembler()
    reassembler.feed(b"".join(frames))
    got = reassembler.frames_raw()
    assert got == frames[:120] + frames[121:]
    assert reassembler.frames_rejected == 1 and reassembler.bytes_discarded == len(frames[120])


# -- crc8_many -------------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), max_size=80))
def test_crc8_many_is_crc8_of_each(blocks: list[bytes]) -> None:
    assert crc8_many(blocks) == bytes(map(crc8_reference, blocks))


@pytest.mark.parametrize("size", [0, 1, 62, 63, 64, 126, 127, 1034, 65_550])
def test_crc8_many_lane_boundaries(size: int) -> None:
    data = bytes((i * 37 + 11) & 0xFF for i in range(size))
    assert crc8_many([data, data[:1], data]) == bytes(
        (crc8_reference(data), crc8_reference(data[:1]), crc8_reference(data))
    )


def test_crc8_folds_inputs_of_any_length() -> None:
    """The fold once stopped at halves of 504 * 1024 bits: inputs over 129 024 bytes got a wrong CRC."""
    data = random.Random(1).randbytes(140_000)
    assert crc8(data) == crc8_reference(data) == crc8_many([data])[0]
