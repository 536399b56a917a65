"""What the ``/metrics`` endpoint costs the agent: CPU per scrape, the fixed part, and the share of
the agent's CPU at a scrape interval, without comparing two runs of a noisy machine.

    .venv/bin/python bench/bench_metrics.py [--pairs 8] [--window 30] [--meters 32] [--interval 10]

Two agents run at the same time on the same simulated meters and broker: one with ``[metrics]``, one
without. After a warm-up the window alternates between quiet (no scrape) and scraped (two scrapes a
second), ``--pairs`` times. Every measurement is a difference taken over the same seconds:
- per scrape: the metrics agent's CPU in a scraped window less its CPU in the quiet window next to
  it, over the scrapes (all pairs together; the spread over the pairs beside it);
- the fixed part: the metrics agent's CPU less the other agent's in the quiet windows (the metric
  updates on each poll and on the status tick), from the threads' run time in nanoseconds;
- the share at a scrape interval S (default 15 s): (fixed + per scrape / S) over the agent without
  metrics' CPU per second. Target: 10 % (and 3 MB of RSS).
bench_agent.py --metrics gives the absolute CPU per poll of one agent; this one gives the difference.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from _common import figure, header
from bench_agent import SITE, start_meters
from support.configs import write_site

from meterlink.sim.broker import LocalBroker, free_port

SHARE_TARGET = 0.10
RSS_TARGET_MB = 3.0
SCRAPE_EVERY_S = 0.5


def cpu_s(proc: psutil.Process) -> float:
    """The process's CPU seconds, its ended threads' included (a thread per scrape is a cost too);
    counted in 10 ms ticks, so the windows are long and scraped once every half second."""
    times = proc.cpu_times()
    return float(times.user + times.system)


def live_cpu_s(proc: psutil.Process) -> float:
    """The CPU seconds of the process's live threads, to the nanosecond (/proc's schedstat): the
    fixed part is a fraction of a tick per second, and no thread ends in a quiet window."""
    try:
        return (
            sum(int((t / "schedstat").read_text().split()[0]) for t in Path(f"/proc/{proc.pid}/task").iterdir()) / 1e9
        )
    except OSError:  # no schedstat here, or a thread ended while being read: the ticks, then
        return cpu_s(proc)


def window(procs: list[psutil.Process], seconds: float, scrape_url: str | None) -> tuple[list[float], list[float], int]:
    """CPU seconds each process used over ``seconds`` (in ticks, and of its live threads), scraping
    ``scrape_url`` every half second if given."""
    before = [(cpu_s(p), live_cpu_s(p)) for p in procs]
    scrapes = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if scrape_url is not None:
            with urllib.request.urlopen(scrape_url, timeout=5) as answer:
                answer.read()
            scrapes += 1
        time.sleep(max(0.0, min(SCRAPE_EVERY_S, end - time.monotonic())))
    ticks = [cpu_s(p) - b[0] for p, b in zip(procs, before, strict=True)]
    live = [live_cpu_s(p) - b[1] for p, b in zip(procs, before, strict=True)]
    return ticks, live, scrapes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=8, help="quiet/scraped window pairs (default 8)")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per window (default 30)")
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--interval", type=int, default=10, help="poll interval, seconds")
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--scrape", type=float, default=15.0, help="scrape interval the share is given for")
    args = parser.parse_args()
    header(
        f"/metrics cost: {args.meters} Modbus TCP meters x 4 values every {args.interval} s, two agents "
        f"(with and without [metrics]), {args.pairs} pairs of {args.window:g} s windows, quiet / two scrapes a second"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = LocalBroker(folder / "broker")
        broker.start()
        sims, buses = start_meters(args.meters, 0)
        text = SITE.format(interval=args.interval, upload=60, buses=buses, broker=broker.url)
        port = free_port()
        sites = [
            write_site(folder / "with", text + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'),
            write_site(folder / "without", text.replace('id = "bench-agent"', 'id = "bench-agent-2"')),
        ]
        logs = [open(folder / f"agent{i}.log", "wb") for i in range(2)]  # noqa: SIM115
        agents = [
            subprocess.Popen([sys.executable, "-m", "meterlink", "run", "-c", str(s)], stdout=log, stderr=log)
            for s, log in zip(sites, logs, strict=True)
        ]
        procs = [psutil.Process(a.pid) for a in agents]
        url = f"http://127.0.0.1:{port}/metrics"
        per_scrape: list[float] = []
        fixed: list[float] = []
        rss_diff: list[float] = []
        totals = [0.0, 0.0, 0.0, 0]  # quiet CPU of each agent, the metrics agent's added by scrapes, scrapes
        try:
            time.sleep(args.warmup)
            for _ in range(args.pairs):
                quiet, quiet_live, _ = window(procs, args.window, None)
                scraped, _, scrapes = window(procs, args.window, url)
                per_scrape.append((scraped[0] - quiet[0]) / max(scrapes, 1))
                fixed.append((quiet_live[0] - quiet_live[1]) / args.window)
                totals[0] += quiet_live[0]
                totals[1] += quiet_live[1]
                totals[2] += scraped[0] - quiet[0]
                totals[3] += scrapes
                rss_diff.append((procs[0].memory_info().rss - procs[1].memory_info().rss) / 2**20)
        finally:
            for a in agents:
                a.terminate()
            for a in agents:
                a.wait(30)
            for s in sims:
                s.stop()
            broker.stop()
            for log in logs:
                log.close()
    seconds = args.pairs * args.window
    scrape_ms = totals[2] / max(int(totals[3]), 1) * 1000
    fixed_ms = (totals[0] - totals[1]) / seconds * 1000
    base_ms = totals[1] / seconds * 1000
    polls_per_s = args.meters / args.interval
    figure("agent without metrics: CPU per second", base_ms, "ms")
    figure("  ... per meter poll", base_ms / polls_per_s, "ms")
    figure("CPU per scrape (all pairs)", scrape_ms, "ms")
    figure("  ... spread over the pairs, min", min(per_scrape) * 1000, "ms")
    figure("  ... max", max(per_scrape) * 1000, "ms")
    figure("fixed CPU with metrics on, per second (all pairs)", fixed_ms, "ms")
    figure("  ... spread, min", min(fixed) * 1000, "ms")
    figure("  ... max", max(fixed) * 1000, "ms")
    for interval in sorted({args.scrape, 60.0}):
        share = (fixed_ms + scrape_ms / interval) / base_ms
        figure(
            f"CPU added, scraped every {interval:g} s (share of the agent's)",
            share * 100,
            "%",
            SHARE_TARGET * 100,
            higher_is_better=False,
        )
    figure("RSS added (last window)", rss_diff[-1], "MB", RSS_TARGET_MB, higher_is_better=False)


if __name__ == "__main__":
    main()
