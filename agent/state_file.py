"""The running agent's state file beside the store: what `meterlink status` reads about the meters.

``<store>.state.json`` is replaced whole (written to a temporary file, then renamed over it), so a
reader sees the old snapshot or the new one, never half of one. It is information, not data: no
fsync, and a lost or stale file costs nothing but a stale status.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def state_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".state.json")


def write_state(path: Path, snapshot: dict[str, Any]) -> None:
    """Raises:
    OSError: the folder is not writable or the disk is full (the caller logs it and goes on).
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(snapshot, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The last snapshot written, or None when there is none (never ran, or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def agent_running(pid: object) -> bool:
    """Whether ``pid`` (from the state file) is a live meterlink process: alive, and its command line
    names meterlink (a recycled pid of another program is not the agent)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"meterlink" in cmdline
