"""Recovering from a week-long outage: a 645,120-reading backlog drained by the real agent process.

    .venv/bin/python bench/bench_outage.py [--meters 64] [--days 7] [--rate 0]

The store of a site whose broker was away for 7 days (64 meters, 1-minute polling) is injected,
then ``meterlink run`` starts against a private mosquitto with a verifying platform subscribed.
Figures: readings drained and verified (none missing), drain rate, the agent's peak RSS during the
drain (target <= 70 MB, issue 4). ``--rate`` is the site's backfill_rate (0: as fast as the link
allows; sites pace it to spare their 4G link).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _common import figure, header
from support.configs import write_site
from support.outage import inject_outage
from support.procs import start_sim

from meterlink.agent.clock import now_ms
from meterlink.agent.keys import load_public_key
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

SITE = """
[gateway]
id = "bench-outage"
poll_interval = 60

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}

[[meters]]
id = "live"
bus = "tcp"
unit_id = 1
profile = "xintai_water_meter"

[store]
path = "state/meterlink.db"
capacity_mb = 400

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 60
batch_size = 2000
backfill_rate = {rate}

[clock]
sync_check = "assume_synced"

[log]
level = "warning"
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=64)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--rate", type=float, default=0, help="backfill_rate, readings/s (0: unpaced)")
    args = parser.parse_args()
    header(
        f"outage recovery: {args.meters} meters x {args.days:g} days of 1-minute readings, backfill_rate {args.rate:g}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = LocalBroker(folder / "broker")
        broker.start()
        sim = start_sim("--tcp", "0", "--meter", "xintai_water_meter:1")
        site = write_site(folder / "site", SITE.format(port=sim.tcp_port, broker=broker.url, rate=args.rate))
        injected = inject_outage(
            folder / "site" / "state" / "meterlink.db",
            "bench-outage",
            meters=args.meters,
            days=args.days,
            end_ms=now_ms(),
        )
        verifier = Verifier([load_public_key(folder / "site" / "keys" / "gateway.pub")])
        platform = Platform(broker.host, broker.port, verifier, gateway="bench-outage")
        platform.start()
        agent = subprocess.Popen(
            [sys.executable, "-m", "meterlink", "run", "-c", str(site)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc = psutil.Process(agent.pid)
        rss_peak = 0
        started = time.monotonic()
        first_at = done_at = None
        try:
            while time.monotonic() - started < 900:
                rss_peak = max(rss_peak, proc.memory_info().rss)
                got = len(platform.received.readings)
                if got and first_at is None:
                    first_at = time.monotonic()
                if got >= injected:
                    done_at = time.monotonic()
                    break
                time.sleep(0.1)
        finally:
            agent.terminate()
            agent.wait(30)
            platform.stop()
            sim.stop()
            broker.stop()
        received = platform.received
        seqs = received.seqs("bench-outage")
        missing = (seqs[-1] - len(seqs)) if seqs else injected
    figure("readings in the backlog", injected, "readings")
    figure("readings verified by the platform", len(received.readings), "readings")
    figure("missing seqs", missing, "readings")
    figure("messages rejected", received.rejected, "messages")
    if done_at and first_at:
        figure("time to drain, from start of the agent", done_at - started, "s")
        figure("drain rate, first to last message", injected / max(done_at - first_at, 1e-9), "readings/s")
    figure("agent RSS, peak during the drain", rss_peak / 2**20, "MB", 70, higher_is_better=False)


if __name__ == "__main__":
    main()
