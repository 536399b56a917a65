"""The installed package: every source folder is shipped, data files included, imports point down."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"protocols": 0, "drivers": 1, "sim": 2, "agent": 2}


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"meterlink"}
    for top in ("agent", "drivers", "protocols", "sim"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add("meterlink." + ".".join(rel.parts))
    assert found == listed, f"missing from pyproject: {found - listed}; stale: {listed - found}"


def test_profiles_ship_as_package_data() -> None:
    from meterlink.drivers.modbus import profiles

    assert {"tuf2000", "emf_generic", "xintai_water_meter", "qdy30a_level"} <= set(profiles.names())


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("meterlink.")}


def test_imports_only_point_down() -> None:
    """protocols import nothing of meterlink; drivers only protocols; agent never sim but to launch it."""
    for top, level in LAYERS.items():
        for path in (ROOT / top).rglob("*.py"):
            for module in _imports(path):
                target = module.split(".")[1]
                if target not in LAYERS:
                    continue
                if top == "agent" and target == "sim":
                    # Only the launchers: the demo, and the CLI's `sim` command (imported lazily).
                    assert path.name in ("demo.py", "cli.py"), f"{path} imports {module}"
                    continue
                if top == "sim" and target == "agent":
                    continue  # the simulated platform verifies with the agent's own JWS code
                assert LAYERS[target] < level or target == top, f"{path.relative_to(ROOT)} imports {module}"


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
