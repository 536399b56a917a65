"""The inbox is listed only when its folder may hold something new (agent/folder_watch.py)."""

from __future__ import annotations

import os
from pathlib import Path

from meterlink.agent.folder_watch import RELIST_NS, SETTLE_NS, FolderWatch

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
