"""Trying a config as a technician does: ``check-config``, then ``run`` for a few seconds, then SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import METERLINK, wait_until

# Never the default broker port: a mosquitto another test (or the machine) runs there would get
# this agent's messages. Nothing listens on port 1.
CLOSED_BROKER = "mqtt://127.0.0.1:1"
# A serial device that is absent is a warning, so a config naming it starts.
ABSENT_DEVICE = "/dev/ttyUSB-meterlink-test-absent"
STARTED = b"event=agent_started"  # logged once the agent has built its parts and starts running


def as_user(user: str) -> dict[str, Any]:
    """Popen arguments that run a meterlink command as ``user`` (no supplementary groups)."""
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "command": meterlink_for_others()}


def meterlink_for_others() -> list[str]:
    """The meterlink command for another user. The venv's interpreter may live where only its owner
    may enter (pyenv under /root): then the system's Python of the same version loads the venv's
    packages, which are readable by all."""
    python = Path(sys.executable).resolve()
    if all(p.stat().st_mode & 0o001 for p in [python, *python.parents]):  # others may reach and run it
        return list(METERLINK)
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    boot = (
        f"import site, sys; site.addsitedir({sysconfig.get_paths()['purelib']!r}); "
        "from meterlink.cli.main import main; sys.exit(main())"
    )
    return [str(system), "-c", boot]


def quiet_env() -> dict[str, str]:
    """The environment for a command whose output is checked: no traceback on request, no buffering."""
    env = {k: v for k, v in os.environ.items() if k != "METERLINK_DEBUG"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Ran:
    """How ``meterlink run`` ended: ``stopped`` is True when it was still running at SIGTERM."""

    code: int
    output: str
    stopped: bool


def meterlink(*args: str, **popen: Any) -> subprocess.CompletedProcess[str]:
    """``meterlink ARGS`` as a process (``command`` from :func:`as_user` runs it as another user)."""
    command = popen.pop("command", METERLINK)
    popen.setdefault("env", quiet_env())
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, errors="replace", **popen)


def check_config(config: Path, **popen: Any) -> subprocess.CompletedProcess[str]:
    """``meterlink check-config FILE`` as a process."""
    return meterlink("check-config", str(config), **popen)


def run_briefly(config: Path, seconds: float = 2.0, *, start_timeout: float = 60.0, **popen: Any) -> Ran:
    """``meterlink run -c FILE`` until it exits by itself, or until it has run ``seconds`` after saying
    it started (within ``start_timeout``: a busy machine starts it slowly), then SIGTERM."""
    command = popen.pop("command", METERLINK)
    popen.setdefault("env", quiet_env())
    with tempfile.NamedTemporaryFile() as out:
        proc = subprocess.Popen([*command, "run", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT, **popen)
        log = Path(out.name)
        started = wait_until(lambda: proc.poll() is not None or STARTED in log.read_bytes(), start_timeout)
        stopped = False
        if started and proc.poll() is None:
            time.sleep(seconds)
        if proc.poll() is None:
            stopped = True
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return Ran(proc.returncode, log.read_bytes().decode(errors="replace"), stopped)


@contextmanager
def shared_folder(owner: str = "nobody") -> Iterator[Path]:
    """A folder another user can reach and owns (pytest's own tmp folders are root's alone)."""
    import pwd

    entry = pwd.getpwnam(owner)
    folder = Path(tempfile.mkdtemp(prefix="meterlink-test-"))
    try:
        folder.chmod(0o755)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def chown_tree(folder: Path, owner: str = "nobody") -> None:
    """Give ``folder`` and everything in it to ``owner`` (keys keep their 0600)."""
    import pwd

    entry = pwd.getpwnam(owner)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
