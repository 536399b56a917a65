"""Running meterlink commands as real processes in tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

METERLINK = [sys.executable, "-m", "meterlink"]


@dataclass
class SimProcess:
    proc: subprocess.Popen[str]
    tcp_port: int | None
    pty: str | None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sim(*args: str) -> SimProcess:
    """``meterlink sim modbus ARGS``; waits for its endpoint lines."""
    proc = subprocess.Popen(
        [*METERLINK, "sim", "modbus", *args], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
    )
    wanted = ("--tcp" in args) + ("--pty" in args)
    tcp_port = pty = None
    assert proc.stdout is not None
    for _ in range(wanted):
        line = proc.stdout.readline()
        if m := re.match(r"modbus tcp listening on [\d.]+:(\d+)", line):
            tcp_port = int(m.group(1))
        elif m := re.match(r"modbus rtu pty (\S+)", line):
            pty = m.group(1)
        else:
            proc.kill()
            raise RuntimeError(f"unexpected simulator output: {line!r}")
    return SimProcess(proc, tcp_port, pty)


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [*METERLINK, "run", "-c", str(config)], stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    finally:
        out.close()


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
