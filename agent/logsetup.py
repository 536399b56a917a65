"""Logging: one line per event, ``key=value`` fields, journald-friendly, no secrets."""

from __future__ import annotations

import logging
import os
import sys


def setup(level: str = "info") -> None:
    # Under systemd the journal adds its own timestamp; elsewhere a technician wants one.
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = (
        "%(levelname)s %(name)s: %(message)s" if under_journald else ("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
