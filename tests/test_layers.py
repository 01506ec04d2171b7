"""The package is a stack of layers: a subpackage imports only from those below it, and no two modules import
each other (function-level imports count: they are imports all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# Lowest first; a layer may import from any layer before it. The leaves everyone may import come first.
LAYERS = (
    ("ltxtune.errors",),
    ("ltxtune.files", "ltxtune.ranks", "ltxtune.ltx_core_api"),
    ("ltxtune.data", "ltxtune.model"),
    ("ltxtune.diffusion",),
    ("ltxtune.strategies",),
    ("ltxtune.evaluation",),
    ("ltxtune.training",),
    ("ltxtune.convert", "ltxtune.sweeps"),
    ("ltxtune.app",),
)


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "ltxtune").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ltxtune modules ``name`` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("ltxtune.") and target != name:
                found.add(target)
    return found


def layer_of(module: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in layer):
            return index
    raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS")


def test_every_import_points_down_or_stays_in_its_package() -> None:
    known = modules()
    upward = []
    for name, path in known.items():
        if name == "ltxtune":
            continue
        for target in imports(name, path, known):
            same_package = name.split(".")[:2] == target.split(".")[:2]
            if not same_package and layer_of(target) >= layer_of(name):
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(sorted(upward))


def test_no_two_modules_import_each_other() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    cycles = sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets if a < b and reaches(b, a))
    assert not cycles, "modules in an import cycle:\n" + "\n".join(cycles)
