"""Where the store lives, checked before it opens: check-config and run say the same one line.

A folder that cannot be made or written, and a disk with nearly no room, are errors in both (run
used to end in "unexpected error", exit 70); a disk smaller than the store's cap is a warning.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.configs import BASE, write_site
from support.runs import ABSENT_DEVICE, CLOSED_BROKER, as_user, check_config, chown_tree, run_briefly, shared_folder

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs and switching user need root")


def site(folder: Path, store_path: str | Path) -> Path:
    text = (
        BASE.replace('path = "state/meterlink.db"', f'path = "{store_path}"')
        .replace("/dev/null", ABSENT_DEVICE)
        .replace("mqtt://127.0.0.1:1883", CLOSED_BROKER)
    )
    return write_site(folder, text)


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs with the given options (e.g. "size=2m" or "ro"); unmounted after the test."""
    mounted: list[Path] = []

    def make(options: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def assert_both_refuse(config: Path, line: str, **popen: Any) -> None:
    """check-config and run exit 1 with ``line``; run never starts, never says "unexpected error"."""
    check = check_config(config, **dict(popen))
    ran = run_briefly(config, **dict(popen))
    assert check.returncode == 1, check.stderr
    assert line in check.stderr.splitlines(), check.stderr
    assert ran.code == 1 and not ran.stopped, ran.output
    assert "unexpected error" not in ran.output and line in ran.output.splitlines(), ran.output


def test_the_root_folder_as_the_store(tmp_path: Path) -> None:
    assert_both_refuse(site(tmp_path, "/"), "store.path: / is a directory, not a store file")


def test_a_store_folder_under_proc(tmp_path: Path) -> None:
    config = site(tmp_path, "/proc/meterlink/meterlink.db")
    assert_both_refuse(config, "store.path: folder /proc/meterlink cannot be created (No such file or directory)")


def test_a_store_folder_under_a_file(tmp_path: Path) -> None:
    config = site(tmp_path, "keys/gateway.pub/state/meterlink.db")
    assert_both_refuse(config, f"store.path: {tmp_path.resolve()}/keys/gateway.pub is not a folder")


@needs_root
def test_a_store_on_a_read_only_mount(tmp_path: Path, mount: Callable[[str], Path]) -> None:
    disk = mount("ro,size=1m")
    assert_both_refuse(
        site(tmp_path, disk / "meterlink.db"), f"store.path: folder {disk} cannot be written (Read-only file system)"
    )


@needs_root
def test_a_disk_with_nearly_no_room_left(tmp_path: Path, mount: Callable[[str], Path]) -> None:
    disk = mount("size=1m")
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    assert_both_refuse(
        site(tmp_path, disk / "meterlink.db"),
        f"store.path: {disk} has only 0.0 MB free (the store needs at least 1.0 MB)",
    )


@needs_root
def test_a_disk_smaller_than_the_store_s_cap_is_a_warning(tmp_path: Path, mount: Callable[[str], Path]) -> None:
    disk = mount("size=2m")
    config = site(tmp_path, disk / "meterlink.db")
    line = (
        f"store.path: {disk} has 2.0 MB free, less than the store may use (32.0 MB, store.capacity_mb): "
        "the disk would fill before the store reaches its cap"
    )
    check = check_config(config)
    assert check.returncode == 0 and check.stdout.startswith("OK"), check.stderr
    assert f"warning: {line}" in check.stderr.splitlines(), check.stderr
    ran = run_briefly(config)
    assert ran.stopped and ran.code == 0, ran.output
    assert line in ran.output, ran.output  # run logs what check-config warned about


@needs_root
def test_a_store_folder_the_user_cannot_create(tmp_path: Path) -> None:
    """Checked as the user the command runs as: root could make the folder, nobody cannot."""
    with shared_folder("nobody") as folder:
        config = site(folder / "site", "state/sub/meterlink.db")
        chown_tree(folder / "site")
        (folder / "site" / "state").mkdir(mode=0o755)  # root's: nobody may not add to it
        line = (
            f"store.path: folder {folder}/site/state/sub cannot be created: {folder}/site/state "
            "is not writable by user nobody"
        )
        assert_both_refuse(config, line, **as_user("nobody"))
