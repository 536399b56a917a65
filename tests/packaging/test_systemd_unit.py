"""deploy/meterlink.service: the hardening and restart policy a site relies on, and a unit systemd accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "meterlink.service"


def _directives() -> dict[str, list[str]]:
    """``Section.Key`` -> values in order (systemd keys may repeat, so no configparser)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def test_the_unit_runs_the_agent_unprivileged_sandboxed_and_watched() -> None:
    d = _directives()
    expected = {
        "Service.Type": ["notify"],
        "Service.NotifyAccess": ["main"],
        "Service.Restart": ["always"],
        "Unit.StartLimitIntervalSec": ["0"],
        "Service.User": ["meterlink"],
        "Service.SupplementaryGroups": ["dialout"],
        "Service.NoNewPrivileges": ["yes"],
        "Service.ProtectSystem": ["strict"],
        "Service.ReadWritePaths": ["/var/lib/meterlink"],
        "Service.StateDirectory": ["meterlink"],
    }
    for key, values in expected.items():
        assert d.get(key) == values, f"{key}: {d.get(key)}"
    assert int(d["Service.WatchdogSec"][0]) > 0
    assert d["Service.ExecStart"][0].split()[1:] == ["run", "-c", "/etc/meterlink/site.toml"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """Unknown or misspelt keys are only warnings to systemd, so any output at all fails this test."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        # Nothing to run it with: the directive checks above still hold the unit to its contract.
        return
    # The unit's ExecStart needs an installed agent; verify a copy that starts an executable that exists.
    unit = tmp_path / "meterlink.service"
    text = UNIT.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    unit.write_text(text.replace(exec_start, "ExecStart=/bin/true"))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
