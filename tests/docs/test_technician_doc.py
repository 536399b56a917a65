"""docs/technician.md stays true: every ``console`` block is typed in, in order, as a technician would.

How the page is read (its first section says the same to the reader):

- A ```` ```console ```` block holds commands (``$ `` lines) and, under each, what it prints. Lines of
  output are compared after numbers are made "a number" and runs of blanks one blank (values, times
  and process ids differ from run to run); ``...`` alone stands for left-out lines, and within a
  line for left-out text. Every shown line must be in what was printed. ``[exit N]`` is the exit status
  (none shown: 0). A command ending in ``&`` is a background job: ``[n] PID`` is its job line, and
  what it prints counts as printed by the commands that follow it (as on the technician's terminal).
- A ```` ```toml NAME ```` block is written to the file NAME in the site folder.
- ```` ```sh ```` and ```` ```text ```` blocks are for the reader only (the Pi's packages, adapter,
  systemd, users): not run.

The page's names stand for what the test has: ``/dev/ttyUSB0`` is the first simulator's pty, a pty
the page shows a background simulator print is the pty it really printed, a job's PID the real one,
ports 1883 and 9101 free ports, and ``sudo -u meterlink`` runs the command as user ``nobody`` (the
page's "user meterlink" then reads "user nobody"). Commands run through ``bash -c`` in a temporary
site folder with this interpreter's ``meterlink`` first on PATH.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.runs import meterlink_for_others, quiet_env

from meterlink.agent.clock import kernel_clock_synced

DOC = Path(__file__).resolve().parents[2] / "docs" / "technician.md"
WAIT = 60.0  # seconds a shown line may take to appear in a background job's output
NUMBER = re.compile(r"0x[0-9A-Fa-f]+|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")
PTY = re.compile(r"/dev/pts/\d+")
AS_AGENT_USER = "sudo -u meterlink "


@dataclass
class Step:
    command: str
    shown: list[str] = field(default_factory=list)
    exit: int = 0
    block: int = 0  # which console block, counted from 1: for failure messages


def steps(text: str) -> Iterator[Step | tuple[str, str]]:
    """The page's console commands and toml files, in order."""
    blocks = re.findall(r"^```(\w+)([^\n]*)\n(.*?)^```$", text, re.S | re.M)
    number = 0
    for kind, info, body in blocks:
        if kind == "toml":
            yield (info.strip(), body)
        if kind != "console":
            continue
        number += 1
        step: Step | None = None
        for line in body.splitlines():
            if line.startswith("$ "):
                if step:
                    yield step
                step = Step(line[2:], block=number)
            elif step and (m := re.fullmatch(r"\[exit (\d+)\]", line.strip())):
                step.exit = int(m[1])
            elif step and line.strip() and line.strip() != "...":
                step.shown.append(line)
        if step:
            yield step


def normal(line: str) -> str:
    return " ".join(NUMBER.sub("#", line).split())


def matches(shown: str, printed: str) -> bool:
    """``...`` in a shown line stands for any text: at its start, its end or in between."""
    parts = [re.escape(part.strip()) for part in normal(shown).split("...")]
    return re.fullmatch(" ?.*? ?".join(parts), normal(printed)) is not None


