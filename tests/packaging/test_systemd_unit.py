"""deploy/meterlink.service: the hardening and restart policy a site relies on, and a unit systemd accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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
    assert d["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # the agent reads its file again on SIGHUP


# Every key the unit may use, each one systemd-analyze accepts (systemd.directives(7)). systemd only warns about
# an unknown key and runs on without it (a misspelt ProtectSystem= is a unit with no sandbox), and
# systemd-analyze is not on every machine that runs the tests: this holds the spelling without it.
_RUN = {
    "Type",
    "NotifyAccess",
    "WatchdogSec",
    "ExecStart",
    "ExecReload",
    "Restart",
    "RestartSec",
    "KillSignal",
    "TimeoutStopSec",
}
_USER = {"User", "Group", "SupplementaryGroups", "StateDirectory", "StateDirectoryMode", "ConfigurationDirectory"}
_FILES = {"NoNewPrivileges", "ProtectSystem", "ReadWritePaths", "ProtectHome", "PrivateTmp", "UMask"}
_KERNEL = {"ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups", "ProtectClock"}
_REST = {"RestrictSUIDSGID", "LockPersonality", "RestrictRealtime", "RestrictAddressFamilies"}
KNOWN_KEYS = {
    "Unit": {"Description", "Documentation", "After", "Wants", "StartLimitIntervalSec"},
    "Service": _RUN | _USER | _FILES | _KERNEL | _REST | {"DevicePolicy", "DeviceAllow"},
    "Install": {"WantedBy"},
}


def test_every_key_is_one_systemd_knows() -> None:
    unknown = sorted(k for k in _directives() if k.partition(".")[2] not in KNOWN_KEYS.get(k.partition(".")[0], ()))
    assert not unknown, f"not systemd keys (misspelt?), or new ones to check in systemd.directives(7): {unknown}"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """Unknown or misspelt keys are only warnings to systemd, so any output at all fails this test."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt install systemd): the unit was not verified")
    # The unit's ExecStart needs an installed agent; verify a copy that starts an executable that exists.
    unit = tmp_path / "meterlink.service"
    text = UNIT.read_text()
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    unit.write_text(text.replace(exec_start, "ExecStart=/bin/true"))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
