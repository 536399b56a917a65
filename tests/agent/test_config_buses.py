"""A bus is serial or tcp (a tagged union): its error lines read as when it was one model."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.configs import BASE, write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.errors import ConfigError

SERIAL = '[buses.line1]\ntype = "serial"\ndevice = "/dev/null"\nbaudrate = 9600\n'
TCP = '[buses.tcp1]\ntype = "tcp"\nhost = "127.0.0.1"\nport = 5020\n'

CASES = [
    (SERIAL, '[buses.line1]\ntype = "serial"\n', ["buses.line1: a serial bus needs device (e.g. /dev/ttyUSB0)"]),
    (SERIAL, SERIAL.replace('"/dev/null"', '""'), ["buses.line1: a serial bus needs device (e.g. /dev/ttyUSB0)"]),
    (TCP, '[buses.tcp1]\ntype = "tcp"\nport = 5020\n', ["buses.tcp1: a tcp bus needs host"]),
    (SERIAL, SERIAL + 'host = "h"\nport = 1\n', ["buses.line1: host, port do(es) not apply to a serial bus"]),
    (TCP, TCP + 'parity = "E"\nstopbits = 2\n', ["buses.tcp1: parity, stopbits do(es) not apply to a tcp bus"]),
    # A field error hides the keys of the other type, as the one model's validator never ran then.
    (
        TCP,
        TCP.replace("5020", "0") + 'device = "/dev/x"\n',
        ["buses.tcp1.port: Input should be greater than or equal to 1"],
    ),
    (SERIAL, SERIAL.replace("9600", "9601"), ["buses.line1.baudrate: 9601 is not a standard baud rate ("]),
    (SERIAL, SERIAL + "speed = 3\n", ["buses.line1.speed: unknown key"]),
    (SERIAL, SERIAL.replace('"serial"', '"usb"'), ["buses.line1.type: Input should be 'serial' or 'tcp'"]),
    (SERIAL, SERIAL.replace('type = "serial"\n', ""), ["buses.line1.type: required, missing"]),
    (TCP, '[buses]\ntcp1 = "x"\n', ["buses.tcp1: Input should be a valid dictionary or instance of BusConfig"]),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES, ids=[c[2][0][:50] for c in CASES])
def test_bus_errors_read_as_before(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    assert old in BASE
    with pytest.raises(ConfigError) as info:
        cfgmod.load(write_site(tmp_path, BASE.replace(old, new, 1)))
    lines = info.value.lines
    assert len(lines) == len(expected) and all(a.startswith(b) for a, b in zip(lines, expected, strict=True)), lines


def test_a_bus_is_its_type() -> None:
    config = cfgmod.Config.model_validate(
        {
            "gateway": {"id": "gw"},
            "buses": {"a": {"type": "serial", "device": "/dev/ttyS0"}, "b": {"type": "tcp", "host": "h"}},
            "meters": [{"id": "m1", "bus": "a", "profile": "tuf2000"}],
            "signing": {"key": "k"},
            "uplink": {"mqtt": {"broker": "mqtt://h"}},
        }
    )
    assert isinstance(config.buses["a"], cfgmod.SerialBusConfig) and config.buses["a"].baudrate == 9600
    assert isinstance(config.buses["b"], cfgmod.TcpBusConfig) and config.buses["b"].port == 502
