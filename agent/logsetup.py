"""Logging: one line per event, ``key=value`` fields, journald-friendly, no secrets.

Under systemd the journal stamps each line itself and reads a ``<N>`` prefix as its syslog priority
(``SyslogLevelPrefix=``, on by default), so ``journalctl -p warning`` shows warnings and worse;
elsewhere a technician reading a terminal wants a timestamp. systemd sets ``JOURNAL_STREAM`` to the
device and inode of the stream it connected: it counts only while stderr is that stream, since a
program started from the agent's shell may inherit the variable with other output.

``[log] level`` sets every logger; each area (``modbus``, ``szy206``, ``mqtt``, ``store``) may be
set apart, its loggers being ``meterlink.<area>``: a bus can be debugged without the uplink's noise.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import LogConfig

AREAS = ("modbus", "szy206", "mqtt", "store")
# syslog priorities (RFC 5424 severities) as the journal reads them from a "<N>" prefix.
PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL = "%(levelname)s %(name)s: %(message)s"


def priority(levelno: int) -> int:
    """The syslog priority of a logging level; levels between the named ones round to the milder."""
    return next((p for level, p in sorted(PRIORITIES.items(), reverse=True) if levelno >= level), 7)


class JournalFormatter(logging.Formatter):
    """``<N>`` before every line of a record: the journal takes each line as an entry of its own."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def under_journal(stream: IO[Any] | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Is ``stream`` (default stderr) the journal stream systemd gave this process?"""
    expected = environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        info = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a file (a test's capture)
        return False
    return f"{info.st_dev}:{info.st_ino}" == expected


def setup(level: str = "info", areas: Mapping[str, str | None] | None = None) -> None:
    """Log to stderr at ``level``, each area of ``areas`` (``{"modbus": "debug"}``) at its own."""
    handler = logging.StreamHandler(sys.stderr)
    if under_journal(handler.stream):
        handler.setFormatter(JournalFormatter(JOURNAL))
    else:
        handler.setFormatter(logging.Formatter(PLAIN, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for area in AREAS:
        chosen = (areas or {}).get(area)
        # None: follow [log] level (a level left on the logger by an earlier setup is cleared).
        logging.getLogger(f"meterlink.{area}").setLevel(chosen.upper() if chosen else logging.NOTSET)


def from_config(log: LogConfig, override: str | None = None) -> None:
    """Set up from the ``[log]`` section; ``--log-level`` (``override``) sets every area alike."""
    if override is not None:
        setup(override)
    else:
        setup(log.level, {area: getattr(log, area, None) for area in AREAS})
