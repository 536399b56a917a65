"""Imports only point down, over the real import graph of every module.

The layers, top to bottom (README "Layout"): the command line (``cli``) and the scenario replay
(``replay``), launchers of what is below; ``agent`` and ``sim``, which never import each other;
``drivers``; ``protocols`` and ``wire`` (the wire format), which import nothing of meterlink but
themselves. Every import statement counts, wherever it stands (inside a
function, under ``TYPE_CHECKING``), absolute or relative.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "cli": "cli",
    "replay": "replay",
    "agent": "agent",
    "sim": "sim",
    "drivers": "drivers",
    "protocols": "protocols",
    "wire": "wire",
}

# What each layer may import besides itself. The package root (``meterlink``: its version only) is
# open to all; its ``__main__`` is the command.
MAY_IMPORT = {
    "__main__": {"cli"},
    "cli": {"replay", "agent", "sim", "drivers", "protocols", "wire"},
    "replay": {"agent", "sim", "drivers", "protocols", "wire"},
    "agent": {"drivers", "protocols", "wire"},
    "sim": {"drivers", "protocols", "wire"},
    "drivers": {"protocols", "wire"},
    "protocols": set(),
    "wire": set(),
}

# Known debts: modules that break the layering today, each with the reason (none left). The test
# fails when one of them stops breaking it (delete its line) and for any break not listed here.
KNOWN: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Edge:
    """One import statement: ``module`` (in ``path`` at ``line``) imports ``target``."""

    module: str
    path: Path
    line: int
    target: str


def module_name(path: Path) -> str:
    """``agent/uplinks/mqtt.py`` -> ``meterlink.agent.uplinks.mqtt``; src/meterlink/* -> ``meterlink.*``."""
    rel = path.relative_to(ROOT)
    parts = list(rel.parts[2:] if rel.parts[:2] == ("src", "meterlink") else rel.parts)
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["meterlink", *parts])


def sources() -> list[Path]:
    found = sorted((ROOT / "src" / "meterlink").glob("*.py"))
    for folder in FOLDERS.values():
        found += sorted((ROOT / folder).rglob("*.py"))
    return found


def imports(path: Path) -> list[Edge]:
    """Every ``meterlink.*`` module ``path`` imports, relative imports resolved."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            # `from meterlink.agent import keys` imports the module meterlink.agent.keys.
            targets = [f"{stem}.{a.name}" for a in node.names] if stem.count(".") < 2 else [stem]
        else:
            continue
        edges += [Edge(module, path, node.lineno, t) for t in targets if t.split(".")[0] == "meterlink"]
    return edges


def layer(module: str) -> str | None:
    """The layer of a ``meterlink.*`` module, or None for the package root itself."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__version__":
        return None
    return parts[1] if parts[1] in MAY_IMPORT else None


def breaks() -> set[tuple[str, str, str]]:
    """(module, target layer, "path:line imports target") for every import that points up or sideways."""
    found = set()
    for path in sources():
        for edge in imports(path):
            source, target = layer(edge.module), layer(edge.target)
            if source is None and edge.module == "meterlink":
                assert target is None, f"{edge.path}: the package root imports {edge.target}"
                continue
            if target is None or target == source:
                continue
            assert source is not None, f"{edge.module}: not in a known layer"
            if target not in MAY_IMPORT[source]:
                where = f"{edge.path.relative_to(ROOT)}:{edge.line} imports {edge.target}"
                found.add((edge.module, target, where))
    return found


def test_the_graph_is_read_from_real_modules() -> None:
    """The parser sees the edges it must: relative imports resolved, lazy imports included."""
    edges = {(e.module, e.target) for p in sources() for e in imports(p)}
    assert ("meterlink.agent.service", "meterlink.agent.uploader") in edges  # from .uploader import ...
    assert ("meterlink.agent.uplinks.szy206", "meterlink.agent.clock") in edges  # from ..clock import ...
    assert ("meterlink.agent.service", "meterlink.agent.keys") in edges  # from . import keys
    assert ("meterlink.cli.demo", "meterlink.sim.platform") in edges  # inside a function
    assert ("meterlink.__main__", "meterlink.cli.main") in edges
    assert len(edges) > 300


def test_imports_only_point_down() -> None:
    """cli on top; agent and sim never import each other; drivers below them; protocols and wire
    import nothing of meterlink above them."""
    found = breaks()
    unexpected = sorted(where for module, target, where in found if (module, target) not in KNOWN)
    assert not unexpected, "imports that point up or sideways:\n" + "\n".join(unexpected)


def test_known_breaks_are_still_there() -> None:
    """A debt paid off leaves the list, so the list never hides a new break."""
    stale = KNOWN - {(module, target) for module, target, _ in breaks()}
    assert not stale, f"no longer break the layering, delete from KNOWN: {sorted(stale)}"


@pytest.mark.parametrize("bottom", ["protocols", "wire"])
def test_the_bottom_layers_import_only_themselves(bottom: str) -> None:
    """Spelled out for the two bottom layers: nothing of meterlink outside their own folder."""
    for path in (ROOT / bottom).rglob("*.py"):
        for edge in imports(path):
            assert layer(edge.target) in (bottom, None), f"{path.relative_to(ROOT)}:{edge.line} imports {edge.target}"


def test_drivers_import_no_agent_or_sim() -> None:
    for path in (ROOT / "drivers").rglob("*.py"):
        for edge in imports(path):
            assert layer(edge.target) not in ("agent", "sim", "cli"), f"{path.relative_to(ROOT)} imports {edge.target}"
