"""``[uplink.sl651]`` in a whole site file; ``meterlink demo --sl651-center`` against the simulated centre."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import METERLINK

from meterlink.agent import config as cfgmod
from meterlink.agent.errors import ConfigError

pytestmark = pytest.mark.slow

SITE = """
[gateway]
id = "gw"

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = 5020

[[meters]]
id = "intake"
bus = "tcp"
unit_id = 1
profile = "tuf2000"

[store]
path = "state/m.db"

[signing]
key = "keys/gateway.key"

[uplink.sl651]
host = "127.0.0.1"
port = 5051
center = 1
station = "0043010007"
{extra}
[uplink.sl651.meters.intake]
flow = {{ id = "27" }}
{meters}
"""


def lines(tmp_path: Path, extra: str = "", meters: str = "") -> list[str]:
    path = write_site(tmp_path / "site", SITE.format(extra=extra, meters=meters))
    with pytest.raises(ConfigError) as caught:
        cfgmod.load(path)
    return str(caught.value).splitlines()


def test_a_site_with_the_section_loads_alone(tmp_path: Path) -> None:
    config = cfgmod.load(write_site(tmp_path / "site", SITE.format(extra="", meters="")))
    assert config.uplink.sl651 is not None and config.uplink.mqtt is None


def test_check_config_names_each_problem_on_a_line_of_its_own(tmp_path: Path) -> None:
    got = lines(
        tmp_path,
        extra='station_type = "X"\nkeepalive_s = 5',
        meters='[uplink.sl651.meters.pump]\nvolume = { id = "FF09" }',
    )
    assert sorted(got) == [
        "uplink.sl651.keepalive_s: unknown key (misspelt? it would be ignored, so it is an error)",
        "uplink.sl651.meters.pump.volume: definition: FF09 has no standard type, give its data definition (e.g. 2B)",
        "uplink.sl651.station_type: 'X' is no station type of the standard (D, G, H, I, K, M, O, P, Q, T, Z)",
    ]
    assert lines(tmp_path / "b", meters='[uplink.sl651.meters.pump]\nvolume = { id = "FF09", definition = "32" }') == [
        "uplink.sl651.meters.pump: no meter has the id 'pump'"
    ]


def test_demo_reports_to_an_sl651_centre(tmp_path: Path) -> None:
    centre = subprocess.Popen(
        [*METERLINK, "sim", "sl651-center", "--listen", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert centre.stdout is not None
        port = int(centre.stdout.readline().rsplit(":", 1)[1])
        proc = subprocess.run(
            [*METERLINK, "demo", "--duration", "24", "--sl651-center", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        centre.terminate()
        frames = centre.communicate(timeout=10)[0]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acknowledged = re.findall(r"sl651 report 32H of \d\d:\d\d:\d\d \(UTC\+8\) acknowledged by the centre", proc.stdout)
    assert len(acknowledged) >= 1, proc.stdout
    m = re.search(r"sl651: (\d+) reports acknowledged by the centre, 0 resent", proc.stdout)
    assert m and int(m.group(1)) == len(acknowledged)
    reports = [json.loads(line)["frame"] for line in frames.splitlines() if '"function": "32"' in line]
    assert any(r["direction"] == "up" and r["station"] == "0043010007" for r in reports)


def test_demo_refuses_a_centre_that_is_not_host_port() -> None:
    proc = subprocess.run([*METERLINK, "demo", "--sl651-center", "nowhere"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["meterlink: --sl651-center must look like HOST:PORT"]
