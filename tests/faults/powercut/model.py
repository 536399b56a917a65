"""The disk a power cut leaves behind, rebuilt from what the process made durable.

The shim (``powercut.c``, loaded with ``LD_PRELOAD``) copies a file of the watched folder each time
an ``fsync``/``fdatasync`` of it returns, and records the folder's listing (name -> inode) each
time the folder itself is synced. After the process is killed, :func:`reconstruct` builds the
folder as the disk would hold it:

- a name exists only if the last durable listing of the folder had it (the folder as it was when
  the process started counts as durable: :func:`record_start`);
- its content is the last snapshot of that inode in that life (inode numbers are reused once a
  file is gone, so the shim numbers each inode's lives); a file never synced in its life is empty.

So a write that was never synced is lost, and so is a create, rename or unlink whose folder was
not synced afterwards. The ``-shm`` of SQLite is never synced: it comes back empty, or absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).with_name("powercut.c")
START_PID = 0  # events recorded by record_start: the disk as the process found it


class ShimUnavailable(RuntimeError):
    """The shim cannot be built here (no C compiler)."""


def build_shim(into: Path) -> Path:
    """Compile the shim into ``into/powercut.so``.

    Raises:
        ShimUnavailable: no ``gcc`` on PATH.
        RuntimeError: it did not compile (the compiler's output says why).
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ShimUnavailable("gcc is not installed (Debian: apt-get install gcc libc6-dev)")
    into.mkdir(parents=True, exist_ok=True)
    lib = into / "powercut.so"
    done = subprocess.run(
        [gcc, "-O2", "-Wall", "-Wextra", "-shared", "-fPIC", "-o", str(lib), str(SOURCE), "-ldl", "-lpthread"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the power-cut shim did not compile:\n{done.stderr}")
    return lib


@dataclass(frozen=True)
class Snapshot:
    pid: int
    call: str
    ino: int
    gen: int
    path: str


@dataclass(frozen=True)
class Listing:
    pid: int
    folder: str
    entries: dict[str, tuple[int, int]]  # name -> (inode, life)


@dataclass
class Journal:
    """The shim's events of one process, in order (an unfinished last line is not an event)."""

    snapshots: list[Snapshot] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    gone: list[tuple[int, int]] = field(default_factory=list)  # (inode, life) whose last link went

    def pids(self) -> set[int]:
        return ({s.pid for s in self.snapshots} | {listing.pid for listing in self.listings}) - {START_PID}

    def syncs_of(self, suffix: str) -> int:
        """Snapshots taken by the process (not at its start) of files whose name ends with ``suffix``."""
        return sum(1 for s in self.snapshots if s.pid != START_PID and s.path.endswith(suffix))


def events_file(out: Path) -> Path:
    return out / "events.log"


def snapshot_file(out: Path, ino: int, gen: int) -> Path:
    return out / "snap" / f"{ino}-{gen}"


def record_start(folder: Path, out: Path) -> None:
    """Record ``folder`` as it is now as durable: its listing, and each file's content as life 0.

    Call it before the process starts, with ``out`` the process's own (empty) output folder.
    """
    (out / "snap").mkdir(parents=True)
    entries = []
    for f in sorted(folder.iterdir()):
        st = f.lstat()
        if not f.is_file() or f.is_symlink():
            raise ValueError(f"{f}: the model covers one flat folder of regular files")
        shutil.copyfile(f, snapshot_file(out, st.st_ino, 0))
        entries.append(f"{st.st_ino}:0:{f.name}")
    with open(events_file(out), "a") as log:
        log.write("\t".join([f"L {START_PID} {folder.resolve()}", *entries]) + "\n")


def read_journal(out: Path) -> Journal:
    journal = Journal()
    data = events_file(out).read_text()
    complete = data[: data.rfind("\n") + 1]  # a line cut short by SIGKILL was never an event
    for line in complete.splitlines():
        kind, pid, rest = line.split(" ", 2)
        if kind == "S":
            call, ino, gen, path = rest.split(" ", 3)
            journal.snapshots.append(Snapshot(int(pid), call, int(ino), int(gen), path))
        elif kind == "L":
            folder, *items = rest.split("\t")
            entries = {}
            for item in items:
                ino, gen, name = item.split(":", 2)
                entries[name] = (int(ino), int(gen))
            journal.listings.append(Listing(int(pid), folder, entries))
        elif kind == "G":
            ino, gen = rest.split(" ")
            journal.gone.append((int(ino), int(gen)))
        else:
            raise ValueError(f"{events_file(out)}: unknown event {line!r}")
    return journal


def reconstruct(out: Path, into: Path) -> dict[str, int]:
    """Build in ``into`` (created) the folder as a power cut right now leaves it.

    Returns each file's name and size. A snapshot whose event line was not yet written when the
    process died still counts: its sync had returned before the copy began.
    """
    journal = read_journal(out)
    if not journal.listings or journal.listings[0].pid != START_PID:
        raise ValueError(f"{out}: the folder's state at the start was not recorded")
    if len(journal.pids()) > 1:
        raise ValueError(f"{out}: events of several processes {sorted(journal.pids())}: lives would mix")
    into.mkdir(parents=True)
    sizes = {}
    for name, (ino, gen) in journal.listings[-1].entries.items():
        snap = snapshot_file(out, ino, gen)
        if snap.exists():
            shutil.copyfile(snap, into / name)
        else:
            (into / name).touch()  # created, named durably, never synced: empty
        sizes[name] = os.path.getsize(into / name)
    return sizes
