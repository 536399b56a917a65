"""The command line as a technician and a platform engineer use it: keygen, verify, read, status."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.procs import METERLINK, start_sim

from meterlink.agent.keys import generate_keypair, load_private_key, load_public_key
from meterlink.wire.jws import Signer, b64url, b64url_decode, thumbprint
from meterlink.wire.payload import StoredReading, readings_message


def ml(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*METERLINK, *args], input=stdin, capture_output=True, timeout=60)


def message(key: Ed25519PrivateKey, seq: int = 1, compress: bool = True) -> bytes:
    rows = [StoredReading(seq, "m1", "flow_rate", 12.5, "m3/h", 1_764_374_400_123, 1_764_374_400_000, 0)]
    return Signer(key, compress=compress).sign(readings_message("gw", 7, 1_764_374_402_000, rows))


def test_keygen(tmp_path: Path) -> None:
    proc = ml("keygen", "--out", str(tmp_path / "k"))
    assert proc.returncode == 0
    key = tmp_path / "k" / "gateway.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    kid = thumbprint(load_public_key(tmp_path / "k" / "gateway.pub"))
    assert proc.stdout.decode().splitlines()[-1] == f"kid {kid}"
    again = ml("keygen", "--out", str(tmp_path / "k"))
    assert again.returncode == 1 and b"already exists" in again.stderr and b"Traceback" not in again.stderr


def test_keygen_into_a_folder_it_cannot_make_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "somefile").write_text("")
    for out in ("/proc/x", "/dev/null", str(tmp_path / "somefile" / "x")):
        proc = ml("keygen", "--out", out)
        err = proc.stderr.decode()
        assert proc.returncode == 1, (out, err)
        assert len(err.strip().splitlines()) == 1 and out in err, (out, err)
        assert "unexpected error" not in err and "Traceback" not in err, (out, err)


def test_keygen_key_is_0600_whatever_was_left_at_its_tmp_path(tmp_path: Path) -> None:
    # A leftover gateway.key.tmp keeps its own mode if reused; a symlink there would be followed.
    folder = tmp_path / "k"
    folder.mkdir()
    leftover = folder / "gateway.key.tmp"
    leftover.write_text("")
    leftover.chmod(0o666)
    proc = ml("keygen", "--out", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((folder / "gateway.key").stat().st_mode) == 0o600
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    leftover.symlink_to(victim)
    proc = ml("keygen", "--force", "--out", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "untouched" and not (folder / "gateway.key").is_symlink()
    assert stat.S_IMODE((folder / "gateway.key").stat().st_mode) == 0o600


def test_verify_prints_payloads_and_rejects_tampering(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    key_path, pub_path = keys
    key = load_private_key(key_path)
    good = message(key, 1) + b"\n" + message(key, 2, compress=False) + b"\n"
    proc = ml("verify", "--pubkey", str(pub_path), "-", stdin=good)
    assert proc.returncode == 0, proc.stderr
    payloads = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [p["readings"][0]["seq"] for p in payloads] == [1, 2]
    assert proc.stderr.decode().strip() == "2 verified, 0 rejected"

    obj = json.loads(message(key, 3, compress=False))
    body = json.loads(b64url_decode(obj["payload"]))
    body["readings"][0]["value"] = 99.0
    obj["payload"] = b64url(json.dumps(body).encode())
    altered = good + json.dumps(obj).encode() + b"\n"
    (tmp_path / "msgs").write_bytes(altered)
    proc = ml("verify", "--pubkey", str(pub_path), str(tmp_path / "msgs"))
    assert proc.returncode == 1
    assert b"message 3: REJECTED: bad signature" in proc.stderr
    assert len(proc.stdout.decode().splitlines()) == 2

    other = Ed25519PrivateKey.generate()
    proc = ml("verify", "--pubkey", str(pub_path), stdin=message(other))
    assert proc.returncode == 1 and b"unknown key id" in proc.stderr


def test_verify_with_old_and_new_keys_during_a_rotation(tmp_path: Path) -> None:
    old_key, old_pub = generate_keypair(tmp_path / "old")
    new_key, new_pub = generate_keypair(tmp_path / "new")
    msgs = message(load_private_key(old_key), 1) + b"\n" + message(load_private_key(new_key), 2)
    proc = ml("verify", "--pubkey", str(old_pub), "--pubkey", str(new_pub), stdin=msgs)
    assert proc.returncode == 0, proc.stderr


def test_bad_command_lines_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    for args in (
        ["verify", "--pubkey", str(tmp_path / "none.pub")],
        ["status", "-c", str(tmp_path / "x.toml")],
        ["run", "-c", str(tmp_path / "x.toml")],
        ["profiles", "nosuch"],
    ):
        proc = ml(*args, stdin=b"")
        assert proc.returncode == 1, args
        assert b"Traceback" not in proc.stderr
        assert len(proc.stderr.decode().strip().splitlines()) == 1, (args, proc.stderr)


def test_read_polls_each_meter_once_for_commissioning(tmp_path: Path) -> None:
    from support.configs import write_site

    sim = start_sim("--tcp", "0", "--meter", "tuf2000:1", "--meter", "qdy30a_level:3")
    try:
        site = write_site(
            tmp_path,
            f"""