def missing(shown: list[str], printed: str) -> list[str]:
    lines = printed.splitlines()
    return [s for s in shown if not any(matches(s, p) for p in lines)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Terminal:
    """A technician's shell: runs commands, keeps background jobs, maps the page's names to real ones."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.names: dict[str, str] = {}
        self.jobs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.env = quiet_env()
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"
        self.printed: dict[str, str] = {}  # each command of the page: what it printed

    def real(self, text: str) -> str:
        if not self.names:
            return text
        pattern = "|".join(re.escape(k) for k in sorted(self.names, key=len, reverse=True))
        return re.sub(rf"(?<![\w/]){pattern}(?!\w)", lambda m: self.names[m[0]], text)

    def job_output(self) -> str:
        return "".join(log.read_text(errors="replace") for _, log in self.jobs)

    def run(self, step: Step) -> None:
        command = self.real(step.command)
        if command.endswith("&"):
            return self.start(step, command[:-1].strip())
        before = len(self.job_output())
        user = group = None
        groups: list[int] | None = None
        if command.startswith(AS_AGENT_USER):
            user, group, program = self.as_nobody()
            groups = []
            command = f"{program} {command.removeprefix(AS_AGENT_USER + 'meterlink ')}"
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.site,
            env=self.env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=180,
            user=user,
            group=group,
            extra_groups=groups,
        )
        shown = [self.real(s) for s in step.shown]
        printed = done.stdout + done.stderr
        deadline = time.monotonic() + (WAIT if self.jobs else 0)
        while missing(shown, printed + self.job_output()[before:]) and time.monotonic() < deadline:
            time.sleep(0.5)
        printed += self.job_output()[before:]
        self.printed[step.command] = printed
        where = f"console block {step.block}: $ {step.command}"
        assert done.returncode == step.exit, f"{where}: exit {done.returncode}, the page says {step.exit}\n{printed}"
        assert not missing(shown, printed), f"{where}: not printed: {missing(shown, printed)}\n{printed}"

    def start(self, step: Step, command: str) -> None:
        log = Path(tempfile.mkstemp(prefix="job-", suffix=".log", dir=self.site.parent)[1])
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"], cwd=self.site, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.jobs.append((proc, log))
        job = next(s for s in step.shown if re.fullmatch(r"\[\d+\] \d+", s.strip()))
        self.names[job.split()[1]] = str(proc.pid)
        shown = [self.real(s) for s in step.shown if s != job]
        deadline = time.monotonic() + WAIT
        while missing(shown, log.read_text(errors="replace")) and time.monotonic() < deadline:
            assert proc.poll() is None, f"$ {step.command}: ended early\n{log.read_text(errors='replace')}"
            time.sleep(0.2)
        printed = log.read_text(errors="replace")
        assert not missing(shown, printed), f"$ {step.command}: not printed: {missing(shown, printed)}\n{printed}"
        for s in shown:  # a pty the page shows this job print is the pty it really printed
            if page_pty := PTY.search(s):
                got = next(p for p in printed.splitlines() if matches(s, p))
                real_pty = PTY.search(got)
                assert real_pty is not None
                self.names.setdefault(page_pty[0], real_pty[0])
                self.names.setdefault("/dev/ttyUSB0", self.adapter(real_pty[0]))

    @staticmethod
    def adapter(pty: str) -> str:
        """The first simulator's pty, made to look like a USB adapter's node: root:dialout, 0660."""
        if os.geteuid() == 0:
            os.chown(pty, 0, grp.getgrnam("dialout").gr_gid)
            os.chmod(pty, 0o660)
        return pty

    def as_nobody(self) -> tuple[int, int, str]:
        """User nobody's ids and how it runs meterlink; the page's agent user reads as nobody."""
        if os.geteuid() != 0:
            pytest.skip("running a command as another user needs root")
        self.names["user meterlink"] = "user nobody"
        self.names["dialout meterlink"] = "dialout nobody"
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid, shlex.join(meterlink_for_others())

    def close(self) -> None:
        for proc, _ in self.jobs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.jobs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


NEEDED = ("mosquitto", "mosquitto_sub", "curl", "sed", "grep")


def test_every_console_block_runs_as_the_page_says(tmp_path: Path) -> None:
    absent = [tool for tool in NEEDED if not (shutil.which(tool) or Path("/usr/sbin", tool).exists())]
    if absent:
        pytest.skip(f"the page's commands need {', '.join(absent)}")
    site = tmp_path / "site"
    site.mkdir()
    terminal = Terminal(site)
    terminal.env["PATH"] += f"{os.pathsep}/usr/sbin"
    terminal.names.update({"1883": str(free_port()), "9101": str(free_port())})
    ran = 0
    try:
        for item in steps(DOC.read_text(encoding="utf-8")):
            if isinstance(item, tuple):
                name, body = item
                (site / name).write_text(terminal.real(body), encoding="utf-8")
            else:
                terminal.run(item)
                ran += 1
    finally:
        terminal.close()
    assert ran >= 30, f"only {ran} commands found on the page"
    # The no-NTP section: readings taken while the kernel says the clock is not synchronised carry
    # the flag it shows, and only then. The first upload (step 9) shows which this machine is.
    upload = next(out for command, out in terminal.printed.items() if "meterlink verify" in command)
    synced = kernel_clock_synced()
    if synced is not None:
        assert ('"flags":["clock_unsynced"]' in upload) is not synced, upload
        assert '"flags":["clock_unsynced"]' in DOC.read_text(encoding="utf-8")
