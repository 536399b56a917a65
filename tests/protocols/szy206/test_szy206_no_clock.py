"""protocols/ reads no clock: every time it needs is passed in (the agent's clock carries an offset)."""

from __future__ import annotations

import ast
from pathlib import Path

PROTOCOLS = Path(__file__).resolve().parents[3] / "protocols"
CLOCKS = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "now", "utcnow", "today"}


def test_no_module_of_protocols_reads_a_clock() -> None:
    found = []
    for path in sorted(PROTOCOLS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCKS:
                found.append(f"{path.relative_to(PROTOCOLS)}:{node.lineno} {ast.unparse(node.func)}()")
    assert found == []
