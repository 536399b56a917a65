"""The simulators' commands as the tests run them: parsed and run in this process, or started as the
mounted ``meterlink sim KIND`` in a fresh interpreter."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from collections.abc import Iterator
from types import ModuleType


def parse(module: ModuleType, *argv: str) -> argparse.Namespace:
    """Parse ``argv`` with ``module``'s options, as the mounted command does."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(list(argv))


def run_here(module: ModuleType, *argv: str) -> int:
    """Parse ``argv`` and run ``module``'s command in this process; its exit code."""
    code: int = asyncio.run(module.run(parse(module, *argv)))
    return code


def command(kind: str, *argv: str) -> list[str]:
    """The command line of ``meterlink sim KIND ARGV...``, run by this interpreter."""
    return [sys.executable, "-m", "meterlink", "sim", kind, *argv]


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket listens on while the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]
