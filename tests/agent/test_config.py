"""Config loading: one line per problem, naming the key; relative paths; secrets never printed."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from support.configs import BASE, write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.errors import ConfigError
from meterlink.cli.main import main

# The base with its serial bus on TCP: /dev/null is not a serial port (an error since check-config
# tries the port), and a missing one would add a warning line to what these tests compare.
NO_SERIAL = BASE.replace('type = "serial"\ndevice = "/dev/null"\nbaudrate = 9600', 'type = "tcp"\nhost = "127.0.0.1"')


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    path = write_site(tmp_path)
    config = cfgmod.load(path)
    assert cfgmod.describe(config) == "OK: 2 meters on 2 buses"
    assert config.store.path == tmp_path.resolve() / "state" / "meterlink.db"  # relative to the file
    assert config.signing.key == tmp_path.resolve() / "keys" / "gateway.key"
    assert config.uplink.mqtt is not None and config.uplink.mqtt.topic_prefix == "meterlink"
    assert config.poll_interval(config.meters[0]) == 60


def test_examples_in_deploy_validate() -> None:
    folder = Path(__file__).resolve().parents[2] / "deploy" / "examples"
    examples = sorted(folder.glob("*.toml"))
    assert examples
    for example in examples:
        cfgmod.load(example)


def test_check_config_prints_ok_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_site(tmp_path, NO_SERIAL)
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "OK: 2 meters on 2 buses"


def test_a_byte_order_mark_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Older Windows Notepad starts every UTF-8 file with one."""
    path = tmp_path / "meterlink.toml"
    write_site(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + NO_SERIAL.encode())
    assert cfgmod.load(path).gateway.id == "gw-test"
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "OK: 2 meters on 2 buses"


def test_a_missing_serial_device_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_site(tmp_path, BASE.replace('device = "/dev/null"', 'device = "/dev/ttyUSB9"'))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "OK: 2 meters on 2 buses"
    assert "warning: buses.line1.device: /dev/ttyUSB9 does not exist right now" in out.err


BROKEN = [
    # (what is replaced, by what, the start of the expected line)
    ('id = "gw-test"', "id = 5", "gateway.id: Input should be a valid string"),
    ('id = "gw-test"', 'id = "gw test"', "gateway.id: String should match pattern"),
    ("poll_interval = 60", "poll_interval = 0", "gateway.poll_interval: Input should be greater than or equal to 1"),
    ("poll_interval = 60", "pol_interval = 60", "gateway.pol_interval: unknown key"),
    ("baudrate = 9600", "baudrate = 9601", "buses.line1.baudrate: 9601 is not a standard baud rate"),
    ("baudrate = 9600", 'baudrate = "fast"', "buses.line1.baudrate: Input should be a valid integer"),
    ('type = "serial"', 'type = "rs485"', "buses.line1.type: Input should be 'serial' or 'tcp'"),
    ('device = "/dev/null"', 'parity = "X"', "buses.line1.parity: Input should be 'N', 'E' or 'O'"),
    ('device = "/dev/null"', "stopbits = 3", "buses.line1.stopbits"),
    ("port = 5020", "port = 70000", "buses.tcp1.port: Input should be less than or equal to 65535"),
    ('host = "127.0.0.1"', 'device = "/dev/x"', "buses.tcp1: a tcp bus needs host"),
    ('profile = "tuf2000"', 'profile = "tuf3000"', "meters[m1].profile: unknown profile 'tuf3000'"),
    ('bus = "line1"', 'bus = "line9"', "meters[m1].bus: no bus named 'line9'"),
    (
        'unit_id = 1\nprofile = "tuf2000"',
        'unit_id = 248\nprofile = "tuf2000"',
        "meters[m1].unit_id: 248 is not a serial",
    ),
    ('id = "m2"', 'id = "m1"', "meters[m1].id: 'm1' is used twice"),
    ('[signing]\nkey = "keys/gateway.key"', "", "signing: required, missing"),
    ('broker = "mqtt://127.0.0.1:1883"', 'broker = "http://x"', "uplink.mqtt.broker: must start with mqtt://"),
    ('broker = "mqtt://127.0.0.1:1883"', 'broker = "mqtt://u:p@x"', "uplink.mqtt.broker: must not carry credentials"),
    (
        'broker = "mqtt://127.0.0.1:1883"',
        'broker = "mqtt://127.0.0.1:1883"\nca = "ca.pem"',
        "uplink.mqtt: ca/client_cert/client_key need an mqtts:// broker",
    ),
    (
        'broker = "mqtt://127.0.0.1:1883"',
        'broker = "mqtt://127.0.0.1:1883"\npassword_env = "X"',
        "uplink.mqtt: a password needs a username",
    ),
    ("[uplink.mqtt]", "[uplink.mqtt]\nupload_interval = -5", "uplink.mqtt.upload_interval"),
    ("[store]", '[store]\ncapacity_mb = "big"', "store.capacity_mb: Input should be a valid number"),
    ('profile = "tuf2000"', 'profile = "tuf2000"\nnumbering = "wire"', "meters[m1]: numbering and function"),
    ('profile = "tuf2000"', "", "meters[m1]: give either profile"),
]


