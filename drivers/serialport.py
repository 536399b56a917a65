"""Why a serial port cannot be opened, as one line a technician can act on.

pyserial says "could not open port" and pymodbus says nothing at all, yet each cause has its own
remedy: a missing adapter is plugged in (or named by its stable ``/dev/serial/by-id/`` link), a
user without the port's group joins it, a port another program holds is freed, and a path that
is not a tty was never a serial port. :func:`diagnose` tries the port the way a driver opens it
(read-write, non-blocking, the exclusive lock pyserial takes) and names the first of these that
applies. ``check-config`` and the drivers use the same words.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import pwd
import stat
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BY_ID = Path("/dev/serial/by-id")
FaultKind = Literal["absent", "denied", "busy", "not_tty", "other"]


@dataclass(frozen=True, slots=True)
class PortFault:
    """What is wrong with a port: ``text`` starts with the device and says what to do."""

    kind: FaultKind
    text: str

    @property
    def passing(self) -> bool:
        """True when it may clear by itself: an adapter is plugged back in, another program ends."""
        return self.kind in ("absent", "busy")


def diagnose(device: str, *, by_id: Path = BY_ID) -> PortFault | None:
    """Why ``device`` cannot be opened as a serial port right now; None when it can.

    Args:
        device: the path the config names.
        by_id: where udev lists the adapters plugged in, by stable name.
    """
    try:
        info = os.stat(device)
    except FileNotFoundError:
        return PortFault("absent", f"{device} does not exist right now (adapter unplugged?); {_adapters(by_id)}")
    except (OSError, ValueError) as exc:
        return PortFault("other", f"{device}: {getattr(exc, 'strerror', None) or exc}")
    kind = _file_kind(info.st_mode)
    if kind is not None:
        return PortFault("not_tty", f"{device} is not a serial port: {kind}, not a tty")
    # A character device, or a file type stat cannot name (seen once for a pty): opening it decides.
    try:
        fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except PermissionError:
        return PortFault("denied", _denied(device, info))
    except OSError as exc:
        if exc.errno == errno.EBUSY:  # TIOCEXCL, set by another program
            return PortFault("busy", _busy(device, info))
        return PortFault("other", f"{device}: {exc.strerror}")
    try:
        return _probe(device, fd, info)
    finally:
        os.close(fd)  # also releases the lock taken by the probe


def _probe(device: str, fd: int, info: os.stat_result) -> PortFault | None:
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        if exc.args[0] == errno.ENOTTY:
            return PortFault("not_tty", f"{device} is not a serial port: a character device that is not a tty")
        return PortFault("other", f"{device}: {exc.args[1] if len(exc.args) > 1 else exc}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what pyserial's exclusive open takes
    except BlockingIOError:
        return PortFault("busy", _busy(device, info))
    except OSError:
        pass  # a port that cannot be locked is no reason not to open it
    return None


def _file_kind(mode: int) -> str | None:
    """What kind of file that certainly is not a serial port this is, or None (it may be one)."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), None)


def _adapters(by_id: Path) -> str:
    try:
        links = sorted(by_id.iterdir())
    except OSError:
        links = []
    if not links:
        return f"no serial adapter is listed in {by_id}"
    shown = ", ".join(f"{link} (-> {os.path.realpath(link)})" for link in links[:4])
    return f"plugged in now: {shown}; name the port by id, that name survives re-plugging"


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _group(gid: int) -> grp.struct_group | None:
    try:
        return grp.getgrgid(gid)
    except KeyError:
        return None


def _denied(device: str, info: os.stat_result) -> str:
    user = _user()
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    group = _group(info.st_gid)
    gname = group.gr_name if group else str(info.st_gid)
    head = f"{device}: permission denied for user {user} ({stat.filemode(info.st_mode)} {owner}:{gname})"
    if group is None or info.st_gid == 0 or info.st_mode & 0o060 != 0o060:
        return f"{head}; only {owner} may open it: give it a group such as dialout with a udev rule"
    try:
        primary = pwd.getpwnam(user).pw_gid
    except KeyError:
        primary = -1
    if user in group.gr_mem or primary == info.st_gid:
        # usermod took effect in /etc/group, not in this process: its groups are fixed at log-in.
        return f"{head}; {user} joined group {gname} after this process started: log in again or restart meterlink"
    return (
        f"{head}; add the user to group {gname}: sudo usermod -aG {gname} {user}, "
        "then log in again or restart meterlink"
    )


def _busy(device: str, info: os.stat_result) -> str:
    holders = [f"process {pid} ({command})" for pid, command in _holders(info.st_rdev)]
    if not holders:
        return f"{device} is busy: another program holds it (one this user may not look into)"
    return f"{device} is busy: held by {', '.join(holders[:3])}"


def _holders(rdev: int) -> Iterator[tuple[int, str]]:
    """Processes with the device open, found through /proc/*/fd (only those this user may read)."""
    me = os.getpid()
    try:
        pids = sorted(int(e.name) for e in os.scandir("/proc") if e.name.isdigit())
    except OSError:
        return
    for pid in pids:
        if pid == me:
            continue
        try:
            fds = list(os.scandir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        for fd in fds:
            try:
                held = os.stat(fd.path)
            except OSError:
                continue
            if stat.S_ISCHR(held.st_mode) and held.st_rdev == rdev:
                yield pid, _command(pid)
                break


def _command(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        text = " ".join(w.decode(errors="replace") for w in words if w)
        if not text:
            text = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
    return text if len(text) <= 200 else text[:197] + "..."
