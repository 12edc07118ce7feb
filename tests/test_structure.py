"""The house rules of ../DESIGN: imports run one way, between rooms and inside them.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy
import hides a circle from Python, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nlu", "gan", "multilingual", "experiments", "service")
# A room may import only the rooms listed for it (and itself).
ALLOWED = {
    "nlu": set(),
    "gan": {"nlu"},
    "multilingual": {"nlu"},
    "experiments": {"nlu", "gan", "multilingual"},
    "service": {"nlu", "gan", "multilingual", "experiments"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "generated" not in path.parts:
                modules[_module_name(path)] = path
    return modules


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports (a ``from pkg import mod`` names pkg.mod)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # the longest project module that the import names
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _project_modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_rooms_import_only_lower_rooms(graph):
    wrong = [f"{name} imports {target}" for name, targets in graph.items() for target in targets
             if target.split(".")[0] != name.split(".")[0]
             and target.split(".")[0] not in ALLOWED[name.split(".")[0]]]
    assert not wrong, wrong


def test_no_import_cycles(graph):
    """Depth-first search; a grey node met again closes a circle."""
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "grey"
        for target in sorted(graph.get(node, ())):
            # a package's __init__ re-exporting its modules is not a circle
            if node.startswith(target + "."):
                continue
            if state.get(target) == "grey":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "black"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, [" -> ".join(cycle) for cycle in cycles]


def test_gan_training_side_runs_one_way(graph):
    """config -> models -> module -> training, and augment (sampling a trained G) below
    training: a lower layer imports nothing from a higher one."""
    layers = [["gan.config"], ["gan.models"], ["gan.module", "gan.augment"], ["gan.training"]]
    for level, layer in enumerate(layers):
        higher = {name for above in layers[level + 1:] for name in above}
        for name in layer:
            assert not graph[name] & higher, (name, graph[name] & higher)


def test_no_machine_paths_in_shipped_files():
    """Data is named relative to the repository (``../shared/data``), never by a machine path."""
    machine_path = ("/work/", "/root/", "/home/", "/Users/", "C:\\\\")
    found = []
    for pattern in ("*.py", "*.yaml", "*.md", "*.toml", "*.proto"):
        for path in ROOT.rglob(pattern):
            if {".venv", ".git", ".nlu-bootstrap"} & set(path.relative_to(ROOT).parts):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if any(prefix in line for prefix in machine_path):
                    found.append(f"{path.relative_to(ROOT)}:{number}")
    found = [place for place in found if not place.startswith("tests/test_structure.py")]
    assert not found, found
