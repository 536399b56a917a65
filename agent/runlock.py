"""One agent per store: a lock file beside the store, held while the agent runs.

Two agents on one store would hand out the same ``seq`` twice (each keeps the next number in
memory). The lock also tells ``meterlink manual-reading`` whether an agent is running: if so, the
reading goes through the agent's inbox; if not, straight into the store, the lock held meanwhile so no
agent starts halfway through.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import StoreError
from .store import make_folder


class RunLock:
    """An exclusive ``flock`` on ``<store>.lock``; released by :meth:`release` or when the process ends."""

    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name(store_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock (making the store's folder first, as the store would); False when another
        process holds it."""
        make_folder(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid the lock file names (the running agent's), or "?"."""
        try:
            return self.path.read_text(encoding="ascii").strip() or "?"
        except (OSError, UnicodeDecodeError):
            return "?"

    def acquire_or_fail(self) -> None:
        """Take the lock for a running agent.

        Raises:
            StoreError: another agent runs on this store.
        """
        try:
            taken = self.acquire()
        except OSError as exc:
            raise StoreError(
                f"store {self.path.with_suffix('')}: cannot create its lock {self.path}: {exc.strerror or exc}"
            ) from None
        if not taken:
            raise StoreError(
                f"another meterlink (pid {self.holder()}) is running on the store "
                f"{self.path.with_name(self.path.name.removesuffix('.lock'))}"
            )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
