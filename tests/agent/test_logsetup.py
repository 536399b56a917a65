"""Logs for the journal: priorities under systemd, timestamps elsewhere, per-area levels, no secrets."""

from __future__ import annotations

import base64
import logging
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from support.configs import write_site
from support.procs import METERLINK, SimProcess, start_sim, wait_until

from meterlink.agent import config as cfgmod
from meterlink.agent import logsetup
from meterlink.sim.broker import LocalBroker, make_password_file

PASSWORD = "Tr0ub4dor-and-3-horses"  # the secret the logs must never show

SITE = """
[gateway]
id = "gw-logs"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 0.5
retries = 0

[buses.line]
type = "serial"
device = "{pty}"
timeout = 0.5
retries = 0

[[meters]]
id = "well-1"
bus = "tcp"
unit_id = 1
profile = "tuf2000"

[[meters]]
id = "well-2"
bus = "line"
unit_id = 2
profile = "emf_generic"

[[meters]]
id = "absent"
bus = "line"
unit_id = 9
profile = "emf_generic"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
username = "gw-logs"
password_file = "mqtt.password"
upload_interval = 1

[clock]
sync_check = "assume_synced"

[log]
level = "debug"
modbus = "debug"
szy206 = "debug"
mqtt = "debug"
store = "debug"
"""


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for area in logsetup.AREAS:
        logging.getLogger(f"meterlink.{area}").setLevel(logging.NOTSET)


def test_priorities_follow_syslog() -> None:
    assert [logsetup.priority(n) for n in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    assert logsetup.priority(25) == 6 and logsetup.priority(5) == 7


def test_every_line_of_a_record_carries_its_priority() -> None:
    record = logging.LogRecord("meterlink.mqtt", logging.WARNING, __file__, 1, "one\ntwo", None, None)
    assert logsetup.JournalFormatter(logsetup.JOURNAL).format(record) == "<4>WARNING meterlink.mqtt: one\n<4>two"


def test_journal_stream_counts_only_when_it_is_stderr(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as stream, open(tmp_path / "other", "w") as other:
        info = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        assert logsetup.under_journal(stream, env)
        assert not logsetup.under_journal(other, env)  # inherited from a parent whose stderr it was
        assert not logsetup.under_journal(stream, {})


def test_areas_have_their_own_levels(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """[log] level = "warning" with modbus = "debug": the bus's debug lines show, the uplink's info not."""
    log = cfgmod.LogConfig(level="warning", modbus="debug")
    logsetup.from_config(log)
    logging.getLogger("meterlink.modbus").debug("event=bus_debug")
    logging.getLogger("meterlink.mqtt").info("event=mqtt_info")
    logging.getLogger("meterlink.store").warning("event=store_warning")
    err = capsys.readouterr().err
    assert "event=bus_debug" in err and "event=store_warning" in err and "event=mqtt_info" not in err
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", err)  # not under the journal: timestamps
    logsetup.from_config(log, override="info")  # --log-level: every area alike
    logging.getLogger("meterlink.modbus").debug("event=bus_debug_again")
    logging.getLogger("meterlink.mqtt").info("event=mqtt_info_again")
    err = capsys.readouterr().err
    assert "bus_debug_again" not in err and "mqtt_info_again" in err


def test_an_unknown_area_level_is_a_config_error() -> None:
    with pytest.raises(Exception, match="modbus"):
        cfgmod.LogConfig.model_validate({"modbus": "loud"})


@pytest.fixture
def meters() -> Iterator[SimProcess]:
    sim = start_sim("--tcp", "0", "--pty", "--meter", "tuf2000:1", "--meter", "emf_generic:2")
    yield sim
    sim.stop()


def secret_forms(key_file: Path) -> list[str]:
    """The MQTT password and the signing key as any log line could carry them."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pem_body = [line for line in key_file.read_text().splitlines() if not line.startswith("-----")]
    return [
        PASSWORD,
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        repr(raw)[2:-1],
        *pem_body,
    ]


@pytest.mark.slow
def test_a_full_run_under_the_journal_logs_priorities_and_no_secret(tmp_path: Path, meters: SimProcess) -> None:
    """The agent at debug in every area polls two buses (one meter absent) and uploads to a mosquitto
    that wants a password; its log, written as systemd would connect it, has a priority on every
    line, no timestamp of its own, and neither the password nor the key in any form."""
    broker = LocalBroker(
        tmp_path / "broker", password_file=make_password_file(tmp_path / "passwd", {"gw-logs": PASSWORD})
    )
    broker.start()
    site_dir = tmp_path / "site"
    site = write_site(site_dir, SITE.format(port=meters.tcp_port, pty=meters.pty, broker=broker.url))
    (site_dir / "mqtt.password").write_text(PASSWORD + "\n")
    log = tmp_path / "agent.log"
    try:
        with open(log, "wb") as sink:
            info = os.fstat(sink.fileno())
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
            proc = subprocess.Popen([*METERLINK, "run", "-c", str(site)], stdout=sink, stderr=sink, env=env)
        try:
            done = wait_until(lambda: proc.poll() is not None or log.read_bytes().count(b"event=uploaded") >= 2, 60)
            assert done and proc.poll() is None, log.read_text(errors="replace")[-3000:]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
    finally:
        broker.stop()
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    lines = text.splitlines()
    assert len(lines) > 10 and "meterlink.mqtt" in text and "meterlink.modbus" in text
    assert all(re.match(r"<[234567]>[A-Z]+ \S+: ", line) for line in lines), [
        line for line in lines if not re.match(r"<[234567]>", line)
    ][:5]
    # Debug lines (every area at debug) and the absent meter's warnings, each at its priority.
    assert any(line.startswith("<7>DEBUG ") for line in lines) and any(line.startswith("<4>WARNING ") for line in lines)
    leaked = [form for form in secret_forms(site_dir / "keys" / "gateway.key") if form in text]
    assert not leaked, f"secret in the log: {leaked}"
