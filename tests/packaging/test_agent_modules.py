"""The running agent imports only what it uses: no simulator, no demo, no other command's code.

A real ``meterlink run``, started as ``python -m meterlink`` starts it, polls a simulated Modbus
meter and uploads to a real mosquitto. A wrapper registers, before meterlink is imported, an atexit
hook that writes the names in ``sys.modules`` to a file when the agent exits after SIGTERM: what
the process loaded in its whole life, the upload path included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import SimProcess, start_sim, wait_until

from meterlink.sim.broker import LocalBroker

pytestmark = pytest.mark.slow

# `python -c WRAPPER OUT run -c SITE`: the module list goes to OUT, the rest is meterlink's argv.
WRAPPER = """
import atexit, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "meterlink"
runpy.run_module("meterlink", run_name="__main__", alter_sys=True)
"""

SITE = """
[gateway]
id = "gw-lean"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 0.5
retries = 0

[[meters]]
id = "well-1"
bus = "tcp"
unit_id = 1
profile = "xintai_water_meter"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1

[clock]
sync_check = "assume_synced"
"""

# Code the agent never runs: the simulators, the demo that launches them, the scenario replays, the
# other commands (verify, read/status/profiles, report, scan, manual-reading), the protocols no meter
# or uplink of this site speaks (SL651, SZY206), the corrupt-store salvage, and what only the tests
# and benchmarks use.
NEVER = (
    "meterlink.sim",
    "meterlink.replay",
    "meterlink.cli.demo",
    "meterlink.cli.demo_site",
    "meterlink.cli.verify",
    "meterlink.cli.scan",
    "meterlink.agent.commission",
    "meterlink.agent.manual_command",
    "meterlink.agent.report",
    "meterlink.agent.report_view",
    "meterlink.agent.status",
    "meterlink.agent.report_days",
    "meterlink.agent.store_readonly",
    "meterlink.protocols.sl651",
    "meterlink.protocols.szy206",  # a Modbus-only site: no SZY206 bus, no SZY206 uplink
    "meterlink.drivers.szy206",
    "meterlink.agent.buses_szy206",
    "meterlink.agent.uplinks.szy206",
    "meterlink.agent.salvage",  # read only when a corrupt store is replaced
    "meterlink.agent.metrics",  # the site has no [metrics]: no endpoint, no prometheus-client
    "pymodbus",  # only Modbus TCP buses: pymodbus serves serial ones
    "prometheus_client",
    "joserfc",
    "psutil",
    "hypothesis",
    "pytest",
)
# What proves the list came from an agent that polled, signed and uploaded.
USED = ("meterlink.agent.service", "meterlink.drivers.modbus.driver", "meterlink.agent.uploader", "meterlink.wire.jws")


@pytest.fixture
def meter() -> Iterator[SimProcess]:
    sim = start_sim("--tcp", "0", "--meter", "xintai_water_meter:1")
    try:
        yield sim
    finally:
        sim.stop()


def agent_modules(site: Path, out: Path, log: Path) -> list[str]:
    """Run the agent until it has uploaded readings, stop it with SIGTERM, return its modules."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(out), "run", "-c", str(site)], stdout=sink, stderr=sink, env=env
        )
    try:
        uploaded = wait_until(lambda: proc.poll() is not None or b"event=uploaded" in log.read_bytes(), 60)
        assert uploaded and proc.poll() is None, log.read_text(errors="replace")[-2000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, log.read_text(errors="replace")[-2000:]
    return out.read_text().split("\n")


def test_a_running_agent_loads_no_simulator_demo_or_other_command(
    tmp_path: Path, broker: LocalBroker, meter: SimProcess
) -> None:
    site = write_site(tmp_path / "site", SITE.format(port=meter.tcp_port, broker=broker.url))
    modules = agent_modules(site, tmp_path / "modules.txt", tmp_path / "agent.log")
    assert set(USED) <= set(modules), f"not the modules of an agent at work: {sorted(set(USED) - set(modules))}"
    loaded = sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in NEVER))
    assert not loaded, f"the running agent loaded {loaded}"
