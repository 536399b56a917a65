"""Why a serial port cannot be opened, in the same words from check-config, read and run.

Permission denied and "not a tty" are errors: check-config and run refuse with the same line. A
missing adapter and a port another process holds are warnings (the adapter comes back, the other
process ends): run starts, and every failed open says why.
"""

from __future__ import annotations

import grp
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.configs import write_site
from support.runs import CLOSED_BROKER, as_user, check_config, chown_tree, meterlink, run_briefly, shared_folder

SITE = f"""
[gateway]
id = "gw"
poll_interval = 1

[buses.line1]
type = "serial"
device = "{{device}}"
timeout = 0.2
retries = 0

[[meters]]
id = "m1"
bus = "line1"
unit_id = 1
profile = "qdy30a_level"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{CLOSED_BROKER}"
"""

HOLDER = """
import sys, time, serial
port = serial.Serial(sys.argv[1], exclusive=True)
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def pty() -> Iterator[str]:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)  # only the master stays open: nothing but the test's holder holds the slave
    yield name
    os.close(master)


def read(config: Path, **popen: Any) -> subprocess.CompletedProcess[str]:
    return meterlink("read", "-c", str(config), **popen)


def refused_alike(config: Path, reason: str, **popen: Any) -> None:
    """An error: check-config and run exit 1 with one line; read says the same after the bus name."""
    line = f"buses.line1.device: {reason}"
    check = check_config(config, **dict(popen))
    assert check.returncode == 1 and line in check.stderr.splitlines(), check.stderr
    ran = run_briefly(config, **dict(popen))
    assert ran.code == 1 and not ran.stopped and line in ran.output.splitlines(), ran.output
    polled = read(config, **dict(popen))
    assert f"m1 unit 1: FAILED TransportError: bus line1: {reason}" in polled.stdout, polled


def warned_alike(config: Path, reason: str) -> None:
    """A warning: check-config passes with it, run starts, logs it, and says it at each failed open."""
    check = check_config(config)
    assert check.returncode == 0, check.stderr
    assert f"warning: buses.line1.device: {reason}" in check.stderr.splitlines(), check.stderr
    ran = run_briefly(config)
    assert ran.stopped and ran.code == 0, ran.output
    assert f"buses.line1.device: {reason}" in ran.output, ran.output
    assert f"bus line1: {reason}" in ran.output, ran.output
    polled = read(config)
    assert f"m1 unit 1: FAILED TransportError: bus line1: {reason}" in polled.stdout, polled


def test_a_plain_file_is_not_a_serial_port(tmp_path: Path) -> None:
    (tmp_path / "ttyUSB0").write_text("")
    config = write_site(tmp_path, SITE.format(device=tmp_path / "ttyUSB0"))
    refused_alike(config, f"{tmp_path}/ttyUSB0 is not a serial port: a regular file, not a tty")


def test_a_missing_adapter(tmp_path: Path) -> None:
    config = write_site(tmp_path, SITE.format(device="/dev/ttyUSB-meterlink-gone"))
    by_id = Path("/dev/serial/by-id")
    assert not by_id.exists(), "this test expects a machine without USB serial adapters"
    warned_alike(
        config,
        "/dev/ttyUSB-meterlink-gone does not exist right now (adapter unplugged?); "
        "no serial adapter is listed in /dev/serial/by-id",
    )


def test_a_port_another_process_holds(tmp_path: Path, pty: str) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), pty], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        config = write_site(tmp_path / "site", SITE.format(device=pty))
        warned_alike(config, f"{pty} is busy: held by process {holder.pid} ({sys.executable} {script} {pty})")
    finally:
        holder.kill()
        holder.wait()


def test_a_pty_passes_without_a_word(tmp_path: Path, pty: str) -> None:
    check = check_config(write_site(tmp_path, SITE.format(device=pty)))
    assert check.returncode == 0 and check.stdout.strip() == "OK: 1 meter on 1 bus", check
    assert "line1" not in check.stderr, check.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_permission_denied_names_the_user_and_the_group_to_join(pty: str) -> None:
    dialout = grp.getgrnam("dialout").gr_gid
    os.chown(pty, 0, dialout)
    os.chmod(pty, 0o660)
    with shared_folder("nobody") as folder:
        config = write_site(folder / "site", SITE.format(device=pty))
        chown_tree(folder / "site")
        reason = (
            f"{pty}: permission denied for user nobody (crw-rw---- root:dialout); add the user to group "
            "dialout: sudo usermod -aG dialout nobody, then log in again or restart meterlink"
        )
        refused_alike(config, reason, **as_user("nobody"))
