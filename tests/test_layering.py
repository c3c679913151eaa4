"""The import graph between the workbench's packages points one way: a lower package never imports a
higher one (at module level or inside a function), and no two packages import each other."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "workbench"

#: From the bottom up; a package may import packages of its own layer or below (without cycles).
LAYERS = [
    {"errors", "numeric", "utils", "registry", "unitview", "selection", "edits", "adapters"},
    {"metrics"},
    {"datasets", "zoo", "select"},
    {"train", "graph"},
    {"sparse", "quantize", "surgery", "viz"},
    {"pipeline", "rebuild"},
    {"checkpoints", "compression", "export"},
    {"study", "demo"},
    {"cli", "__init__"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def _package(parts: tuple[str, ...]) -> str:
    """``workbench.<package>...`` -> ``<package>`` (``__init__`` for the top-level module)."""
    return parts[1] if len(parts) > 1 else "__init__"


def import_edges(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> the places (file:line) where it happens."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        parts = ("workbench", *path.relative_to(root).with_suffix("").parts)
        source = _package(parts if parts[-1] != "__init__" else parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("workbench"):
                targets = [node.module] if node.module != "workbench" else [f"workbench.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name.split(".")[0] == "workbench"]
            else:
                continue
            for target in targets:
                package = _package(tuple(target.split(".")))
                if package != source:
                    edges[(source, package)].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return edges


def test_every_package_has_a_layer():
    found = {
        p.stem if p.is_file() else p.name
        for p in ROOT.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__pycache__"
    }
    assert found - set(LEVEL) == set(), "add new packages to LAYERS (and to DESIGN.md's table)"


def test_no_package_imports_a_higher_one():
    upward = [
        f"{src} (layer {LEVEL[src]}) imports {dst} (layer {LEVEL[dst]}) at {', '.join(places[:3])}"
        for (src, dst), places in import_edges().items()
        if LEVEL[dst] > LEVEL[src]
    ]
    assert upward == []


def test_no_import_cycles_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in import_edges():
        graph[src].add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in list(graph) for b in graph[a] if reaches(b, a, set())})
    assert cycles == []


def test_the_check_sees_an_upward_import(tmp_path):
    fake = tmp_path / "workbench"
    (fake / "metrics").mkdir(parents=True)
    (fake / "metrics" / "__init__.py").write_text("def f():\n    from workbench.study import run\n")
    edges = import_edges(fake)
    assert ("metrics", "study") in edges and LEVEL["study"] > LEVEL["metrics"]


@pytest.mark.parametrize("lower, higher", [("train", "sparse"), ("train", "surgery"), ("surgery", "select")])
def test_the_restructured_arrows_stay_removed(lower, higher):
    """Training knows nothing of pruning masks or surgery; surgery knows nothing of how units were selected."""
    assert (lower, higher) not in import_edges()
