"""A full filesystem (a small tmpfs) under the running agent, and systemd's watchdog while it lasts.

The agent runs as a process with $NOTIFY_SOCKET pointing at this test: it says READY=1, feeds the
watchdog while polling and the store are healthy, stops feeding it while the disk is full, and
after space returns it captures again, with nothing corrupted.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import METERLINK, SimProcess, start_sim, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)"),
]

SITE = """
[gateway]
id = "gw-full"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 0.3
retries = 0
{meters}
[store]
path = "{store}"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"
upload_interval = 3600

[clock]
sync_check = "assume_synced"
"""

METER = """
[[meters]]
id = "m{unit}"
bus = "tcp"
unit_id = {unit}
profile = "tuf2000"
"""


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def count(self, text: str, since: float = 0.0) -> int:
        return sum(1 for t, m in self.messages if text in m and t >= since)

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    s = start_sim("--tcp", "0", *[a for u in range(1, 21) for a in ("--meter", f"tuf2000:{u}")])
    yield s
    s.stop()


def test_disk_full_is_survived_and_the_watchdog_starves_meanwhile(tmp_path: Path, tmpfs: Path, sim: SimProcess) -> None:
    meters = "".join(METER.format(unit=u) for u in range(1, 21))
    site = write_site(tmp_path / "site", SITE.format(port=sim.tcp_port, meters=meters, store=tmpfs / "ml.db"))
    notify = NotifySocket(tmp_path / "notify.sock")
    log = tmp_path / "agent.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        agent = subprocess.Popen([*METERLINK, "run", "-c", str(site)], stdout=out, stderr=out, env=env)
    try:
        assert wait_until(lambda: notify.count("READY=1") == 1 and notify.count("WATCHDOG=1") >= 2, 15), notify.messages
        # Fill the small disk to the brim with someone else's file.
        filler = tmpfs / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        assert wait_until(lambda: "event=capture_failed" in log.read_text(), 20), log.read_text()[-2000:]
        full_since = time.monotonic() + 1.5  # give a ping already under way time to land
        time.sleep(4)
        assert notify.count("WATCHDOG=1", since=full_since) == 0, "the watchdog must starve while the store fails"
        assert agent.poll() is None, "the agent survives a full disk"
        filler.unlink()  # space returns
        assert wait_until(lambda: "event=capture_recovered" in log.read_text(), 20), log.read_text()[-2000:]
        back = time.monotonic()
        assert wait_until(lambda: notify.count("WATCHDOG=1", since=back) >= 2, 10)
    finally:
        agent.terminate()
        agent.wait(20)
        notify.close()
    text = log.read_text()
    assert "Traceback" not in text
    assert "event=watchdog_starved" in text
    db = sqlite3.connect(tmpfs / "ml.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    seqs = [r[0] for r in db.execute("SELECT seq FROM readings ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)), "no seq given to a reading that was not stored"
    db.close()
