"""The inbox is listed only when its folder may hold something new (agent/folder_watch.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

import pytest

from meterlink.agent.folder_watch import RELIST_NS, SETTLE_NS, FolderWatch, arrivals

SECOND_NS = 1_000_000_000


def _stamp(folder: Path, mtime_ns: int) -> None:
    os.utime(folder, ns=(mtime_ns, mtime_ns))


def test_an_unchanged_settled_folder_is_not_listed_again(tmp_path: Path) -> None:
    now = 1_800_000_000 * SECOND_NS
    _stamp(tmp_path, now - 60 * SECOND_NS)
    watch = FolderWatch(tmp_path)
    assert watch.worth_a_look(now)  # the first look always lists
    assert not watch.worth_a_look(now + SECOND_NS // 2)
    assert not watch.worth_a_look(now + SECOND_NS)


def test_an_entry_added_later_is_seen_at_the_next_look(tmp_path: Path) -> None:
    now = 1_800_000_000 * SECOND_NS
    _stamp(tmp_path, now - 60 * SECOND_NS)
    watch = FolderWatch(tmp_path)
    watch.worth_a_look(now)
    (tmp_path / "entry.json").write_text("{}")  # the kernel stamps the folder with its own clock
    assert watch.worth_a_look(now + SECOND_NS)


def test_a_folder_stamped_recently_is_listed_until_its_stamp_has_aged(tmp_path: Path) -> None:
    # An entry added within the filesystem's clock tick after a listing keeps the folder's stamp:
    # only the age of the stamp tells that nothing can hide behind it.
    now = 1_800_000_000 * SECOND_NS
    _stamp(tmp_path, now)
    watch = FolderWatch(tmp_path)
    assert watch.worth_a_look(now)
    assert watch.worth_a_look(now + SECOND_NS)
    assert watch.worth_a_look(now + SETTLE_NS + SECOND_NS)  # aged now: this listing settles it
    assert not watch.worth_a_look(now + SETTLE_NS + 2 * SECOND_NS)


def test_every_folder_is_listed_again_now_and_then_and_after_a_clock_step_back(tmp_path: Path) -> None:
    now = 1_800_000_000 * SECOND_NS
    _stamp(tmp_path, now - 60 * SECOND_NS)
    watch = FolderWatch(tmp_path)
    watch.worth_a_look(now)
    assert not watch.worth_a_look(now + RELIST_NS - SECOND_NS)
    assert watch.worth_a_look(now + RELIST_NS + SECOND_NS)
    assert watch.worth_a_look(now)  # the clock went back: the stamps cannot be trusted to order


def test_a_missing_folder_is_not_listed_until_it_appears(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    watch = FolderWatch(folder)
    now = 1_800_000_000 * SECOND_NS
    assert not watch.worth_a_look(now)
    folder.mkdir()
    _stamp(folder, now - 60 * SECOND_NS)
    assert watch.worth_a_look(now + SECOND_NS)


# -- arrivals: inotify, and the poll where inotify cannot be had --------------------------------------

SETTLE_S = 0.3  # time for the kernel's event to reach the loop


def _hand_over(folder: Path, name: str) -> None:
    """As ``meterlink manual-reading`` does: written aside, then renamed in."""
    tmp = folder / f".{name}.tmp"
    tmp.write_text("{}")
    os.replace(tmp, folder / name)


async def _count_looks(
    folder: Path, steps: list[Callable[[], object]], poll_s: float = 0.05, relist_s: float = 30.0
) -> list[int]:
    """Runs ``arrivals`` and, between pauses, each step; returns the looks counted after each."""
    looks = 0

    async def watch() -> None:
        nonlocal looks
        async with aclosing(arrivals(folder, ".json", poll_s, relist_s)) as events:
            async for _ in events:
                looks += 1

    task = asyncio.create_task(watch())
    counts = []
    try:
        await asyncio.sleep(SETTLE_S)
        counts.append(looks)
        for step in steps:
            step()
            await asyncio.sleep(SETTLE_S)
            counts.append(looks)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return counts


def test_arrivals_makes_the_folder_looks_at_once_then_only_when_an_entry_arrives(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    caplog.set_level(logging.INFO, "meterlink.agent")
    counts = asyncio.run(
        _count_looks(
            inbox,
            [
                lambda: None,  # nothing arrives: no look
                lambda: _hand_over(inbox, "1.json"),
                lambda: (inbox / "1.done").write_text("{}"),  # the agent's own answer: no look
                lambda: (inbox / "2.json").write_text("{}"),  # written in place, looked at once closed
            ],
        )
    )
    assert inbox.is_dir()
    assert counts == [1, 1, 2, 2, 3]
    assert "folder_polled" not in caplog.text


def test_arrivals_makes_a_removed_folder_again_and_watches_it(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    counts = asyncio.run(
        _count_looks(inbox, [lambda: inbox.rmdir(), lambda: None, lambda: _hand_over(inbox, "1.json")])
    )
    assert inbox.is_dir()
    assert counts[0] == 1
    assert counts[2] == 2  # made again: one look at what it holds
    assert counts[3] == 3  # and entries in it are seen


def test_arrivals_lists_again_now_and_then_what_no_event_announced(tmp_path: Path) -> None:
    # A hard link makes an entry without a rename or a write: inotify says nothing of it.
    inbox = tmp_path / "inbox"
    aside = tmp_path / "aside.json"
    aside.write_text("{}")
    counts = asyncio.run(
        _count_looks(inbox, [lambda: os.link(aside, inbox / "1.json"), lambda: None], relist_s=2 * SETTLE_S)
    )
    assert counts[0] == 1
    assert counts[-1] >= 2


def test_arrivals_polls_where_inotify_cannot_be_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A kernel without inotify cannot be run here: the library's import fails as it would there.
    monkeypatch.setitem(sys.modules, "asyncinotify", None)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _stamp(inbox, time.time_ns() - 60 * SECOND_NS)
    caplog.set_level(logging.INFO, "meterlink.agent")
    counts = asyncio.run(_count_looks(inbox, [lambda: None, lambda: _hand_over(inbox, "1.json")]))
    assert "event=folder_polled" in caplog.text
    assert counts[0] == 1
    assert counts[1] == 1  # settled and unchanged: not listed again
    assert counts[2] >= 2  # the entry is seen by the poll
