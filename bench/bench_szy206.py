"""Throughput of the SZY206 codec: prints figures against targets, never asserts.

    .venv/bin/python bench/bench_szy206.py [--quick]

Figures (one core, best of several rounds, the rounds of the stream figures interleaved, so
other load on the machine inflates nothing but the spread):
1. decode a C0H flow report (decode + parse_flow_report), frames/s, target 100 000;
2. build and encode its confirm (build_confirm + encode), frames/s, target 200 000;
3. reassemble a stream of valid frames of mixed AFNs with 5 % random garbage bytes between them,
   fed in 4 KiB reads, MB/s of stream, target 20, which applies to the reassembler proper:
   "reassembler (split + validate)", ``Reassembler.frames_raw()`` after each read: frames found,
   start/end bytes, length and CRC checked, wire bytes returned. Also printed, without a target:
   the same through ``next_raw()``, one frame per call, and "reassembler + decode into Frame
   objects", ``next_frame()`` (what the uplink and the simulator call), which adds the decoding
   of each frame into a :class:`Frame`.

The stream (unchanged since the first version of this benchmark): frames from 49 stations, drawn
with these shares - link frames (AFN 02H, 13 bytes) 25 %; C0H reports (and one in ten 81H) of 1 to
8 meters with a 5-byte, 7-byte or no Tp, 26 to 103 bytes, 35 %; confirms with or without Tp (13
or 18 bytes) 15 %; B0H answers of one meter (26 bytes) 10 %; B0H queries (12 bytes) 5 %; clock
answers (AFN 51H, 18 bytes) 5 %; kinds answers (AFN 53H, 18 bytes) 5 %. Mean frame about 33
bytes. Mix "field" adds one 1 KiB picture chunk (AFN 61H, 1038 bytes) per 40 frames (mean frame
about 59 bytes, what a gateway that receives pictures sees); mix "small" has none, so it has
the most frames per MB and is the harder one. Before each frame comes a run of random bytes
(68H and 16H included) of 0 to 2 x 5/95 of the frame's length: 5 % of the stream on average.

Values and time labels are random, so caches keyed by frame bytes or time labels cannot flatter
the figures: the split layer has none, and CRCs are never memoized. ``next_frame()`` memoizes the
decoded Frame of short frames, which serves the ones that really recur byte for byte here (link
frames, queries, confirms without Tp, kinds answers from 49 stations): its figure is printed with
that share, and again with the memo off.
"""

from __future__ import annotations

import itertools
import random
import sys
import time
from collections.abc import Callable

from meterlink.protocols.szy206 import (
    AFN,
    NEED_DATA,
    Address,
    Clock,
    Frame,
    LinkKind,
    Reassembler,
    TimeLabel,
    build_clock_answer,
    build_confirm,
    build_flow_report,
    build_link,
    build_picture_frames,
    build_realtime_query,
    decode,
    describe,
    encode,
    parse_flow_report,
)
from meterlink.protocols.szy206 import stream as stream_module
from meterlink.protocols.szy206.frame import Direction


def random_label(rng: random.Random, size: int = 5) -> TimeLabel:
    """A random Tp, so caches keyed by label do not flatter the figures."""
    month_year = {"month": rng.randint(1, 12), "year": rng.randint(20, 30)} if size == 7 else {}
    return TimeLabel(
        second=rng.randrange(60),
        minute=rng.randrange(60),
        hour=rng.randrange(24),
        day=rng.randint(1, 28),
        delay_min=rng.randrange(30),
        **month_year,
    )


def best_rate(func: Callable[[], object], per_call: int, rounds: int, seconds: float) -> float:
    """Best calls-per-second over ``rounds`` rounds of about ``seconds`` each, times ``per_call``."""
    calls = 1
    while True:  # calibrate: enough calls for one round to take `seconds`
        start = time.perf_counter()
        for _ in range(calls):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            break
        calls *= 4
    calls = max(1, int(calls * seconds / elapsed))
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        best = max(best, calls * per_call / (time.perf_counter() - start))
    return best


