"""A meter is Modbus, SZY206 or read by hand (a tagged union), told apart by the keys it always had.

No bus: read by hand. An address: SZY206. Otherwise Modbus. A key of another kind is one line naming
it; every other line reads as when meters were one model with optional keys.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.configs import write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.errors import ConfigError
from meterlink.cli.main import main

SITE = """
[gateway]
id = "gw"

[buses.tcp1]
type = "tcp"
host = "127.0.0.1"
port = 5020

[buses.szy]
type = "tcp"
host = "127.0.0.1"
port = 5005
protocol = "szy206"

[[meters]]
id = "m1"
bus = "tcp1"
unit_id = 1
profile = "tuf2000"

[[meters]]
id = "w1"
bus = "szy"
address = "430100:7"
pairs = 2

[[meters]]
id = "h1"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"
"""
M1 = 'id = "m1"\n'
W1 = 'id = "w1"\n'
H1 = 'id = "h1"\n'
MODBUS = "(this one has a bus and no address: Modbus)"
SZY206 = "(this one has an address: SZY206)"
BY_HAND = "(this one has no bus, so it is read by hand; give it a bus to poll it)"


def lines(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfgmod.load(write_site(tmp_path, text))
    return info.value.lines


def with_keys(anchor: str, *keys: str) -> str:
    """The site with ``keys`` added to the meter whose id line is ``anchor``."""
    assert anchor in SITE
    return SITE.replace(anchor, anchor + "".join(f"{k}\n" for k in keys), 1)


def test_each_meter_is_the_kind_its_keys_say(tmp_path: Path) -> None:
    config = cfgmod.load(write_site(tmp_path, SITE))
    m1, w1, h1 = config.meters
    assert isinstance(m1, cfgmod.ModbusMeterConfig) and m1.register_map().registers
    assert isinstance(w1, cfgmod.Szy206MeterConfig) and (w1.address, w1.pairs, w1.flow_unit) == ("430100:7", 2, "m3/h")
    assert isinstance(h1, cfgmod.ManualMeterConfig) and h1.bus is None and h1.szy206_position is None
    assert cfgmod.describe(config) == "OK: 3 meters on 2 buses"


def test_a_meter_read_by_hand_keeps_its_address_out_of_the_kind(tmp_path: Path) -> None:
    """No bus decides first, as it always did: an address on such a meter is a stray key, not SZY206."""
    assert lines(tmp_path, with_keys(H1, 'address = "430100:9"')) == [
        f"meters[h1].address: only for SZY206 meters {BY_HAND}"
    ]


STRAY = [
    # A Modbus meter given an SZY206 meter's keys: accepted and ignored before.
    (M1, ["pairs = 2"], [f"meters[m1].pairs: only for SZY206 meters {MODBUS}"]),
    (M1, ['time_label = "none"'], [f"meters[m1].time_label: only for SZY206 meters {MODBUS}"]),
    (M1, ['flow_unit = "m3/s"'], [f"meters[m1].flow_unit: only for SZY206 meters and meters read by hand {MODBUS}"]),
    # An SZY206 meter given a Modbus meter's keys: one line each (one line for them all before).
    (W1, ['profile = "tuf2000"'], [f"meters[w1].profile: only for Modbus meters {SZY206}"]),
    (
        W1,
        [
            'numbering = "wire"',
            'registers = [{ quantity = "flow_rate", unit = "m3/h", address = 0, type = "float32" }]',
        ],
        [
            f"meters[w1].numbering: only for Modbus meters {SZY206}",
            f"meters[w1].registers: only for Modbus meters {SZY206}",
        ],
    ),
    (W1, ["unit_id = 3"], [f"meters[w1].unit_id: only for Modbus meters {SZY206}"]),
    # A meter read by hand given a polled meter's keys.
    (
        H1,
        ['profile = "tuf2000"', "pairs = 2"],
        [
            f"meters[h1].profile: only for Modbus meters {BY_HAND}",
            f"meters[h1].pairs: only for SZY206 meters {BY_HAND}",
        ],
    ),
    (H1, ["szy206_position = 1"], [f"meters[h1].szy206_position: only for meters on a bus {BY_HAND}"]),
    # A key of no kind at all is still unknown.
    (W1, ["unit = 3"], ["meters[w1].unit: unknown key (misspelt? it would be ignored, so it is an error)"]),
]


@pytest.mark.parametrize(("anchor", "keys", "expected"), STRAY, ids=[c[2][0].split(":")[0] for c in STRAY])
def test_a_key_of_another_kind_is_one_line_naming_it(
    tmp_path: Path, anchor: str, keys: list[str], expected: list[str]
) -> None:
    assert lines(tmp_path, with_keys(anchor, *keys)) == expected


# The lines these configs gave when a meter was one model with optional keys, word for word.
AS_BEFORE = [
    (
        SITE.replace('address = "430100:7"', 'address = "430100:0"'),
        ["meters[w1]: address: station number 0 is outside 1..60000"],
    ),
    (
        SITE.replace('address = "430100:7"', 'address = "4301007"'),
        ["meters[w1].address: String should match pattern '^[0-9]{6}:[0-9]{1,5}$'"],
    ),
    (
        SITE.replace('bus = "szy"', 'bus = "tcp1"'),
        ['meters[w1]: bus tcp1 speaks modbus; an SZY206 meter (address) needs a bus with protocol = "szy206"'],
    ),
    (
        SITE.replace('bus = "tcp1"', 'bus = "szy"'),
        ["meters[m1]: bus szy speaks szy206; give this meter an address (SZY206)"],
    ),
    (SITE.replace('bus = "szy"', 'bus = "line9"'), ["meters[w1].bus: no bus named 'line9' (buses: tcp1, szy)"]),
    (SITE.replace('bus = "szy"', "bus = 5"), ["meters[w1].bus: Input should be a valid string"]),
    (
        SITE.replace('profile = "tuf2000"', 'profile = "tuf2000"\nnumbering = "wire"'),
        ["meters[m1]: numbering and function come from the profile; use an inline map to change them"],
    ),
    (
        SITE.replace('profile = "tuf2000"\n', ""),
        ["meters[m1]: give either profile = NAME or an inline [[meters.registers]] map, not both"],
    ),
    (with_keys(H1, "max_flow = 0"), ["meters[h1].max_flow: Input should be greater than 0"]),
    (
        with_keys(W1, "pairs = 24").replace("pairs = 2\n", ""),
        ["meters[w1].pairs: Input should be less than or equal to 23"],
    ),
    (
        'meters = [{ id = "h1" }, "m2"]\n'
        + SITE[SITE.index("[gateway]") : SITE.index("[buses.tcp1]")]
        + SITE[SITE.index("[signing]") :],
        ["meters[#2]: Input should be a valid dictionary or instance of MeterConfig"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), AS_BEFORE, ids=[c[1][0][:60] for c in AS_BEFORE])
def test_other_meter_lines_read_as_before(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert lines(tmp_path, text) == expected


def test_check_config_prints_the_line_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_site(tmp_path, with_keys(M1, "pairs = 2"))
    assert main(["check-config", str(path)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning: ")]
    assert errors == [f"meters[m1].pairs: only for SZY206 meters {MODBUS}"]
