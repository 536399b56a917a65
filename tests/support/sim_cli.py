"""The simulators' commands as the tests run them: parsed in this process, or started as the mounted
``meterlink sim KIND`` in a fresh interpreter."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType


def parse(module: ModuleType, *argv: str) -> argparse.Namespace:
    """Parse ``argv`` with ``module``'s options, as the mounted command does."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(list(argv))


def command(kind: str, *argv: str) -> list[str]:
    """The command line of ``meterlink sim KIND ARGV...``, run by this interpreter."""
    return [sys.executable, "-m", "meterlink", "sim", kind, *argv]