def best_rates(funcs: list[Callable[[], object]], per_call: int, rounds: int, seconds: float) -> list[float]:
    """Like :func:`best_rate` for several functions, their rounds interleaved (one round of each,
    then the next), so that a burst of load on a shared machine does not land on one figure only."""
    calls = []
    for func in funcs:
        start = time.perf_counter()
        func()
        calls.append(max(1, int(seconds / (time.perf_counter() - start))))
    best = [0.0] * len(funcs)
    for _ in range(rounds):
        for index, (func, count) in enumerate(zip(funcs, calls, strict=True)):
            start = time.perf_counter()
            for _ in range(count):
                func()
            best[index] = max(best[index], count * per_call / (time.perf_counter() - start))
    return best


def make_stream(rng: random.Random, size: int, pictures: bool) -> tuple[bytes, int, int]:
    """About ``size`` bytes of frames with 5 % garbage; returns (stream, frames, garbage bytes)."""
    sites = [Address(division="530381", station=n) for n in range(1, 50)]
    image = bytes(rng.randrange(256) for _ in range(1024))
    parts: list[bytes] = []
    total = frames = garbage = 0
    while total < size:
        site = rng.choice(sites)
        roll = rng.random()
        frame: Frame
        if pictures and roll < 1 / 40:
            frame = build_picture_frames(site, image)[0]
        elif roll < 0.25:
            frame = build_link(site, rng.choice(list(LinkKind)))
        elif roll < 0.60:
            meters = [(rng.randrange(-(10**6), 10**8) / 1000, rng.randrange(10**9)) for _ in range(rng.randint(1, 8))]
            tp = rng.choice([random_label(rng), random_label(rng), random_label(rng, 7), None])
            frame = build_flow_report(
                site,
                meters,
                alarm=rng.randrange(1 << 14),
                status=rng.randrange(128),
                tp=tp,
                afn=rng.choice([AFN.REPORT] * 9 + [0x81]),
            )
        elif roll < 0.75:
            frame = build_confirm(build_flow_report(site, [(1.0, 1)]), tp=rng.choice([None, random_label(rng)]))
        elif roll < 0.85:
            frame = build_flow_report(
                site, [(rng.randrange(10**6) / 1000, rng.randrange(10**9))], afn=AFN.QUERY_REALTIME
            )
        elif roll < 0.90:
            frame = build_realtime_query(site)
        elif roll < 0.95:
            label = random_label(rng, 7)
            clock = Clock(
                second=label.second,
                minute=label.minute,
                hour=label.hour,
                day=label.day,
                month=label.month or 1,
                year=label.year or 0,
            )
            frame = build_clock_answer(site, clock)
        else:
            frame = Frame(direction=Direction.UP, address=site, afn=0x53, data=bytes.fromhex("080010006000"))
        raw = encode(frame)
        # Garbage: 5 % of all bytes, in runs between frames (random bytes, 68H included).
        junk = bytes(rng.randrange(256) for _ in range(round(len(raw) * 5 / 95 * rng.uniform(0, 2))))
        parts += (junk, raw)
        total += len(junk) + len(raw)
        frames += 1
        garbage += len(junk)
    return b"".join(parts), frames, garbage


def split_all(stream: bytes, chunk: int = 4096) -> int:
    """Split + validate: every frame's wire bytes, a list per read."""
    reassembler = Reassembler()
    count = 0
    for start in range(0, len(stream), chunk):
        reassembler.feed(stream[start : start + chunk])
        count += len(reassembler.frames_raw())
    return count


def split_one_by_one(stream: bytes, chunk: int = 4096) -> int:
    """Split + validate, one frame per call."""
    reassembler = Reassembler()
    count = 0
    for start in range(0, len(stream), chunk):
        reassembler.feed(stream[start : start + chunk])
        while reassembler.next_raw() is not NEED_DATA:
            count += 1
    return count


def decode_all(stream: bytes, chunk: int = 4096) -> int:
    """Split + validate + decode into Frame objects, one frame per call."""
    reassembler = Reassembler()
    count = 0
    for start in range(0, len(stream), chunk):
        reassembler.feed(stream[start : start + chunk])
        while reassembler.next_frame() is not NEED_DATA:
            count += 1
    return count


