"""The package's layer order (docs/internals.md): every import goes from a part to one the table
below allows, and no module imports another in a circle. Every import statement counts: top level,
under ``TYPE_CHECKING`` and inside functions (read from the syntax trees, nothing run)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "supcon"


def _modules() -> dict[str, Path]:
    out = {}
    for file in PACKAGE.rglob("*.py"):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return out


def _imports(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports (``from pkg import submodule`` counts as the
    submodule only: it does not run a cycle through the package's ``__init__``)."""
    package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            subs = [f"{stem}.{alias.name}" for alias in node.names]
            targets = subs if all(s in modules for s in subs) else [stem, *subs]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


# Each part of the package and the parts it may import (besides itself), lowest first. A part is a
# top-level module or sub-package of supcon ("supcon" alone: the package's __init__, the public
# names); "losses.options" is one module, the loss options' torch-free table that config reads;
# "command_line" (standard library only) turns option dataclasses into flags for the CLI and reports.
BASE = {"checks", "losses.options", "command_line"}
LIBRARY = BASE | {"config", "data", "distributed", "eval", "losses", "methods", "models", "run_folder",
                  "weights"}
ALLOWED = {
    "checks": set(),
    "losses.options": set(),
    "command_line": set(),
    "distributed": set(),
    "data": BASE,
    "config": BASE | {"data"},  # data: the registry, asked at call time whether a name is a data set
    "losses": BASE | {"distributed"},
    "models": BASE | {"config"},
    "eval": BASE | {"config"},
    "run_folder": BASE | {"config"},
    "weights": BASE | {"config", "models", "run_folder"},
    "methods": BASE | {"config", "distributed", "losses", "models"},
    "engine": LIBRARY,
    "api": LIBRARY | {"engine"},
    "supcon": LIBRARY | {"engine", "api"},
    "workflows": LIBRARY | {"engine", "supcon"},  # supcon: __version__ for the records
    "_cli_messages": LIBRARY | {"engine"},
    "cli": LIBRARY | {"engine", "api", "supcon", "workflows", "_cli_messages"},
    "__main__": {"cli"},
}

# Inside supcon.workflows: the experiment engine's stages and what each may import (besides its
# own modules). A comparison is run by "execute", analysed by "analysis" and drawn by "render".
STAGES = {
    "statistics": {"stats"},
    "format": {"report"},  # the document model and the fmt_* helpers
    "figures": {"plots"},
    "evaluate": {"eval_options", "eval_data", "eval_corruptions", "eval_gradients", "evaluate", "runs"},
    "grid": {"grid", "controlled"},
    "execute": {"execute", "record"},
    "analysis": {"analysis", "claims", "plan"},
    "render": {"render", "render_presets", "render_study"},
    "configurations": {"compare", "study", "sweep", "__init__"},
}
STAGE_MAY_IMPORT = {
    "statistics": set(),
    "format": {"statistics"},
    "figures": set(),
    "evaluate": {"figures"},
    "grid": {"evaluate"},
    "execute": {"grid", "evaluate", "format"},
    "analysis": {"statistics", "format", "evaluate"},  # evaluate: the pure mCE of eval_corruptions
    "render": {"statistics", "format", "figures", "grid", "analysis"},
    "configurations": set(STAGES),
}


def _part(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:2] == ["losses", "options"]:
        return "losses.options"
    return parts[0] if parts else "supcon"


def _stage(module: str) -> str:
    name = module.split(".")[2] if module.count(".") >= 2 else "__init__"
    return next(stage for stage, names in STAGES.items() if name in names)


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import the tables do not allow, as ``"importer -> imported"``."""
    out = []
    for name, targets in graph.items():
        for target in targets:
            a, b = _part(name), _part(target)
            if a != b and b not in ALLOWED[a]:
                out.append(f"{name} -> {target}")
            elif a == b == "workflows" and _stage(target) not in {_stage(name), *STAGE_MAY_IMPORT[_stage(name)]}:
                out.append(f"{name} -> {target}")
    return sorted(out)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, file, modules) for name, file in modules.items()}


def test_every_part_and_workflow_module_is_in_the_tables():
    graph = _graph()
    assert {_part(name) for name in graph} <= set(ALLOWED)
    workflows = [n for n in graph if _part(n) == "workflows"]
    assert all(_stage(n) for n in workflows)  # StopIteration for a module of no stage


def test_every_import_points_down_the_layers():
    assert _upward(_graph()) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"supcon.losses.supcon": {"supcon.engine.loop"},  # a loss importing the engine
             "supcon.workflows.analysis": {"supcon.workflows.execute"},  # the analysis running runs
             "supcon.workflows.render": {"supcon.workflows.analysis"},  # allowed
             "supcon.config": {"supcon.losses.options"}}  # allowed: the torch-free options
    assert _upward(graph) == ["supcon.losses.supcon -> supcon.engine.loop",
                              "supcon.workflows.analysis -> supcon.workflows.execute"]


def test_no_module_imports_another_in_a_circle():
    modules = _modules()
    graph = {name: _imports(name, file, modules) for name, file in modules.items()}
    assert "supcon.engine.train_job" in graph["supcon.workflows.runs"]  # the reader sees imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
