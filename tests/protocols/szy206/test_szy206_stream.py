"""Stream reassembly: arbitrary chunking, coalesced frames, noise, resync, bounded buffer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.szy206_frames import A13, TP5

from meterlink.protocols.szy206 import (
    NEED_DATA,
    Address,
    BufferFullError,
    Frame,
    LinkKind,
    Reassembler,
    UnsupportedError,
    build_confirm,
    build_flow_report,
    build_link,
    build_picture_frames,
    build_realtime_query,
    decode,
    encode,
)

REPORT = build_flow_report(A13, [(5.9, 106182), (None, 404000)], alarm=0x1001, status=0x60, tp=TP5)
SAMPLES: list[Frame] = [
    build_link(A13, LinkKind.LOGIN),
    REPORT,
    build_confirm(REPORT, tp=TP5),
    build_realtime_query(A13),
    build_flow_report(Address(division="440607", station=256), [(1.0, 2)]),
    *build_picture_frames(A13, bytes(range(256)) * 5),
]
frame_lists = st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=8)
# Noise with 68H (false starts) but no 16H: a false start whose L ends on a 16H passes the CRC-8 one
# time in 256, and then noise genuinely forms a frame; that is the protocol, not the reassembler.
noise = st.binary(max_size=40).map(lambda b: b.replace(b"\x16", b"\x17"))
clean_noise = st.binary(max_size=40).map(lambda b: b.replace(b"\x68", b"\x00"))


def drain(reassembler: Reassembler) -> list[Frame]:
    out = []
    while (frame := reassembler.next_frame()) is not NEED_DATA:
        out.append(frame)
    return out


def feed_in_pieces(stream: bytes, cuts: list[int], **options: object) -> tuple[list[Frame], Reassembler]:
    reassembler = Reassembler(**options)  # type: ignore[arg-type]
    frames: list[Frame] = []
    edges = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        reassembler.feed(stream[start:end])
        frames += drain(reassembler)
    return frames, reassembler


@given(frame_lists, st.lists(st.integers(0, 10_000), max_size=30))
def test_any_chunking_gives_the_same_frames(frames: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(encode(f) for f in frames)
    got, reassembler = feed_in_pieces(stream, cuts)
    assert got == frames
    assert (reassembler.bytes_discarded, reassembler.frames_rejected) == (0, 0)
    assert reassembler.frames_decoded == len(frames) and reassembler.buffered == 0


def test_several_frames_in_one_read() -> None:
    reassembler = Reassembler()
    reassembler.feed(b"".join(encode(f) for f in SAMPLES))
    assert drain(reassembler) == SAMPLES


@given(
    st.lists(st.tuples(clean_noise, st.sampled_from(SAMPLES)), min_size=1, max_size=6),
    clean_noise,
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_noise_between_frames_is_counted_and_skipped(
    pairs: list[tuple[bytes, Frame]], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(junk + encode(f) for junk, f in pairs) + tail
    got, reassembler = feed_in_pieces(stream, cuts)
    assert got == [f for _, f in pairs]
    assert reassembler.bytes_discarded == sum(len(junk) for junk, _ in pairs) + len(tail)
    assert reassembler.frames_rejected == 0


@given(
    st.lists(st.tuples(noise, st.sampled_from(SAMPLES)), min_size=1, max_size=6),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_noise_with_false_starts_still_yields_every_frame(pairs: list[tuple[bytes, Frame]], cuts: list[int]) -> None:
    stream = b"".join(junk + encode(f) for junk, f in pairs)
    got, reassembler = feed_in_pieces(stream, cuts)
    while reassembler.buffered:  # noise such as 68 FF 68 waits for 260 bytes: the link goes idle
        reassembler.resync()
        got += drain(reassembler)
    it = iter(got)  # every real frame comes out, in order
    assert all(any(g == f for g in it) for _, f in pairs)


@pytest.mark.parametrize("spot", [0, 1, 2, 3, 10, -2, -1])
def test_resync_after_a_corrupted_frame(spot: int) -> None:
    bad = bytearray(encode(REPORT))
    bad[spot] ^= 0x5A
    good = [SAMPLES[0], REPORT, SAMPLES[3]]
    reassembler = Reassembler()
    reassembler.feed(bytes(bad) + b"".join(encode(f) for f in good))
    got = drain(reassembler)
    while not got and reassembler.buffered:  # a corrupted L stalls until the caller gives up on it
        reassembler.resync()
        got = drain(reassembler)
    assert got == good
    # A start byte hit turns the candidate into noise; any other hit is a refused candidate.
    assert reassembler.frames_rejected >= (0 if spot in (0, 2) else 1)
    assert reassembler.bytes_discarded == len(bad)


def test_a_stalled_candidate_waits_for_its_bytes_then_resyncs() -> None:
    bad = bytearray(encode(SAMPLES[0]))
    bad[1] = 200  # L claims 205 bytes
    reassembler = Reassembler()
    reassembler.feed(bytes(bad) + encode(REPORT))
    assert drain(reassembler) == []
    reassembler.feed(encode(REPORT) * 5)  # once 205 bytes are in, the candidate fails its check
    assert drain(reassembler) == [REPORT] * 6
    assert reassembler.frames_rejected == 1 and reassembler.bytes_discarded == len(bad)


def test_impossible_length_is_rejected_by_dropping_one_byte() -> None:
    reassembler = Reassembler()
    reassembler.feed(b"\x68\x02\x68\x00\x00" + encode(SAMPLES[0]))
    assert drain(reassembler) == [SAMPLES[0]]
    assert reassembler.frames_rejected == 1 and reassembler.bytes_discarded == 5


def test_frame_whose_tp_cannot_fit_is_dropped_whole() -> None:
    reassembler = Reassembler(tp_len=7)
    keepalive = encode(build_link(A13, LinkKind.KEEPALIVE))  # one data byte: no room for a 7-byte Tp
    reassembler.feed(keepalive + encode(REPORT))
    assert drain(reassembler) == []
    assert reassembler.frames_rejected == 2 and reassembler.bytes_discarded == len(keepalive) + len(encode(REPORT))
    assert reassembler.last_error


@pytest.mark.parametrize("frame", SAMPLES, ids=lambda f: f"{f.afn:02X}")
def test_every_strict_prefix_needs_data(frame: Frame) -> None:
    raw = encode(frame)
    for cut in range(len(raw)):
        reassembler = Reassembler()
        reassembler.feed(raw[:cut])
        assert reassembler.next_frame() is NEED_DATA
        assert reassembler.frames_rejected == 0 and reassembler.bytes_discarded == 0
        reassembler.feed(raw[cut:])
        assert reassembler.next_frame() == frame
        assert reassembler.next_frame() is NEED_DATA


def test_repeated_short_frames_come_from_the_memo() -> None:
    keepalive = encode(build_link(A13, LinkKind.KEEPALIVE))
    reassembler = Reassembler()
    reassembler.feed(keepalive * 3)
    first, second, third = drain(reassembler)
    assert first == decode(keepalive) and second is first and third is first
    assert reassembler.frames_decoded == 3 and reassembler.bytes_discarded == 0
    bad = bytearray(keepalive)
    bad[-2] ^= 1  # the same frame with a bad check is not in the memo
    reassembler.feed(bytes(bad) + keepalive)
    assert drain(reassembler) == [first] and reassembler.frames_rejected == 1


def test_options_reach_the_decoder() -> None:
    raw = encode(REPORT)
    reassembler = Reassembler(tp_len=0)
    reassembler.feed(raw)
    frame = reassembler.next_frame()
    assert frame == decode(raw, tp_len=0) and isinstance(frame, Frame) and frame.tp is None


def test_buffer_is_bounded() -> None:
    reassembler = Reassembler(max_buffer=70_000)
    reassembler.feed(b"\x68\x01\x68\xf0\x01" + b"\x00" * 50_000)
    assert reassembler.next_frame() is NEED_DATA  # cannot be a picture frame: rejected, then skipped
    header = bytes.fromhex("684068F001440607000161FFFF")  # a picture frame of 64 KiB (65 550 bytes)
    reassembler.feed(header)
    assert reassembler.next_frame() is NEED_DATA and reassembler.buffered == 13
    reassembler.feed(bytes(60_000))
    assert reassembler.next_frame() is NEED_DATA and reassembler.buffered == 60_013
    with pytest.raises(BufferFullError):
        reassembler.feed(bytes(10_000))
    with pytest.raises(UnsupportedError):
        Reassembler(max_buffer=1000)


def test_garbage_only() -> None:
    reassembler = Reassembler()
    reassembler.feed(bytes(range(0x69, 0x100)) * 3)
    assert reassembler.next_frame() is NEED_DATA
    assert reassembler.bytes_discarded == 3 * (0x100 - 0x69) and reassembler.buffered == 0


@given(st.binary(max_size=2000), st.lists(st.integers(0, 5000), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_accounted_for(stream: bytes, cuts: list[int]) -> None:
    frames, reassembler = feed_in_pieces(stream, cuts)
    # Each byte fed is in a returned frame, discarded (and counted), or still buffered.
    assert reassembler.bytes_discarded + reassembler.buffered + sum(len(encode(f)) for f in frames) == len(stream)
    assert reassembler.frames_decoded == len(frames)