[gateway]
id = "gw"
[buses.b]
type = "tcp"
host = "127.0.0.1"
port = {sim.tcp_port}
timeout = 0.3
retries = 0
[[meters]]
id = "flow"
bus = "b"
unit_id = 1
profile = "tuf2000"
[[meters]]
id = "level"
bus = "b"
unit_id = 3
profile = "qdy30a_level"
[[meters]]
id = "ghost"
bus = "b"
unit_id = 9
profile = "tuf2000"
[signing]
key = "keys/gateway.key"
[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"
""",
        )
        proc = ml("read", "-c", str(site))
    finally:
        sim.stop()
    out = proc.stdout.decode()
    assert proc.returncode == 1  # the ghost meter does not answer
    assert "flow unit 1: ok" in out and "flow_rate" in out and "level unit 3: ok" in out
    assert "ghost unit 9: FAILED ExceptionResponse" in out  # a TCP gateway answers 0B for a unit it lacks
    assert not (tmp_path / "meterlink.db").exists()  # read stores nothing


def test_read_names_every_bus_by_its_endpoint(tmp_path: Path) -> None:
    """An SZY206 bus is shown like a Modbus one (host:port), not as the params' repr."""
    from support.configs import write_site

    site = write_site(
        tmp_path,
        """
[gateway]
id = "gw"
[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = 1
timeout = 0.2
retries = 0
[buses.szy]
type = "tcp"
protocol = "szy206"
host = "127.0.0.1"
port = 1
timeout = 0.2
retries = 0
[[meters]]
id = "flow"
bus = "tcp"
unit_id = 1
profile = "tuf2000"
[[meters]]
id = "well"
bus = "szy"
address = "530381:13"
[signing]
key = "keys/gateway.key"
[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"
""",
    )
    proc = ml("read", "-c", str(site))
    out = proc.stdout.decode()
    assert proc.returncode == 1, proc.stderr  # nothing listens on port 1
    assert "bus tcp (127.0.0.1:1)" in out and "bus szy (127.0.0.1:1)" in out, out


def test_run_refuses_a_key_readable_by_others(tmp_path: Path) -> None:
    from support.configs import write_site

    site = write_site(tmp_path)
    os.chmod(tmp_path / "keys" / "gateway.key", 0o640)
    proc = ml("run", "-c", str(site))
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert err.startswith("signing.key: signing key ") and "accessible by group or others" in err


STATUS_SITE = """
[gateway]
id = "gw-status"

[buses.tcp1]
type = "tcp"
host = "127.0.0.1"
port = 5020

[[meters]]
id = "m1"
bus = "tcp1"
unit_id = 1
profile = "emf_generic"
szy206_position = 1

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

{uplinks}
"""
MQTT_UPLINK = '[uplink.mqtt]\nbroker = "mqtt://127.0.0.1:1"\n'
SZY206_UPLINK = '[uplink.szy206]\nhost = "127.0.0.1"\nport = 5005\ndivision = "430100"\nstation = 7\n'


def status_of(tmp_path: Path, uplinks: str) -> list[str]:
    from support.configs import write_site

    from meterlink.agent.store import Store
    from meterlink.drivers.base import Reading

    path = write_site(tmp_path / "site", STATUS_SITE.format(uplinks=uplinks))
    (tmp_path / "site" / "state").mkdir()
    store = Store(tmp_path / "site" / "state" / "meterlink.db", "gw-status")
    t0 = 1_764_374_400_000  # 2025-11-29 00:00:00 UTC
    store.append([Reading("m1", "flow_rate", float(i), "m3/h", t0 + i * 60_000, t0 + i * 60_000) for i in range(5)])
    store.mark_sent(1, 2, t0 + 90_000)
    for i in range(3):
        store.add_report(t0 + i * 3_600_000, b"\x00", t0)
    store.confirm_report(t0, t0 + 1_000)
    store.close()
    proc = ml("status", "-c", str(path))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().splitlines()


def test_status_says_what_waits_on_each_uplink(tmp_path: Path) -> None:
    lines = status_of(tmp_path / "both", MQTT_UPLINK + SZY206_UPLINK)
    assert "next seq       6" in lines
    assert "readings held  5 (oldest 2025-11-29 00:00:00 UTC)" in lines
    assert "mqtt pending   3 readings (oldest 2025-11-29 00:02:00 UTC)" in lines
    assert "mqtt confirmed last at 2025-11-29 00:01:30 UTC" in lines
    assert (
        "szy206 reports 2 waiting (oldest slot 2025-11-29 01:00:00 UTC), 1 confirmed (last at 2025-11-29 00:00:01 UTC)"
    ) in lines


def test_status_on_a_site_without_mqtt_calls_no_reading_pending(tmp_path: Path) -> None:
    lines = status_of(tmp_path, SZY206_UPLINK)
    assert not any(line.startswith("mqtt") for line in lines), lines
    assert "readings kept  35 days (no [uplink.mqtt]: none wait for delivery)" in lines
    assert any(line.startswith("szy206 reports 2 waiting") for line in lines), lines
