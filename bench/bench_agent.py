"""The whole agent under a realistic load: RSS and CPU per meter poll, everything included.

    .venv/bin/python bench/bench_agent.py [--minutes 10] [--meters 32] [--interval 10]
    .venv/bin/python bench/bench_agent.py --meters 128 --endpoints 4 --interval 1 [--profile FILE]

``meterlink run`` polls 32 simulated Modbus TCP meters (4 values each, the water-meter profile)
every 10 s, stores, signs and uploads (every 60 s, the default; --upload-interval) to a private
mosquitto, where a platform
subscriber verifies every message. CPU is the agent process's user+system time, measured from the
end of a warm-up minute (start-up imports are not polls) to the end, divided by the polls made in
that window. Targets: RSS <= 45 MB, CPU <= 0.4 ms per meter poll. Reference: a well-known
Python gateway doing the same job uses about 66 MB and 1.6 ms of CPU per device poll.

By default every meter has a bus (a TCP connection) of its own. ``--endpoints N`` is a site with N
Modbus TCP gateways instead, each fronting an RS-485 line: N simulators, the meters spread over
them, one bus per endpoint, its meters polled one after the other. At 128 meters on 4 endpoints
every 1 s the target is CPU <= 0.2 ms per meter poll. ``--profile FILE`` samples the
agent with py-spy (when it is installed) during the measured window, keeps the raw stacks in FILE
and prints the functions that held the CPU most (self time) and the project's functions by their
total time. It samples only the thread holding the GIL: time inside system calls (a socket send, an
fsync) is left out, since py-spy cannot tell a thread waiting in one from a thread working in one.

``--vs PYTHON`` runs a second agent, by another checkout's interpreter, in the same window on a
load of its own (simulators, broker, platform), prints its figures too and the ratios of the two.
On a shared machine the cost of a poll moves by a third from one run to the next; two agents
measured over the same seconds give a before/after ratio that holds where two runs in turn do not.

``--metrics [--scrape S]`` serves ``/metrics`` and scrapes it every S seconds (default 15) in the
window. Its cost is the endpoint's: run the same bench with and without at the same time (two
cores: the two agents barely load one) and compare. A scrape costs about 20 µs of CPU per series
in the library's exposition, so the overhead per poll falls as the poll rate rises or the
scrape interval grows.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil
from _common import figure, header
from support.configs import write_site
from support.procs import SimProcess, start_sim

from meterlink.agent.keys import load_public_key
from meterlink.sim.broker import LocalBroker, free_port
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

BUS = """
[buses.tcp{i:02d}]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 1.0
retries = 1
"""

METER = """
[[meters]]
id = "meter-{i:02d}"
bus = "tcp{bus:02d}"
unit_id = {unit}
profile = "xintai_water_meter"
"""

PROFILE_TOP = 15
RSS_TARGET_MB = 45

SITE = """
[gateway]
id = "bench-agent"
poll_interval = {interval}
{buses}
[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = {upload}

[clock]
sync_check = "assume_synced"

[log]
level = "warning"
"""


def start_meters(meters: int, endpoints: int) -> tuple[list[SimProcess], str]:
    """The simulators and the config's buses and meters: a bus per meter on one simulator
    (``endpoints`` 0), or ``endpoints`` simulators with a bus each and the meters dealt out over them."""
    if endpoints == 0:
        units = [a for u in range(1, meters + 1) for a in ("--meter", f"xintai_water_meter:{u}")]
        sim = start_sim("--tcp", "0", *units)
        text = "".join(
            BUS.format(i=i, port=sim.tcp_port) + METER.format(i=i, bus=i, unit=i) for i in range(1, meters + 1)
        )
        return [sim], text
    sims: list[SimProcess] = []
    text = ""
    per_endpoint = -(-meters // endpoints)
    for e in range(endpoints):
        ids = range(e * per_endpoint + 1, min(meters, (e + 1) * per_endpoint) + 1)
        units = [a for u in range(1, len(ids) + 1) for a in ("--meter", f"xintai_water_meter:{u}")]
        sims.append(start_sim("--tcp", "0", *units))
        text += BUS.format(i=e + 1, port=sims[-1].tcp_port)
        text += "".join(METER.format(i=i, bus=e + 1, unit=u) for u, i in enumerate(ids, start=1))
    return sims, text


@dataclass
class Result:
    polls: float
    expected: float
    stored: int
    sent: int
    verified: int
    errors: int
    rejected: int
    rss_peak: int
    rss_end: int
    user_s: float
    system_s: float

    @property
    def cpu_per_poll_ms(self) -> float:
        return (self.user_s + self.system_s) * 1000 / max(self.polls, 1)


@dataclass
class AgentRun:
    """One agent with a load of its own: a mosquitto, the simulated meters, a verifying platform."""

    folder: Path
    broker: LocalBroker
    sims: list[SimProcess]
    platform: Platform
    agent: subprocess.Popen[bytes]
    log: IO[bytes]
    metrics_port: int | None
    rss_peak: int = 0
    rss_end: int = 0
    window: tuple[int, int] = (0, 0)  # ms since the epoch
    cpu: tuple[Any, Any] = (None, None)  # psutil's cpu_times at the window's start and end

    @classmethod
    def start(cls, folder: Path, args: argparse.Namespace, python: str) -> AgentRun:
        folder.mkdir(parents=True)
        broker = LocalBroker(folder / "broker")
        broker.start()
        sims, buses = start_meters(args.meters, args.endpoints)
        text = SITE.format(interval=args.interval, upload=args.upload_interval, buses=buses, broker=broker.url)
        metrics_port = free_port() if args.metrics else None
        if metrics_port is not None:
            text += f'\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
        site = write_site(folder / "site", text)
        verifier = Verifier([load_public_key(folder / "site" / "keys" / "gateway.pub")])
        platform = Platform(broker.host, broker.port, verifier, gateway="bench-agent")
        platform.start()
        log = open(folder / "agent.log", "wb")  # noqa: SIM115
        agent = subprocess.Popen([python, "-m", "meterlink", "run", "-c", str(site)], stdout=log, stderr=log)
        return cls(folder, broker, sims, platform, agent, log, metrics_port)

    def begin(self) -> None:
        self.cpu = (psutil.Process(self.agent.pid).cpu_times(), None)
        self.window = (time.time_ns() // 1_000_000, 0)

    def sample(self) -> None:
        self.rss_peak = max(self.rss_peak, psutil.Process(self.agent.pid).memory_info().rss)

    def finish(self) -> None:
        proc = psutil.Process(self.agent.pid)
        self.cpu = (self.cpu[0], proc.cpu_times())
        self.window = (self.window[0], time.time_ns() // 1_000_000)
        self.rss_end = proc.memory_info().rss

    def stop(self) -> None:
        self.agent.terminate()
        self.agent.wait(30)
        time.sleep(1)
        self.platform.stop()
        for sim in self.sims:
            sim.stop()
        self.broker.stop()
        self.log.close()

    def results(self, args: argparse.Namespace) -> Result:
        db = sqlite3.connect(f"file:{self.folder}/site/state/meterlink.db?mode=ro", uri=True)
        taken = db.execute("SELECT count(*) FROM readings WHERE slot >= ? AND slot < ?", self.window).fetchone()[0]
        stored, sent = db.execute("SELECT count(*), count(sent) FROM readings").fetchone()
        db.close()
        cpu0, cpu1 = self.cpu
        return Result(
            polls=taken / 4,
            expected=args.meters * args.minutes * 60 / args.interval,
            stored=stored,
            sent=sent,
            verified=len(self.platform.received.readings),
            errors=(self.folder / "agent.log").read_text(errors="replace").count("event=poll_failed"),
            rejected=self.platform.received.rejected,
            rss_peak=self.rss_peak,
            rss_end=self.rss_end,
            user_s=cpu1.user - cpu0.user,
            system_s=cpu1.system - cpu0.system,
        )


def print_result(r: Result, args: argparse.Namespace) -> None:
    figure("meter polls in the window (readings / 4)", r.polls, "polls")
    figure("readings stored / confirmed by the broker / verified", r.stored, "readings")
    figure("  ... confirmed by the broker", r.sent, "readings")
    figure("  ... verified by the platform", r.verified, "readings")
    figure("polls expected (meters x window / interval)", r.expected, "polls")
    figure("failed polls logged", r.errors, "polls")
    figure("messages rejected by the platform", r.rejected, "messages")
    # The libraries alone take about 46 MB of this (bench_imports.py).
    figure("RSS, peak in the window", r.rss_peak / 2**20, "MB", RSS_TARGET_MB, higher_is_better=False)
    figure("RSS at the end", r.rss_end / 2**20, "MB", RSS_TARGET_MB, higher_is_better=False)
    target = 0.2 if args.interval <= 1 else 0.4  # 128 meters every 1 s; 32 every 10 s
    figure(
        "CPU per meter poll (store, signing, upload included)", r.cpu_per_poll_ms, "ms", target, higher_is_better=False
    )
    figure("  ... of which user time", r.user_s * 1000 / max(r.polls, 1), "ms")
    figure("  ... of which system time (the kernel's, for the agent)", r.system_s * 1000 / max(r.polls, 1), "ms")
    figure("reference gateway, CPU per device poll", 1.6, "ms")


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling ``pid`` for ``seconds`` into ``out`` (raw folded stacks), if py-spy is installed."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        print("   (no py-spy on PATH: no profile)")
        return None
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "1000",
            "--nonblocking",
            "--gil",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def print_profile(out: Path) -> None:
    """The functions with the most samples on top of the stack (self time), then the project's own
    functions by the samples they were anywhere on the stack in (total time)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    by_library: Counter[str] = Counter()
    samples = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        n = int(count)
        samples += n
        own[frames[-1][0]] += n
        for name in {name for name, ours in frames if ours}:
            total[name] += n
        by_library[_library(stack.rsplit(";", 1)[-1])] += n
    print(f"   profile: {samples} samples of the thread holding the GIL; self time, top {PROFILE_TOP}:")
    for name, n in own.most_common(PROFILE_TOP):
        print(f"     {100 * n / max(samples, 1):5.1f} %  {name}")
    print(f"   meterlink's functions, total time (self and what they call), top {PROFILE_TOP}:")
    for name, n in total.most_common(PROFILE_TOP):
        print(f"     {100 * n / max(samples, 1):5.1f} %  {name}")
    print("   self time by library (the function on top of the stack):")
    for name, n in by_library.most_common():
        print(f"     {100 * n / max(samples, 1):5.1f} %  {name}")


LIBRARIES = ("pymodbus", "paho", "asyncio", "sqlite3", "concurrent", "cryptography", "json", "logging", "selectors")


def _library(frame: str) -> str:
    """The library a frame's code belongs to: meterlink's own folders, a named library, or other."""
    parts = frame.partition(" (")[2].rsplit(":", 1)[0].split("/")
    for name in LIBRARIES:
        if name in parts[:-1] or parts[-1] == f"{name}.py":
            return name
    for folder in ("agent", "drivers", "protocols", "wire"):
        if folder in parts[:-1]:
            return f"meterlink {folder}/"
    return "other (stdlib, dataclass-made methods, ...)"


def _frame(frame: str) -> tuple[str, bool]:
    """``function (path/file.py:line)`` as ``function (file.py)``, and whether it is the project's
    own code below the command line (the entry functions are on every stack and say nothing)."""
    function, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    ours = bool({"agent", "drivers", "protocols", "wire", "sim"} & set(parts[:-1])) and not parts[-1].startswith("cli")
    return f"{function} ({parts[-1]})", ours


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0, help="measured window, after one warm-up minute")
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--interval", type=int, default=10, help="poll interval, seconds")
    parser.add_argument(
        "--endpoints",
        type=int,
        default=0,
        help="Modbus TCP endpoints the meters share, a bus each (default 0: a bus per meter)",
    )
    parser.add_argument(
        "--upload-interval", type=int, default=60, help="upload interval, seconds (default 60, the shipped default)"
    )
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the window (default 60)")
    parser.add_argument("--profile", type=Path, help="sample the agent with py-spy in the window, raw stacks here")
    parser.add_argument(
        "--metrics", action="store_true", help="serve /metrics ([metrics] listen), scrape it in the window"
    )
    parser.add_argument(
        "--scrape",
        type=float,
        default=15.0,
        help="seconds between scrapes (default 15, Prometheus' example config; its built-in default is 60)",
    )
    parser.add_argument(
        "--agent-python",
        default=sys.executable,
        help="the interpreter that runs the agent (default: this one); another checkout's venv measures "
        "that code under the same load, for a before/after figure",
    )
    parser.add_argument(
        "--vs",
        help="another interpreter (another checkout's venv): its agent runs in the same window on a load "
        "of its own (simulators, broker, platform), and the ratios of the two are printed; on a shared "
        "machine the only before/after figure that both runs saw the same moments of",
    )
    args = parser.parse_args()
    if args.vs and args.metrics:
        parser.error("--vs with --metrics: the endpoint's cost side by side is bench/bench_metrics.py's measure")
    for flag, python in (("--agent-python", args.agent_python), ("--vs", args.vs)):
        if python and shutil.which(python) is None:
            parser.error(f"{flag} {python}: no such interpreter (give a venv's bin/python)")
    where = f"on {args.endpoints} endpoints" if args.endpoints else "a bus each"
    header(
        f"meterlink run: {args.meters} Modbus TCP meters x 4 values ({where}) polled every {args.interval} s, "
        f"uploads every {args.upload_interval} s, {args.minutes:g} min measured after a {args.warmup:g} s warm-up"
        + (f", /metrics scraped every {args.scrape:g} s" if args.metrics else "")
        + ("" if args.agent_python == sys.executable else f", agent run by {args.agent_python}")
        + (f", against an agent run by {args.vs} at the same time" if args.vs else "")
    )
    runs = [("", args.agent_python)] + ([("--vs", args.vs)] if args.vs else [])
    with tempfile.TemporaryDirectory() as tmp:
        agents = [AgentRun.start(Path(tmp) / f"agent{i}", args, python) for i, (_, python) in enumerate(runs)]
        spy = None
        scrapes, scrape_bytes = 0, 0
        try:
            time.sleep(args.warmup)
            if args.profile is not None:
                spy = start_profile(agents[0].agent.pid, args.minutes * 60, args.profile)
            for a in agents:
                a.begin()
            end = time.monotonic() + args.minutes * 60
            scraped = 0.0  # time.monotonic() of the last scrape
            while time.monotonic() < end:
                for a in agents:
                    a.sample()
                if args.metrics and time.monotonic() - scraped >= args.scrape:
                    scraped = time.monotonic()
                    url = f"http://127.0.0.1:{agents[0].metrics_port}/metrics"
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        scrape_bytes = len(answer.read())
                    scrapes += 1
                time.sleep(1)
            for a in agents:
                a.finish()
        finally:
            for a in agents:
                a.stop()
            if spy is not None:
                spy.wait(30)
        results = [a.results(args) for a in agents]
    for (flag, python), result in zip(runs, results, strict=True):
        if flag:
            print(f"   -- the agent run by {python} (--vs), in the same window on a load of its own")
        print_result(result, args)
    if args.metrics:
        figure("/metrics scrapes in the window", scrapes, "scrapes")
        figure("  ... size of the last", scrape_bytes / 1024, "KiB")
    if len(results) == 2:
        this, other = results
        print("   -- this agent against the --vs agent, same window (below 1: this one costs less)")
        figure("CPU per meter poll, ratio", this.cpu_per_poll_ms / max(other.cpu_per_poll_ms, 1e-9), "x")
        figure("RSS peak, ratio", this.rss_peak / max(other.rss_peak, 1), "x")
    if spy is not None and args.profile is not None and args.profile.exists():
        print_profile(args.profile)


if __name__ == "__main__":
    main()
