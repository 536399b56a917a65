"""deploy/install.sh into a throw-away root: the user and groups, file modes, the unit, a second run
that keeps the key and the config, and --uninstall (keeps store and keys) and --uninstall --purge.

The root is a folder with the four files useradd needs in etc/; the script's --root puts users and
groups there (useradd --prefix), so the machine running the test gains no user. It needs root (as
the real install does) and installs the project into a venv with pip, as on a site.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "install.sh"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root"),
    pytest.mark.skipif(shutil.which("useradd") is None, reason="no useradd (package passwd)"),
]


def make_root(folder: Path) -> Path:
    """A root with an etc/ as a fresh Debian has it, as far as users and groups go."""
    etc = folder / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\ndialout:*::\n")
    return folder


def install(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), *argv], capture_output=True, text=True, timeout=600)


def entries(path: Path) -> dict[str, list[str]]:
    """``name -> fields`` of a passwd or group file."""
    return {line.split(":")[0]: line.split(":") for line in path.read_text().splitlines() if line}


def mode(path: Path) -> tuple[str, int, int]:
    info = path.stat()
    return oct(stat.S_IMODE(info.st_mode)), info.st_uid, info.st_gid


def host_users() -> str:
    return Path("/etc/passwd").read_text() + Path("/etc/group").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--purge"], "--purge goes with --uninstall"),
        (["--root", "/nonexistent/root"], "--root /nonexistent/root: no such folder"),
        (["--frobnicate"], "unknown option --frobnicate"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    result = install(*argv)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_a_root_without_user_files_is_refused(tmp_path: Path) -> None:
    result = install("--root", str(tmp_path))
    assert result.returncode == 2 and f"no {tmp_path}/etc/passwd" in result.stderr


def test_install_again_uninstall_and_purge(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    host_before = host_users()
    first = install("--root", str(root))
    assert first.returncode == 0, first.stdout + first.stderr

    # The user and its groups, in the root's files only.
    users, groups = entries(root / "etc" / "passwd"), entries(root / "etc" / "group")
    user = users["meterlink"]
    uid, gid = int(user[2]), int(user[3])
    assert uid < 1000 and user[5:] == ["/var/lib/meterlink", "/usr/sbin/nologin"]  # a system user
    assert int(groups["meterlink"][2]) == gid and "meterlink" in groups["dialout"][3].split(",")
    assert host_users() == host_before

    # Modes and owners: the state and keys the user's alone, the config readable by its group.
    state, etc = root / "var" / "lib" / "meterlink", root / "etc" / "meterlink"
    assert mode(state) == ("0o750", uid, gid) and mode(state / "keys") == ("0o750", uid, gid)
    assert mode(state / "keys" / "gateway.key") == ("0o600", uid, gid)
    assert mode(etc) == ("0o755", 0, 0) and mode(etc / "site.toml") == ("0o640", 0, gid)
    unit = root / "etc" / "systemd" / "system" / "meterlink.service"
    assert mode(unit) == ("0o644", 0, 0) and unit.read_text() == (REPO / "deploy" / "meterlink.service").read_text()
    meterlink = root / "opt" / "meterlink" / "bin" / "meterlink"
    version = subprocess.run([str(meterlink), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("meterlink ")

    # Again (an upgrade): the key, the edited config and the user are kept, nothing is doubled.
    key = (state / "keys" / "gateway.key").read_bytes()
    (etc / "site.toml").write_text("# edited on site\n")
    (state / "meterlink.db").write_bytes(b"a store")
    again = install("--root", str(root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (state / "keys" / "gateway.key").read_bytes() == key
    assert (etc / "site.toml").read_text() == "# edited on site\n" and "edit " not in again.stdout
    assert [line.split(":")[0] for line in (root / "etc" / "passwd").read_text().splitlines()] == ["root", "meterlink"]
    assert entries(root / "etc" / "group")["dialout"][3] == "meterlink"
    assert mode(state / "keys" / "gateway.key") == ("0o600", uid, gid) and mode(unit)[0] == "0o644"

    # --uninstall: the service's files go, the store, keys, config and user stay.
    removed = install("--root", str(root), "--uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not unit.exists() and not (root / "opt" / "meterlink").exists()
    assert (state / "keys" / "gateway.key").read_bytes() == key and (state / "meterlink.db").exists()
    assert (etc / "site.toml").exists() and "meterlink" in entries(root / "etc" / "passwd")

    # --uninstall --purge: everything, the user and its group included.
    purged = install("--root", str(root), "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not state.exists() and not etc.exists()
    assert "meterlink" not in entries(root / "etc" / "passwd")
    groups = entries(root / "etc" / "group")
    assert "meterlink" not in groups and groups["dialout"][3] == ""
    assert host_users() == host_before
