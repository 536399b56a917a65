"""A private mosquitto for the demo and the tests: free port, own config, dies with its parent.

The process gets PR_SET_PDEATHSIG, so even a ``kill -9`` of the demo does not leave a broker
behind; it also runs in the caller's process group. Debian keeps mosquitto in /usr/sbin, which is
not on a normal user's PATH, so that folder is searched too.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "mosquitto is not installed; on Debian or Raspberry Pi OS: sudo apt install mosquitto"


class BrokerError(RuntimeError):
    pass


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class TlsFiles:
    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


@dataclass
class LocalBroker:
    """``start()`` / ``stop()`` may be called repeatedly: the port stays the same (outage tests)."""

    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    tls: TlsFiles | None = None
    password_file: Path | None = None
    acl_file: Path | None = None
    extra_conf: str = ""
    persistent: bool = False  # keep sessions and queued messages across a graceful restart
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def _config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if self.password_file else 'true'}",
            f"persistence {'true' if self.persistent else 'false'}",
            f"persistence_location {self.workdir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to user "mosquitto", which cannot read our files.
            lines.append("user root")
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        if self.tls:
            lines += [
                f"cafile {self.tls.cafile}",
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
            if self.tls.require_certificate:
                lines.append("use_identity_as_username true")
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n" + self.extra_conf)
        return path

    def start(self, timeout: float = 10.0) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError(INSTALL_HINT)
        conf = self._config()
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"mosquitto exited at start: {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout:g} s")

    def stop(self, graceful: bool = False) -> None:
        """Kill the broker (an abrupt outage), or stop it cleanly so a persistent one saves its state."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.workdir / "mosquitto.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file, hashed by mosquitto_passwd when present."""
    tool = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin:/usr/sbin")
    if tool is None:
        raise BrokerError("mosquitto_passwd is not installed (package mosquitto)")
    path.write_text("")
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
    os.chmod(path, 0o600)
    return path
