"""The package's import graph: no circle anywhere, and imports point down the layers.

Every ``import`` statement in ``handgrad/`` counts, also the ones inside functions (a
function-level import that only hides a circle is still a circle). An edge goes to the
module an import names: ``from ..ops.window import im2col`` to ``handgrad.ops.window``,
``from .. import layers`` to ``handgrad.layers``, ``from ..layers import Linear`` to the
package ``handgrad.layers``. Parent packages that Python runs on the way are not edges
(every module would otherwise depend on ``handgrad/__init__.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "handgrad"

# Top-down order of the rooms: a module may import only from its own room or a lower one.
# (``handgrad`` itself, the package __init__, re-exports everything and is imported by none.)
LEVELS = [
    ["cli"],
    ["inspect", "distributed", "onnx"],
    ["training"],
    ["models"],
    ["layers", "losses", "optim", "data"],
    ["layer", "parameter", "hooks", "init", "random", "_validation"],
    ["ops"],
    ["_runtime"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "handgrad")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "handgrad":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            out.update(subs if subs and len(subs) == len(node.names) else [target, *subs])
    out.discard(name)
    return {t for t in out if t in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_graph_sees_function_level_imports():
    edges = graph()
    assert "handgrad.cli.train" in edges["handgrad.cli.main"]  # imported inside main()
    assert "handgrad.layer" in edges["handgrad.layers.linear"]


def test_no_import_circle():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def level_of(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) < 2:
        return None
    if parts[1] == "train":  # the deprecated alias of handgrad.training.fit
        return 2
    for i, rooms in enumerate(LEVELS):
        if parts[1] in rooms:
            return i
    return None


def test_every_module_has_a_room():
    missing = [n for n in modules() if n != "handgrad" and level_of(n) is None]
    assert not missing, f"modules outside the layout's rooms: {missing}"


def test_imports_point_down():
    wrong = []
    for name, targets in graph().items():
        here = level_of(name)
        for target in targets:
            there = level_of(target)
            if here is not None and (there is None or there < here):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports that point up the layers: " + ", ".join(sorted(wrong))


def test_handgrad_train_stays_an_alias_of_training_fit():
    import handgrad
    import handgrad.train
    from handgrad.training import fit

    assert handgrad.train.fit is fit is handgrad.fit
    assert handgrad.train.History is handgrad.History


def test_public_names_are_listed_once_and_exist():
    import handgrad

    for module in (handgrad, handgrad.layers, handgrad.losses, handgrad.optim):
        names = list(module.__all__)
        assert len(names) == len(set(names)), f"{module.__name__}.__all__ repeats a name"
        missing = [n for n in names if not hasattr(module, n)]
        assert not missing, f"{module.__name__}.__all__ lists missing names {missing}"