def decode_all_memo_off(stream: bytes) -> int:
    """decode_all with next_frame's memo of short frames off: every frame decoded."""
    saved = stream_module._MEMO_FRAME
    stream_module._MEMO_FRAME = 0  # a private knob, turned for this figure only
    try:
        return decode_all(stream)
    finally:
        stream_module._MEMO_FRAME = saved


def memo_share(stream: bytes) -> float:
    """Share of the frames that next_frame's memo serves: short frames seen before, byte for byte."""
    reassembler = Reassembler(max_buffer=len(stream))
    reassembler.feed(stream)
    seen: set[bytes] = set()
    raws = reassembler.frames_raw()
    repeats = 0
    for raw in raws:
        if len(raw) <= 29:  # L <= 24 (stream._MEMO_FRAME)
            repeats += raw in seen
            seen.add(raw)
    return repeats / len(raws)


def line(name: str, value: float, target: float | None, unit: str) -> None:
    if target is None:
        print(f"  {name:<58} {value:>12,.1f} {unit:<9}")
    else:
        print(f"  {name:<58} {value:>12,.1f} {unit:<9} target {target:>9,.0f}  ratio {value / target:5.2f}")


def main() -> None:
    quick = "--quick" in sys.argv
    rounds, seconds = (3, 0.2) if quick else (7, 0.5)
    rng = random.Random(206)
    # 1000 different one-meter C0H reports (station, values, Tp) like the notes' vector 1, cycled.
    pool = [
        encode(
            build_flow_report(
                Address(division="530381", station=rng.randint(1, 60000)),
                [(rng.randrange(10**7) / 1000, rng.randrange(10**9))],
                alarm=rng.randrange(1 << 14),
                status=rng.randrange(128),
                tp=random_label(rng),
            )
        )
        for _ in range(1000)
    ]
    decoded = [decode(raw) for raw in pool]
    raws = itertools.cycle(pool)
    frames_in = itertools.cycle(decoded)
    print(f"SZY206 codec, Python {sys.version.split()[0]}, best of {rounds} rounds")
    print(f"C0H report: {len(pool[0])} bytes, e.g. {pool[0].hex().upper()}; 1000 distinct reports cycled")

    line(
        "decode C0H flow report (decode + parse)",
        best_rate(lambda: parse_flow_report(decode(next(raws))), 1, rounds, seconds),
        100_000,
        "frames/s",
    )
    line(
        "encode its confirm (build_confirm + encode)",
        best_rate(lambda: encode(build_confirm(next(frames_in))), 1, rounds, seconds),
        200_000,
        "frames/s",
    )
    line("  decode only", best_rate(lambda: decode(next(raws)), 1, rounds, seconds), None, "frames/s")
    line(
        "  describe (JSON view) of a decoded report",
        best_rate(lambda: describe(next(frames_in)), 1, rounds, seconds),
        None,
        "frames/s",
    )
    for name, pictures in (("field", True), ("small", False)):
        stream, frames, garbage = make_stream(rng, 300_000 if quick else 1_000_000, pictures)
        counts = {func(stream) for func in (split_all, split_one_by_one, decode_all, decode_all_memo_off)}
        mean = (len(stream) - garbage) / frames
        print(
            f"  stream '{name}': {len(stream):,} bytes, {frames:,} frames (mean {mean:.0f} B), "
            f"{100 * garbage / len(stream):.1f} % garbage, frames out {' / '.join(f'{c:,}' for c in sorted(counts))}"
        )
        figures = (
            (f"reassembler (split + validate) '{name}', frames_raw()", split_all, 20),
            ("  same, next_raw() one frame per call", split_one_by_one, None),
            (f"reassembler + decode into Frame objects '{name}', next_frame()", decode_all, None),
            ("  same, next_frame's memo off: every frame decoded", decode_all_memo_off, None),
        )
        rates = best_rates(
            [lambda s=stream, f=func: f(s) for _, func, _ in figures],  # type: ignore[misc]
            len(stream),
            rounds,
            seconds,
        )
        for (label, _, target), rate in zip(figures, rates, strict=True):
            line(label, rate / 1e6, target, "MB/s")
            line("    same, frames/s", rate / len(stream) * frames, None, "frames/s")
        print(f"    ({100 * memo_share(stream):.0f} % of these frames are short repeats that next_frame's memo serves)")


if __name__ == "__main__":
    main()