@pytest.mark.parametrize(("old", "new", "expected"), BROKEN, ids=[b[2][:40] for b in BROKEN])
def test_broken_configs_name_the_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in BASE
    path = write_site(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        cfgmod.load(path)
    assert any(line.startswith(expected) for line in info.value.lines), info.value.lines


def test_inline_map_needs_numbering_and_catches_overlaps(tmp_path: Path) -> None:
    inline = BASE.replace(
        'profile = "emf_generic"',
        """
registers = [
  { quantity = "flow_rate", unit = "m3/h", address = 0, type = "float32" },
  { quantity = "volume_total", unit = "m3", address = 1, type = "uint32" },
]""",
    )
    path = write_site(tmp_path, inline)
    with pytest.raises(ConfigError) as info:
        cfgmod.load(path)
    assert info.value.lines == [
        'meters[m2]: an inline map must state numbering = "wire" (0-based) or "manual" (1-based)'
    ]
    path.write_text(inline.replace("registers = [", 'numbering = "wire"\nregisters = ['))
    with pytest.raises(ConfigError) as info:
        cfgmod.load(path)
    assert "volume_total overlaps flow_rate at wire address 1" in info.value.lines[0]


def test_manual_numbering_shifts_to_wire_addresses(tmp_path: Path) -> None:
    inline = BASE.replace(
        'profile = "emf_generic"',
        """numbering = "manual"
registers = [ { quantity = "flow_rate", unit = "m3/h", address = 1, type = "float32", word_order = "CDAB" } ]""",
    )
    meter = cfgmod.load(write_site(tmp_path, inline)).meters[1]
    assert isinstance(meter, cfgmod.ModbusMeterConfig)
    (spec,) = meter.value_specs()
    assert spec.parts[0].address == 0


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    path = write_site(tmp_path, BASE + "\n[[meters]\n")
    with pytest.raises(ConfigError) as info:
        cfgmod.load(path)
    assert len(info.value.lines) == 1 and "invalid TOML" in info.value.lines[0]


def test_missing_key_file_is_reported_by_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_site(tmp_path, NO_SERIAL.replace("keys/gateway.key", "keys/other.key"))
    assert main(["check-config", str(path)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning: ")]
    assert errors == [f"signing.key: {tmp_path.resolve()}/keys/other.key does not exist"]


def test_an_unreadable_file_names_the_file_and_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = cfgmod.load(write_site(tmp_path))
    key = config.signing.key
    real_access = os.access
    # The tests may run as root, who reads anything: pretend the key alone is unreadable.
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != key and real_access(path, mode))
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert cfgmod.check_files(config) == [f"signing.key: {key} is not readable by user {user}"]


def test_password_from_file_and_env_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret-Pa55\n")
    text = BASE.replace("[uplink.mqtt]", '[uplink.mqtt]\nusername = "gw"\npassword_file = "pw"')
    config = cfgmod.load(write_site(tmp_path, text))
    assert config.uplink.mqtt is not None
    secret = config.uplink.mqtt.password()
    assert secret is not None and secret.get_secret_value() == "s3cret-Pa55"
    assert "s3cret" not in repr(config) and "s3cret" not in str(secret)
    monkeypatch.setenv("ML_PW", "from-env")
    config = cfgmod.load(
        write_site(tmp_path, BASE.replace("[uplink.mqtt]", '[uplink.mqtt]\nusername = "gw"\npassword_env = "ML_PW"'))
    )
    assert config.uplink.mqtt.password().get_secret_value() == "from-env"  # type: ignore[union-attr]


def test_a_password_file_that_is_not_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pw").write_bytes(b"\xff\xfe")
    text = NO_SERIAL.replace("[uplink.mqtt]", '[uplink.mqtt]\nusername = "gw"\npassword_file = "pw"')
    path = write_site(tmp_path, text)
    expected = f"uplink.mqtt.password_file: {tmp_path.resolve()}/pw is not UTF-8 text"
    with pytest.raises(ConfigError) as info:
        cfgmod.load(path).uplink.mqtt.password()  # type: ignore[union-attr]
    assert info.value.lines == [expected]
    for command in (["check-config", str(path)], ["run", "-c", str(path)]):
        assert main(command) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning: ")]
        assert errors == [expected]


def test_the_command_never_prints_a_traceback(tmp_path: Path) -> None:
    path = write_site(tmp_path, "this is = = not toml")
    proc = subprocess.run(
        [sys.executable, "-m", "meterlink", "check-config", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run(
        [sys.executable, "-m", "meterlink", "check-config", str(tmp_path / "nope.toml")], capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stderr.strip() == f"{tmp_path / 'nope.toml'}: no such file"


SZY206 = """
[uplink.szy206]
host = "10.0.0.5"
port = 5005
division = "430100"
station = 7
"""


def test_szy206_uplink_and_positions(tmp_path: Path) -> None:
    text = BASE.replace('profile = "tuf2000"', 'profile = "tuf2000"\nszy206_position = 2') + SZY206
    config = cfgmod.load(write_site(tmp_path, text))
    assert config.uplink.szy206 is not None and config.uplink.szy206.tp_len == 5
    assert config.uplink.szy206.utc_offset_hours == 8 and config.uplink.szy206.retries == 3
    only_szy206 = text.replace('[uplink.mqtt]\nbroker = "mqtt://127.0.0.1:1883"\n', "")
    assert cfgmod.load(write_site(tmp_path, only_szy206)).uplink.mqtt is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t + SZY206, "no meter has a szy206_position"),
        (
            lambda t: (
                t.replace('profile = "tuf2000"', 'profile = "tuf2000"\nszy206_position = 1').replace(
                    'profile = "emf_generic"', 'profile = "emf_generic"\nszy206_position = 1'
                )
                + SZY206
            ),
            "meters[m2].szy206_position: 1 is already m1's",
        ),
        (
            lambda t: t.replace('[uplink.mqtt]\nbroker = "mqtt://127.0.0.1:1883"\n', "[uplink]\n"),
            "uplink: configure [uplink.mqtt], [uplink.szy206] or both",
        ),
        (lambda t: t + SZY206.replace('"430100"', '"43010"'), "uplink.szy206.division: String should match"),
        (lambda t: t + SZY206.replace("station = 7", "station = 60001"), "uplink.szy206.station: Input should be less"),
        (lambda t: t + SZY206 + 'time_label = "7"\n', "uplink.szy206.time_label: Input should be 'szy206', 'sl427'"),
        (lambda t: t + SZY206 + "retries = 4\n", "uplink.szy206.retries: Input should be less than or equal to 3"),
    ],
)
def test_broken_szy206_settings(tmp_path: Path, change: object, expected: str) -> None:
    path = write_site(tmp_path, change(BASE))  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        cfgmod.load(path)
    assert any(line.startswith(expected) or expected in line for line in info.value.lines), info.value.lines
