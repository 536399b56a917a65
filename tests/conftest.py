"""Shared fixtures: a private mosquitto per test, gateway keys, tidy logging."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/support importable as `support`

from meterlink.agent import clock as agent_clock
from meterlink.agent.keys import generate_keypair
from meterlink.sim.broker import LocalBroker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A real mosquitto on a free port, plain TCP, stopped (and restartable) by the test."""
    b = LocalBroker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh gateway key pair: (private key path, public key path)."""
    return generate_keypair(tmp_path / "keys")


@pytest.fixture(autouse=True)
def _agent_clock_offset_reset() -> Iterator[None]:
    """The offset a trusted station sets lives in the process: one test's must not move the next's."""
    yield
    agent_clock.set_offset(0)
