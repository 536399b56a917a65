"""Store throughput with synchronous=FULL: batches of 1,000 readings and 32-reading poll cycles.

    .venv/bin/python bench/bench_store.py [--dir DIR]

Targets (issue 2): >= 300,000 readings/s appended in batches of 1,000; >= 500 poll-cycle commits/s
of 32 readings each. Every commit is fsynced (WAL + synchronous=FULL), on the disk under DIR.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import best_of, figure, header

from meterlink.agent.store import Store
from meterlink.drivers.base import Reading

T0 = 1_764_374_400_000


def readings(n: int, meters: int = 32) -> list[Reading]:
    quantities = ("flow_rate", "volume_total", "velocity", "volume_net")
    return [Reading(f"meter-{i % meters:02d}", quantities[i % 4], 12.345 + i, "m3/h", T0 + i, T0) for i in range(n)]


def bench_batches(folder: Path) -> float:
    store = Store(folder / f"b{time.monotonic_ns()}.db", "bench")
    batch = readings(1000)
    n = 300
    started = time.perf_counter()
    for _ in range(n):
        store.append(batch)
    elapsed = time.perf_counter() - started
    store.close()
    return n * 1000 / elapsed


def bench_cycles(folder: Path) -> float:
    store = Store(folder / f"c{time.monotonic_ns()}.db", "bench")
    cycle = readings(32)
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        store.append(cycle)
    elapsed = time.perf_counter() - started
    store.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, help="where the databases go (default: a temporary folder)")
    args = parser.parse_args()
    header("store: SQLite WAL, synchronous=FULL, one transaction per append")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        figure("appends, batches of 1,000 readings", best_of(3, lambda: bench_batches(folder)), "readings/s", 300_000)
        figure("poll-cycle commits, 32 readings each", best_of(3, lambda: bench_cycles(folder)), "commits/s", 500)


if __name__ == "__main__":
    main()
