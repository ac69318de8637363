"""The code's layers, checked from the source: models <- playground (core) <- playground.ui <- app,
and the offline tools (`training/`) beside them: they use `models/`, nothing the app runs uses them.

Every import is read with `ast`, at module level or inside functions alike:
- a layer imports only itself and the layers below it (and the core no UI library);
- no module imports a `_private` name of another module;
- no import loop among the project's modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "playground", "training")
UI_LIBRARIES = {"gradio", "gradio_client", "plotly", "pandas", "kaleido"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    files = [ROOT / "app.py"] + [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    return {module_name(p): p for p in files}


MODULES = project_modules()


def layer(module: str) -> float:
    """0 models, 0.5 training (offline tools), 1 playground core, 2 playground.ui, 3 app."""
    if module == "app":
        return 3
    if module.startswith("playground.ui"):
        return 2
    if module.startswith("playground"):
        return 1
    if module.startswith("models"):
        return 0
    if module.startswith("training"):
        return 0.5  # above models/ only; the app's layers may not import it (TRAINING_USERS)
    raise ValueError(module)


def may_import(module: str, dep: str) -> bool:
    """Whether `module` may import the project module `dep`: only from its layer or below, and
    `training/` only from `training/` (the app must run without the offline tools)."""
    if dep.startswith("training"):
        return module.startswith("training")
    if module.startswith("training"):
        return dep.startswith("models")
    return layer(dep) <= layer(module)


def resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if MODULES.get(module, Path("x.py")).name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, source: str | None = None) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) of every import statement in `module`."""
    tree = ast.parse(source if source is not None else MODULES[module].read_text(), filename=module)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            names = [alias.name for alias in node.names]
            # `from pkg import submodule` imports the submodule
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            out += [(s, [], node.lineno) for s in subs]
            out.append((target, [n for n in names if f"{target}.{n}" not in MODULES], node.lineno))
    return out


def project_target(name: str) -> str | None:
    """The project module an import refers to (a package's `__init__` for the package), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_layer_imports_only_itself_and_below(module: str) -> None:
    for target, _, line in imports(module):
        top = target.split(".")[0]
        if top in ("bench", "tests"):
            pytest.fail(f"{module}:{line} imports {target}: bench/ and tests/ sit above the app")
        dep = project_target(target)
        if dep is not None:
            assert may_import(module, dep), f"{module}:{line} imports {target}, a layer it may not use"
        if layer(module) <= 1:
            assert top not in UI_LIBRARIES, f"{module}:{line} imports {top}: the core returns data, the UI draws it"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_imported_from_another_module(module: str) -> None:
    for target, names, line in imports(module):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{module}:{line} imports private {private} from {target}"


def find_loop(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph (depth-first search for a back edge), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (loop := visit(d)):
                return loop
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (loop := visit(m)):
            return loop
    return None


def test_no_import_loop() -> None:
    graph = {m: {d for t, _, _ in imports(m) if (d := project_target(t)) is not None and d != m} for m in MODULES}
    loop = find_loop(graph)
    assert loop is None, "import loop: " + " -> ".join(loop or [])


def test_the_checks_see_violations() -> None:
    """The rules are not vacuous: made-up sources that break them are caught."""
    taken = imports("playground.segment", "def f():\n    from models.hat import _bucket_length as b\n")
    assert taken == [("models.hat", ["_bucket_length"], 2)]
    upward = imports("models.scoring", "import playground.ui.common\n")
    assert not may_import("models.scoring", project_target(upward[0][0]) or "")
    assert not may_import("playground.adaptation", "training.adapt")  # the app does not need training/
    assert not may_import("training.train", "playground.segment")
    assert may_import("training.adapt", "models.adaptation")
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    relative = imports("playground.ui.segment", "from ..segment import stats\n")
    assert relative[0][0] == "playground.segment"
