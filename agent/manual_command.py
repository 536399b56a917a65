"""``meterlink manual-reading``: check a reading taken by hand, then store it, directly or through
the running agent.

With no agent running (its lock is free), the reading goes straight into the store, the lock held
meanwhile. With an agent running, it goes into the agent's inbox and this command waits a while for
the agent's answer (agent/manual.py ``Inbox``). The running agent never loads this module.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import clock
from .config import Config
from .manual import (
    ManualEntry,
    ManualError,
    check_not_below,
    keep_photo,
    last_total,
    prepare,
    store_entry,
    submit,
    wait_for_agent,
)
from .runlock import RunLock
from .store import Store


def command(
    config: Config,
    *,
    meter: str,
    value: str,
    photo: Path,
    at: str | None,
    by: str | None,
    replacement: bool,
    quantity: str,
    wait: float,
) -> int:
    """``meterlink manual-reading``: check, then store directly or through the running agent."""
    entry, data = prepare(
        config,
        meter=meter,
        value=value,
        photo=photo,
        at=at,
        by=by,
        replacement=replacement,
        quantity=quantity,
        now_ms=clock.now_ms(),
    )
    path = config.store.path
    lock = RunLock(path)
    try:
        alone = lock.acquire()
    except OSError as exc:
        raise ManualError(f"store {path}: cannot take its lock: {exc.strerror or exc}") from None
    if not alone:
        return _through_agent(path, entry, data, lock, wait)
    try:
        seq = _store_directly(config, entry, data)
    finally:
        lock.release()
    print(
        f"stored: {entry.meter} {entry.quantity} = {entry.value:g} {entry.unit} as seq {seq}, evidence "
        f"sha256 {entry.evidence.sha256} (the agent sends it when it next runs)"
    )
    return 0


def _store_directly(config: Config, entry: ManualEntry, data: bytes) -> int:
    """Keep the photo and commit the reading into the store (its lock held by the caller); its seq."""
    path = config.store.path
    store = Store(
        path,
        config.gateway.id,
        capacity_bytes=config.store_capacity_bytes(),
        overflow=config.store.overflow,
        uploaded=config.uplink.mqtt is not None,
    )
    try:
        keep_photo(path, entry.evidence, data)
        return store_entry(store, entry)
    finally:
        store.close()


def _through_agent(path: Path, entry: ManualEntry, data: bytes, lock: RunLock, wait: float) -> int:
    """Hand the entry to the running agent and wait up to ``wait`` seconds for its answer."""
    _check_against_store(path, entry)
    keep_photo(path, entry.evidence, data)
    handed = submit(path, entry)
    answer = wait_for_agent(handed, wait)
    if answer is None:
        print(
            f"handed to the running agent (pid {lock.holder()}) in {handed}; it stores it when it reads its "
            "inbox (meterlink status shows it)"
        )
        return 0
    if "error" in answer:
        raise ManualError(str(answer["error"]))
    print(
        f"stored by the running agent: {entry.meter} {entry.quantity} = {entry.value:g} {entry.unit} as seq "
        f"{answer['seq']}, evidence sha256 {entry.evidence.sha256}"
    )
    return 0


def _check_against_store(path: Path, entry: ManualEntry) -> None:
    """The totalizer check, before handing the entry over, read-only (the agent checks again)."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return
    try:
        last = last_total(db, entry.meter, entry.quantity, entry.ts)
    except sqlite3.Error:
        return
    finally:
        db.close()
    check_not_below(entry, last)
