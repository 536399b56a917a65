"""Shared bits of the benchmarks: they print figures and ratios and never assert."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def cpu_reference() -> float:
    """Millions of iterations per second of a fixed pure-Python loop, best of 3: the same code
    measured on two days is comparable only next to this (a shared VM's CPU speed varies a lot)."""

    def once() -> float:
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        return 2.0 / (time.perf_counter() - started)

    return best_of(3, once)


def header(title: str) -> None:
    print(f"== {title}")
    print(
        f"   python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, cpu reference {cpu_reference():.1f} M loop iterations/s"
    )


def figure(name: str, value: float, unit: str, target: float | None = None, higher_is_better: bool = True) -> None:
    line = f"   {name:<52} {value:>14,.3f} {unit}" if abs(value) < 10 else f"   {name:<52} {value:>14,.1f} {unit}"
    if target is not None:
        ratio = value / target if higher_is_better else target / value if value else float("inf")
        verdict = "meets" if ratio >= 1 else "MISSES"
        sign = ">=" if higher_is_better else "<="
        line += f"   target {sign} {target:,.1f} ({ratio:.2f}x, {verdict})"
    print(line, flush=True)


def best_of(runs: int, fn: Callable[[], float]) -> float:
    """The best of several runs (the least disturbed by the rest of the machine)."""
    return max(fn() for _ in range(runs))
