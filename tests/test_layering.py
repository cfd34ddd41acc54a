"""The package's structure: imports point down the layers (read from the source with ast),
no cycle between modules, imports inside functions only for the optional packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hpaseg"

#: Layer of each top-level module or subpackage of hpaseg: a module may import from its own
#: unit and from lower layers only. The stage entry points (``hpaseg/<stage>.py``) and
#: ``__main__`` modules sit above everything.
LAYERS: dict[str, int] = {
    "classes": 0,
    "errors": 0,
    "io": 1,
    "transforms": 1,
    "runtime": 2,
    "segmentation": 3,
    "submission": 3,
    "labels": 4,
    "evaluation": 4,
    "weak": 4,
    "descriptors": 4,
    "detection": 5,
    "classification": 5,
    "viz": 6,
    "synth": 7,
    "pipeline": 8,
    "cli": 9,
    "bench": 10,
}
ENTRY_POINT_LAYER = 11
#: Packages that may be imported inside functions (they are optional).
OPTIONAL = ("detectron2", "hpacellseg")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    unit = _unit(module)
    if module.endswith("__main__") or unit not in LAYERS and unit != "__init__":
        return ENTRY_POINT_LAYER  # hpaseg/<stage>.py, __main__ modules
    if unit == "__init__":
        return 1  # the package's face: names of classes and the version
    return LAYERS[unit]


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported hpaseg module, line, inside a function) of every import statement."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                names = [f"{target}.{a.name}" for a in child.names]
                found.extend((n if n in modules else target, child.lineno, in_function) for n in names)
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names)
            visit(child, nested)

    visit(tree, False)
    return found


modules = _modules()


def test_layers_cover_every_subpackage():
    units = {
        p.name if p.is_dir() else p.stem
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"
    }
    missing = {u for u in units if u not in LAYERS and u not in ("__init__", "__main__")}
    stages = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__", *LAYERS}
    assert missing == stages, f"units without a layer: {sorted(missing - stages)}"
    for stage in stages:  # the entry points are thin: they only run the CLI's main
        source = (PACKAGE / f"{stage}.py").read_text()
        assert f"from .cli.{stage} import main" in source and len(source.splitlines()) <= 8, stage


@pytest.mark.parametrize("module", sorted(modules))
def test_imports_point_down(module):
    own_unit, own_layer = _unit(module), _layer(module)
    for target, line, inside_function in _imports(module, modules[module]):
        root = target.split(".")[0]
        if inside_function:
            assert root in OPTIONAL, (
                f"{module}:{line} imports {target} inside a function; only {', '.join(OPTIONAL)} may be imported there"
            )
        if root != "hpaseg" or target == "hpaseg":
            continue
        unit = _unit(target)
        if unit == own_unit:
            continue
        assert _layer(target) < own_layer, (
            f"{module}:{line} imports {target} (layer {_layer(target)}) from layer {own_layer}: imports must point down"
        )


def test_no_import_cycle_between_modules():
    graph = {m: {t for t, _, _ in _imports(m, p) if t in modules and t != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
