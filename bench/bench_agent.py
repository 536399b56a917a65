"""The whole agent under a realistic load: RSS and CPU per meter poll, everything included.

    .venv/bin/python bench/bench_agent.py [--minutes 10] [--meters 32] [--interval 10]

``meterlink run`` polls 32 simulated Modbus TCP meters (4 values each, the water-meter profile)
every 10 s, stores, signs and uploads (every 60 s, the default; --upload-interval) to a private
mosquitto, where a platform
subscriber verifies every message. CPU is the agent process's user+system time, measured from the
end of a warm-up minute (start-up imports are not polls) to the end, divided by the polls made in
that window. Targets (issue 2): RSS <= 55 MB, CPU <= 0.4 ms per meter poll. Reference: a well-known
Python gateway doing the same job uses about 66 MB and 1.6 ms of CPU per device poll.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _common import figure, header
from support.configs import write_site
from support.procs import start_sim

from meterlink.agent import signing
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform

BUS = """
[buses.tcp{i:02d}]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 1.0
retries = 1

[[meters]]
id = "meter-{i:02d}"
bus = "tcp{i:02d}"
unit_id = {unit}
profile = "xintai_water_meter"
"""

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0, help="measured window, after one warm-up minute")
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--interval", type=int, default=10, help="poll interval, seconds")
    parser.add_argument("--upload-interval", type=int, default=60,
                        help="upload interval, seconds (default 60, the shipped default)")
    args = parser.parse_args()
    header(f"meterlink run: {args.meters} Modbus TCP meters x 4 values polled every {args.interval} s, uploads "
           f"every {args.upload_interval} s, {args.minutes:g} min measured after a 1 min warm-up")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = LocalBroker(folder / "broker")
        broker.start()
        units = [f"xintai_water_meter:{u}" for u in range(1, args.meters + 1)]
        sim = start_sim("--tcp", "0", *[a for u in units for a in ("--meter", u)])
        buses = "".join(BUS.format(i=i, port=sim.tcp_port, unit=i) for i in range(1, args.meters + 1))
        site = write_site(folder / "site", SITE.format(interval=args.interval, upload=args.upload_interval, buses=buses,
                                                           broker=broker.url))
        verifier = signing.Verifier([signing.load_public_key(folder / "site" / "keys" / "gateway.pub")])
        platform = Platform(broker.host, broker.port, verifier, gateway="bench-agent")
        platform.start()
        log = open(folder / "agent.log", "wb")  # noqa: SIM115
        agent = subprocess.Popen([sys.executable, "-m", "meterlink", "run", "-c", str(site)], stdout=log, stderr=log)
        proc = psutil.Process(agent.pid)
        try:
            time.sleep(60)
            cpu0 = proc.cpu_times()
            window_start = time.time_ns() // 1_000_000
            rss_peak = 0
            end = time.monotonic() + args.minutes * 60
            while time.monotonic() < end:
                rss_peak = max(rss_peak, proc.memory_info().rss)
                time.sleep(1)
            cpu1 = proc.cpu_times()
            window_end = time.time_ns() // 1_000_000
            rss_end = proc.memory_info().rss
        finally:
            agent.terminate()
            agent.wait(30)
            time.sleep(1)
            platform.stop()
            sim.stop()
            broker.stop()
            log.close()
        cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        db = sqlite3.connect(f"file:{folder}/site/state/meterlink.db?mode=ro", uri=True)
        taken = db.execute("SELECT count(*) FROM readings WHERE slot >= ? AND slot < ?",
                           (window_start, window_end)).fetchone()[0]
        stored, sent = db.execute("SELECT count(*), count(sent) FROM readings").fetchone()
        db.close()
        polls = taken / 4
        expected = args.meters * args.minutes * 60 / args.interval
        errors = (folder / "agent.log").read_text(errors="replace").count("event=poll_failed")
        rejected = platform.received.rejected
        verified = len(platform.received.readings)
    figure("meter polls in the window (readings / 4)", polls, "polls")
    figure("readings stored / confirmed by the broker / verified", stored, "readings")
    figure("  ... confirmed by the broker", sent, "readings")
    figure("  ... verified by the platform", verified, "readings")
    figure("polls expected (meters x window / interval)", expected, "polls")
    figure("failed polls logged", errors, "polls")
    figure("messages rejected by the platform", rejected, "messages")
    figure("RSS, peak in the window", rss_peak / 2**20, "MB", 55, higher_is_better=False)
    figure("RSS at the end", rss_end / 2**20, "MB", 55, higher_is_better=False)
    figure("CPU per meter poll (store, signing, upload included)", cpu_s * 1000 / max(polls, 1), "ms", 0.4,
           higher_is_better=False)
    figure("reference gateway, CPU per device poll", 1.6, "ms")


if __name__ == "__main__":
    main()
