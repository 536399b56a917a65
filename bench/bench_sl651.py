"""Throughput of the SL651 codec: prints figures against targets, never asserts.

    .venv/bin/python bench/bench_sl651.py [--quick]

Figures (one core, best of several rounds):
1. decode a scheduled report (32H, six elements, 60 bytes): ``decode`` (start, length, end
   character, CRC) + ``parse_body``, frames/s, target 100 000; each of the two alone, and with
   ``describe`` (the JSON view) on top, no target;
2. encode a scheduled report (``encode_body`` + ``encode`` of a built Frame), frames/s, target
   200 000; also the centre's acknowledgement (build_ack + encode), no target;
3. reassemble a stream of reports (32H, 34H with five-minute series, keep-alives, 33H) with 5 %
   random garbage bytes (7EH and SOH included) between frames, fed in 4 KiB reads, MB/s of stream,
   target 20: ``frames_raw()`` (frames found, start/end characters, length and CRC checked);
   ``next_frame()`` (and decoded into Frame objects) printed without a target.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from _common import best_of, figure, header

from meterlink.protocols.sl651 import NEED_DATA, Body, Reassembler, decode, encode, encode_body, parse_body
from meterlink.protocols.sl651.describe import describe
from meterlink.protocols.sl651.frame import Frame
from meterlink.protocols.sl651.messages import (
    build_ack,
    build_keep_alive,
    build_report,
    number_element,
    report_body,
)

T = TypeVar("T")
QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 5
STATION = bytes.fromhex("0012345678")
T0 = datetime(2026, 3, 1, 8, 0)


def scheduled(rng: random.Random, serial: int, function: int = 0x32) -> Frame:
    body = report_body(
        serial=serial,
        send_time=T0 + timedelta(minutes=serial),
        station=STATION,
        station_type=0x48,
        observed=T0,
        elements=[
            number_element(0x20, round(rng.uniform(0, 99), 1)),
            number_element(0x26, round(rng.uniform(0, 9999), 1)),
            number_element(0x27, round(rng.uniform(0, 999), 3)),
            number_element(0x39, round(rng.uniform(-9, 99), 3)),
            number_element(0xFF09, rng.randrange(10**9), 0x48),
            number_element(0x38, round(rng.uniform(10, 14), 2)),
        ],
    )
    return build_report(function, center=1, station=STATION, password=0x1234, body=body)


def rate(fn: Callable[[T], object], items: Sequence[T]) -> float:
    def once() -> float:
        started = time.perf_counter()
        for item in items:
            fn(item)
        return len(items) / (time.perf_counter() - started)

    return best_of(ROUNDS, once)


def stream(rng: random.Random, frames: int) -> bytes:
    parts = []
    for serial in range(frames):
        kind = rng.random()
        if kind < 0.2:
            frame = build_keep_alive(center=1, station=STATION, password=0x1234, serial=serial, send_time=T0)
        else:
            frame = scheduled(rng, serial, 0x32 if kind < 0.8 else 0x33)
        wire = encode(frame)
        noise = rng.randrange(0, 2 * len(wire) * 5 // 95 + 1)
        parts.append(bytes(rng.choice((0x7E, 0x01, rng.randrange(256))) for _ in range(noise)))
        parts.append(wire)
    return b"".join(parts)


def reassemble(data: bytes, decode_frames: bool) -> float:
    def once() -> float:
        reader = Reassembler()
        started = time.perf_counter()
        for at in range(0, len(data), 4096):
            reader.feed(data[at : at + 4096])
            if decode_frames:
                while reader.next_frame() is not NEED_DATA:
                    pass
            else:
                reader.frames_raw()
        return len(data) / (time.perf_counter() - started) / 1e6

    return best_of(ROUNDS, once)


def main() -> None:
    header("SL651 codec")
    rng = random.Random(651)
    reports = [encode(scheduled(rng, n)) for n in range(2_000 if QUICK else 20_000)]
    print(f"   scheduled report: {len(reports[0])} bytes")
    figure(
        "decode scheduled report (decode + parse_body)",
        rate(lambda b: parse_body(decode(b)), reports),
        "frames/s",
        100_000,
    )
    figure("  ... of which decode (framing, CRC)", rate(decode, reports), "frames/s")
    decoded = [decode(b) for b in reports]
    figure("  ... of which parse_body (elements)", rate(parse_body, decoded), "frames/s")
    figure("  ... + describe (JSON view)", rate(lambda b: describe(decode(b)), reports), "frames/s")
    frames = [scheduled(rng, n) for n in range(len(reports))]
    bodies = [parse_body(f) for f in frames]
    figure("encode scheduled report (Frame -> bytes)", rate(encode, frames), "frames/s", 200_000)
    pairs = list(zip(frames, bodies, strict=True))

    def encode_both(item: tuple[Frame, Body]) -> None:
        encode_body(item[1])
        encode(item[0])

    figure("encode body + frame", rate(encode_both, pairs), "frames/s")
    figure("build + encode acknowledgement", rate(lambda f: encode(build_ack(f, 1, T0)), frames), "frames/s")
    data = stream(rng, 5_000 if QUICK else 40_000)
    print(f"   stream: {len(data) / 1e6:.2f} MB")
    figure("reassembler (split + validate), 5 % garbage", reassemble(data, False), "MB/s", 20)
    figure("  ... + decode into Frame objects", reassemble(data, True), "MB/s")


if __name__ == "__main__":
    main()
