"""`meterlink status` per meter and the /metrics endpoint, read while a real agent runs against the
Modbus simulator and a real mosquitto, then after it stopped.

Two meters answer; one (unit 9) is on a unit id the simulator does not serve, so its polls fail.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.configs import write_site
from support.procs import METERLINK, start_agent, start_sim, wait_until

from meterlink.sim.broker import LocalBroker, free_port

pytestmark = pytest.mark.slow

SITE = """
[gateway]
id = "gw-health"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 0.3
retries = 0

[[meters]]
id = "well-1"
bus = "tcp"
unit_id = 1
profile = "xintai_water_meter"

[[meters]]
id = "well-2"
bus = "tcp"
unit_id = 2
profile = "xintai_water_meter"

[[meters]]
id = "dead"
bus = "tcp"
unit_id = 9
profile = "xintai_water_meter"
no_data_after = 2

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1

[clock]
sync_check = "assume_synced"

[metrics]
listen = "127.0.0.1:{metrics}"
"""


def status(site: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*METERLINK, "status", "-c", str(site), *extra], capture_output=True, text=True, timeout=60)


def status_json(site: Path) -> dict[str, object]:
    done = status(site, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def meters_of(state: dict[str, object]) -> dict[str, dict[str, object]]:
    meters = state["meters"]
    assert isinstance(meters, list), state
    return {m["id"]: m for m in meters}


def test_status_and_metrics_show_each_meter_while_running_and_after(tmp_path: Path, broker: LocalBroker) -> None:
    sim = start_sim("--tcp", "0", "--meter", "xintai_water_meter:1", "--meter", "xintai_water_meter:2")
    port = free_port()
    site = write_site(tmp_path / "site", SITE.format(port=sim.tcp_port, broker=broker.url, metrics=port))
    log = tmp_path / "agent.log"
    agent = start_agent(site, log)
    try:

        def settled() -> bool:
            if agent.poll() is not None:
                return True
            done = status(site, "--json")
            if done.returncode != 0:  # the store is not there yet
                return False
            m = meters_of(json.loads(done.stdout))
            return m["dead"]["state"] == "offline" and m["well-1"]["last_ts"] is not None

        assert wait_until(settled, 60, interval=0.5) and agent.poll() is None, log.read_text()[-3000:]
        running = status_json(site)
        agent_info = running["agent"]
        assert agent_info["running"] is True  # type: ignore[index]
        m = meters_of(running)
        assert (m["well-1"]["state"], m["well-1"]["consecutive_failures"]) == ("ok", 0)
        assert m["well-1"]["values"]["volume_total"] >= 0  # type: ignore[index]
        assert m["well-1"]["polls_last_hour"]["ok"] >= 1  # type: ignore[index]
        dead = m["dead"]
        assert dead["consecutive_failures"] >= 1 and dead["last_ts"] is None  # type: ignore[operator]
        assert "MeterTimeout" in str(dead["last_error"]) or "Exception" in str(dead["last_error"])
        text = status(site)
        assert "agent          running" in text.stdout and "dead" in text.stdout and "OFFLINE" in text.stdout

        def uploaded() -> bool:
            got = scrape(port)
            return bool(got.get("meterlink_messages_published_total", {}).get((("uplink", "mqtt"),)))

        assert wait_until(uploaded, 30, interval=0.5), log.read_text()[-3000:]
        got = scrape(port)
        polls = got["meterlink_polls_total"]
        assert polls[(("bus", "tcp"), ("meter", "well-1"))] >= 1
        assert polls[(("bus", "tcp"), ("meter", "dead"))] >= 1
        failures = got["meterlink_poll_failures_total"]
        assert sum(v for k, v in failures.items() if ("meter", "dead") in k) >= 1
        assert not [k for k in failures if ("meter", "well-1") in k]
        assert got["meterlink_poll_duration_seconds_count"][(("bus", "tcp"),)] >= 3
        assert got["meterlink_readings_stored_total"][()] >= 4
        assert got["meterlink_uplink_connected"][(("uplink", "mqtt"),)] == 1.0
        assert got["meterlink_puback_latency_seconds_count"][()] >= 1
        assert got["meterlink_last_upload_timestamp_seconds"][()] > 1.7e9
        assert got["meterlink_store_bytes"][()] > 0
        assert ("gateway", "gw-health") in next(iter(got["meterlink_build_info"]))
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
        sim.stop()
    assert code == 0, log.read_text()[-3000:]
    stopped = status_json(site)
    assert stopped["agent"]["running"] is False  # type: ignore[index]
    assert meters_of(stopped)["well-1"]["last_ts"] is not None  # as the agent last saw it
    assert "NOT RUNNING" in status(site).stdout
