"""The installed package: every source folder is shipped, data files included, codecs stdlib only.

That imports only point down is test_import_layers.py's.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("cli", "replay", "agent", "sim", "drivers", "protocols", "wire")


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"meterlink"}
    for top in FOLDERS:
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add("meterlink." + ".".join(rel.parts))
    assert found == listed, f"missing from pyproject: {found - listed}; stale: {listed - found}"


def test_profiles_ship_as_package_data() -> None:
    from meterlink.drivers.modbus import profiles

    assert {"tuf2000", "emf_generic", "xintai_water_meter", "qdy30a_level"} <= set(profiles.names())


def test_protocols_are_stdlib_only() -> None:
    import sys

    for path in (ROOT / "protocols").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "meterlink", f"{path}: imports {name}"
                assert top not in ("asyncio", "logging", "socket"), f"{path}: a codec does no I/O ({name})"
