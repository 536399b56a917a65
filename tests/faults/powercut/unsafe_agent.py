"""``python unsafe_agent.py VARIANT ARGS...``: the meterlink command with one durability step removed.

Test-only. The power-cut test runs its harness against these variants to show that it notices
what each step protects; the product has no switch for any of them.

- ``sync-off``: the store's ``PRAGMA synchronous=FULL`` becomes ``OFF`` (no fsync of the
  database or its ``-wal``, ever).
- ``seqmark-no-fsync``: the ``os`` module seen by ``meterlink.agent.seqmark`` has an ``fsync``
  that does nothing (neither the mark file nor its folder is synced).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import types
from typing import Any

VARIANTS = ("sync-off", "seqmark-no-fsync")


class SyncOffConnection(sqlite3.Connection):
    """A connection that runs ``PRAGMA synchronous=OFF`` where it is asked for ``FULL``."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if " ".join(sql.split()).upper() == "PRAGMA SYNCHRONOUS=FULL":
            sql = "PRAGMA synchronous=OFF"
        return super().execute(sql, *args)


def patch_sync_off() -> None:
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", SyncOffConnection)
        connection: sqlite3.Connection = real_connect(*args, **kwargs)
        return connection

    sqlite3.connect = connect  # type: ignore[assignment]


class NoFsyncOs(types.ModuleType):
    """``os`` as it is, except that ``fsync`` does nothing."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def fsync(fd: int) -> None:
        pass


def patch_seqmark_no_fsync() -> None:
    from meterlink.agent import seqmark

    seqmark.os = NoFsyncOs("os")  # type: ignore[attr-defined]  # its own os, this process only


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in VARIANTS:
        print(f"usage: unsafe_agent.py {{{','.join(VARIANTS)}}} METERLINK-ARGS...", file=sys.stderr)
        return 2
    if argv[0] == "sync-off":
        patch_sync_off()
    else:
        patch_seqmark_no_fsync()
    from meterlink.cli.main import main as meterlink_main

    code: int = meterlink_main(argv[1:])
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
