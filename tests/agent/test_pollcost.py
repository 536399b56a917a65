"""A poll interval the bus cannot keep is a check-config warning naming both figures.

The worst-case cycle is the one the agent's watchdog allows for: every request of every meter
timing out on every try, plus, on a serial Modbus bus, the quiet time after each failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.configs import write_site
from support.runs import ABSENT_DEVICE

from meterlink.cli.main import main

SITE = """
[gateway]
id = "gw"
poll_interval = 10

[buses.rs485]
type = "serial"
device = "{device}"
timeout = 1
retries = 2

[buses.station]
type = "tcp"
protocol = "szy206"
host = "10.0.0.9"
timeout = 4
retries = 1

[[meters]]
id = "well"
bus = "station"
address = "430100:7"
poll_interval = {well_interval}

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"
"""

LEVEL = '\n[[meters]]\nid = "level{n}"\nbus = "rs485"\nunit_id = {n}\nprofile = "qdy30a_level"\n'


def budget_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str], levels: int, well_interval: int) -> list[str]:
    text = SITE.format(device=ABSENT_DEVICE, well_interval=well_interval)
    text += "".join(LEVEL.format(n=n) for n in range(1, levels + 1))
    assert main(["check-config", str(write_site(tmp_path, text))]) == 0
    err = capsys.readouterr().err.splitlines()
    return [line for line in err if "poll cycle" in line]


def test_a_serial_bus_slower_than_its_poll_interval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Each level meter: 1 request x 1 s x 3 tries + 0.5 s quiet = 3.5 s; three of them 10.5 s > 10 s.
    assert budget_warnings(tmp_path, capsys, levels=3, well_interval=60) == [
        "warning: buses.rs485: one poll cycle can take up to 10.5 s (3 meters, 3 requests x 1 s x 3 tries "
        "+ 1.5 s quiet after failures), longer than the shortest poll interval on the bus "
        "(10 s, gateway.poll_interval): polls would miss their slots"
    ]


def test_an_szy206_meter_polled_faster_than_it_can_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 1 request x 4 s x 2 tries = 8 s against the meter's own 5 s.
    assert budget_warnings(tmp_path, capsys, levels=1, well_interval=5) == [
        "warning: buses.station: one poll cycle can take up to 8.0 s (1 meter, 1 request x 4 s x 2 tries), "
        "longer than the shortest poll interval on the bus (5 s, meters[well].poll_interval): "
        "polls would miss their slots"
    ]


def test_buses_that_keep_their_interval_say_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert budget_warnings(tmp_path, capsys, levels=2, well_interval=8) == []


def test_the_agent_budgets_with_the_same_function() -> None:
    from meterlink.agent import pollcost
    from meterlink.agent.assembly import poll_cost_ms  # type: ignore[attr-defined]  # imported there

    assert poll_cost_ms is pollcost.poll_cost_ms
