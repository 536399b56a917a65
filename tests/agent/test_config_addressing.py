"""Two meters answering to one address, or two buses on one port, are config errors (one line each).

Two meters with one unit id on one TCP endpoint read the same device and store its values twice
under two names; a second bus on one serial device never opens under run. Wherever they are
configured, the (endpoint, address) pair must be unique.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.configs import write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.errors import ConfigError

HEAD = """
[gateway]
id = "gw"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"
"""


def bus(name: str, *lines: str) -> str:
    return f"[buses.{name}]\n" + "".join(f"{line}\n" for line in lines)


def tcp(name: str, host: str = "10.0.0.5", port: int = 502, *extra: str) -> str:
    return bus(name, 'type = "tcp"', f'host = "{host}"', f"port = {port}", *extra)


def serial(name: str, device: str, *extra: str) -> str:
    return bus(name, 'type = "serial"', f'device = "{device}"', *extra)


def meter(mid: str, on: str, unit: int | None = 1, address: str | None = None) -> str:
    where = f'address = "{address}"\n' if address else f'unit_id = {unit}\nprofile = "tuf2000"\n'
    return f'[[meters]]\nid = "{mid}"\nbus = "{on}"\n{where}'


def load(tmp_path: Path, *parts: str) -> cfgmod.Config:
    return cfgmod.load(write_site(tmp_path, HEAD + "\n".join(parts)))


def errors(tmp_path: Path, *parts: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, *parts)
    return info.value.lines


SZY = ('protocol = "szy206"',)

CONFLICTS = [
    (
        "one unit id twice on one tcp bus",
        [tcp("plc"), meter("a", "plc", 1), meter("b", "plc", 1)],
        ["meters[b].unit_id: 1 is already used by a on bus plc"],
    ),
    (
        "one unit id twice on one serial bus",
        [serial("rs485", "/dev/ttyUSB0"), meter("a", "rs485", 7), meter("b", "rs485", 7)],
        ["meters[b].unit_id: 7 is already used by a on bus rs485"],
    ),
    (
        "two serial buses on one device",
        [
            serial("line1", "/dev/ttyUSB0"),
            serial("line2", "/dev/ttyUSB0", "baudrate = 19200"),
            meter("a", "line1", 1),
            meter("b", "line2", 2),
        ],
        [
            "buses.line2.device: /dev/ttyUSB0 is already the device of bus line1 (one port is one bus: "
            "put the meters of both on one bus)"
        ],
    ),
    (
        "two tcp buses on one endpoint with one unit id",
        [tcp("gw1"), tcp("gw2", "10.0.0.5", 502, "timeout = 3"), meter("a", "gw1", 3), meter("b", "gw2", 3)],
        ["meters[b].unit_id: 3 is already used by a at 10.0.0.5:502 (bus gw1)"],
    ),
    (
        "one szy206 address twice on one bus",
        [
            serial("szy", "/dev/ttyUSB1", *SZY),
            meter("a", "szy", address="430100:7"),
            meter("b", "szy", address="430100:7"),
        ],
        ["meters[b].address: 430100:7 is already used by a on bus szy"],
    ),
    (
        "one szy206 address on two tcp buses to one endpoint",
        [
            tcp("s1", "10.0.0.9", 5005, *SZY),
            tcp("s2", "10.0.0.9", 5005, *SZY),
            meter("a", "s1", address="430100:7"),
            meter("b", "s2", address="430100:7"),
        ],
        ["meters[b].address: 430100:7 is already used by a at 10.0.0.9:5005 (bus s1)"],
    ),
    (
        "every conflict is a line of its own",
        [
            tcp("plc"),
            serial("line1", "/dev/ttyUSB0"),
            serial("line2", "/dev/ttyUSB0"),
            meter("a", "plc", 1),
            meter("b", "plc", 1),
            meter("c", "line1", 2),
            meter("d", "line2", 4),
        ],
        [
            "buses.line2.device: /dev/ttyUSB0 is already the device of bus line1 (one port is one bus: "
            "put the meters of both on one bus)",
            "meters[b].unit_id: 1 is already used by a on bus plc",
        ],
    ),
]


@pytest.mark.parametrize(("parts", "expected"), [c[1:] for c in CONFLICTS], ids=[c[0] for c in CONFLICTS])
def test_an_addressing_conflict_is_one_line_naming_the_key(
    tmp_path: Path, parts: list[str], expected: list[str]
) -> None:
    assert errors(tmp_path, *parts) == expected


ALLOWED = [
    (
        "one unit id on two tcp endpoints",
        [tcp("a", "10.0.0.5"), tcp("b", "10.0.0.6"), meter("m1", "a", 1), meter("m2", "b", 1)],
    ),
    (
        "one unit id on two ports of one host",
        [tcp("a", port=502), tcp("b", port=503), meter("m1", "a", 1), meter("m2", "b", 1)],
    ),
    (
        "two tcp buses on one endpoint, distinct unit ids",
        [tcp("a"), tcp("b"), meter("m1", "a", 1), meter("m2", "b", 2)],
    ),
    (
        "one unit id on two serial devices",
        [serial("a", "/dev/ttyUSB0"), serial("b", "/dev/ttyUSB1"), meter("m1", "a", 1), meter("m2", "b", 1)],
    ),
]


@pytest.mark.parametrize("parts", [c[1] for c in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_distinct_addresses_are_accepted(tmp_path: Path, parts: list[str]) -> None:
    assert len(load(tmp_path, *parts).meters) == 2
