"""Every public function, class and method of the library has a docstring, and the docstrings of
the core entry points name their arguments.

Public means reachable without a leading underscore: the names (no leading ``_``) in the
namespace of every module whose dotted path has no ``_``-prefixed part, kept when the object is
defined in ``supcon`` (re-exported torch/stdlib objects are not ours to document). ``supcon.cli``
is the command line (documented by its ``--help``), not the Python API.

A function or method whose own body raises a ``ValueError`` subclass (read from its syntax tree,
the exception class resolved in its module) must say "Raises" in its docstring; for
``__init__``/``__post_init__`` the class docstring may say it. Raises that happen inside helpers
are not traced (that cannot be done without false positives), so the entry points' docstrings
are also checked for naming every argument.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import inspect
import re
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import supcon

PACKAGE_DIR = Path(supcon.__file__).parent
NOT_API = {"supcon.cli"}  # the command line, documented by its --help
NEVER_IMPORT = {"supcon.__main__"}  # importing it runs the CLI


def _all_module_names() -> list[str]:
    """Dotted names of every module under supcon/, found on disk: every ``.py`` file, so a folder
    that lacks its ``__init__.py`` is still checked (``pkgutil.walk_packages`` would skip it)."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ["supcon", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return [n for n in names if n not in NEVER_IMPORT]


ALL_MODULES = _all_module_names()
MODULES = [  # the public API's modules: no "_"-prefixed part
    n for n in ALL_MODULES if n not in NOT_API and not any(p.startswith("_") for p in n.split("."))
]


def _ours(obj) -> bool:
    module = str(getattr(obj, "__module__", None) or "")
    return module == "supcon" or module.startswith("supcon.")


def _own_doc(obj) -> str:
    """The object's own docstring; "" when absent or made up by ``@dataclass`` (its signature)."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc.startswith(obj.__name__ + "("):
        return ""
    return doc


def _inherited_doc(cls: type, name: str) -> str:
    """The docstring of ``name`` on a supcon base class it overrides (documented there once)."""
    for base in cls.__mro__[1:]:
        if _ours(base) and name in vars(base):
            doc = _own_doc(_unwrap(vars(base)[name]))
            if doc:
                return doc
    return ""


def _unwrap(member):
    if isinstance(member, (staticmethod, classmethod)):
        return member.__func__
    return member


def _public_objects() -> dict[str, object]:
    """``qualified name -> object`` for every public function and class defined in supcon."""
    found: dict[str, object] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if name.startswith("_") or isinstance(obj, ModuleType):
                continue
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and _ours(obj):
                found.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return found


def _undocumented(objects: dict[str, object]) -> list[str]:
    """Qualified names of the objects (and their public methods) that have no docstring."""
    missing = []
    for qualname, obj in sorted(objects.items()):
        if not _own_doc(obj):
            missing.append(qualname)
        if not inspect.isclass(obj):
            continue
        for name, member in vars(obj).items():
            member = _unwrap(member)
            if name.startswith("_") or not inspect.isfunction(member):
                continue  # dunders, private helpers, properties and data fields
            if not _own_doc(member) and not _inherited_doc(obj, name):
                missing.append(f"{qualname}.{name}")
    return missing


def _raised_value_errors(func) -> list[str]:
    """Names of the ValueError subclasses that ``func``'s own body raises (``raise X(...)``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return []
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(exc, ast.Name):
            cls = func.__globals__.get(exc.id, getattr(builtins, exc.id, None))
            if inspect.isclass(cls) and issubclass(cls, ValueError):
                names.append(exc.id)
    return names


def _functions_and_methods(objects: dict[str, object]):
    """``(qualname, function, docstrings that may document its raises)`` for every public
    function, and every method of a public class (``__init__``/``__post_init__`` included)."""
    for qualname, obj in sorted(objects.items()):
        if not inspect.isclass(obj):
            yield qualname, obj, [_own_doc(obj)]
            continue
        for name, member in vars(obj).items():
            member = _unwrap(member)
            if not inspect.isfunction(member):
                continue
            if name in ("__init__", "__post_init__"):
                yield f"{qualname}.{name}", member, [_own_doc(obj), _own_doc(member)]
            elif not name.startswith("_"):
                yield f"{qualname}.{name}", member, [_own_doc(member), _inherited_doc(obj, name)]


def _raises_undocumented(objects: dict[str, object]) -> list[str]:
    out = []
    for qualname, func, docs in _functions_and_methods(objects):
        raised = _raised_value_errors(func)
        if raised and not any("Raises" in doc for doc in docs):
            out.append(f"{qualname} (raises {', '.join(sorted(set(raised)))})")
    return out


def test_every_module_imports():
    assert {"supcon.losses._tiled", "supcon.cli", "supcon.engine.train_job"} <= set(ALL_MODULES)
    assert "supcon.losses" in MODULES and "supcon.losses._tiled" not in MODULES
    for name in ALL_MODULES:
        importlib.import_module(name)


def test_public_api_has_docstrings():
    missing = _undocumented(_public_objects())
    assert not missing, "public objects without a docstring:\n  " + "\n  ".join(missing)


def test_checker_sees_what_it_should():
    """The collector finds classes, functions and methods, and skips private and foreign ones."""
    objects = _public_objects()
    assert "supcon.losses.supcon.supcon_loss" in objects
    assert "supcon.losses.supcon.SupConLoss" in objects
    assert "supcon.methods.base.ContrastiveModel" in objects  # re-exported by supcon.methods
    assert all(q.startswith("supcon.") for q in objects)  # no torch/stdlib re-exports
    assert not any(q.split(".")[-1].startswith("_") for q in objects)

    class Bare:  # a public class of ours with an undocumented method must be reported
        def run(self):
            return 1

    class Documented:
        """Has a docstring."""

        @staticmethod
        def make():
            """So does this."""

        def _private(self):
            return 2

    Bare.__module__ = Documented.__module__ = "supcon.fake"
    found = _undocumented({"supcon.fake.Bare": Bare, "supcon.fake.Documented": Documented})
    assert found == ["supcon.fake.Bare", "supcon.fake.Bare.run"]


def test_raising_functions_document_it():
    missing = _raises_undocumented(_public_objects())
    assert not missing, "raise a ValueError but their docstring has no Raises:\n  " + "\n  ".join(
        missing
    )


class _SubclassError(ValueError):
    """A ValueError subclass, as DataError and ConfigError are."""


def test_raises_checker_on_known_cases():
    """The syntax-tree check sees direct raises of ValueError subclasses and nothing else."""

    def bad(x):
        """Doc without the section."""
        if x:
            raise ValueError("x")

    def good(x):
        """Doc.

        Raises:
            ValueError: when x.
        """
        raise ValueError("x")

    def other(x):
        """Raises nothing of interest (a RuntimeError, a bare re-raise)."""
        try:
            raise RuntimeError("x")
        except RuntimeError:
            raise

    def sub():
        """Doc."""
        raise _SubclassError("x")

    assert _raised_value_errors(bad) == ["ValueError"]
    assert _raised_value_errors(other) == []
    assert _raised_value_errors(sub) == ["_SubclassError"]
    found = _raises_undocumented({"m.bad": bad, "m.good": good, "m.other": other})
    assert found == ["m.bad (raises ValueError)"]


# Core entry points: their docstring must name every argument (and the class ones, their
# constructor's), so a reader of help() sees each one explained.
ENTRY_POINTS = [
    ("supcon.losses", "supcon_loss"),
    ("supcon.losses", "SupConLoss"),
    ("supcon.weights", "load_encoder"),
    ("supcon.weights", "save_encoder"),
    ("supcon.data", "build_loader"),
    ("supcon.data", "load_dataset"),
    ("supcon.data", "build_transform"),
    ("supcon.data", "EpochBatchSampler"),
    ("supcon.data", "MultiView"),
    ("supcon.data", "AugmentedDataset"),
    ("supcon.engine.train_job", "run_training"),
    ("supcon.engine.loop", "train_loop"),
    ("supcon.methods", "ContrastiveMethod"),
    ("supcon.methods.gradcache", "cached_backward"),
    ("supcon.engine.linear", "fit_linear"),
    ("supcon.methods", "create_method"),
    ("supcon.methods", "SupCon"),
    ("supcon.methods", "SimCLR"),
    ("supcon.methods", "MemorySupCon"),
    ("supcon.losses", "queue_supcon_loss"),
    ("supcon.models", "create_encoder"),
    ("supcon.models", "ProjectionHead"),
    ("supcon.config", "build_config"),
    ("supcon.eval", "expected_calibration_error"),
    ("supcon.eval", "knn_predict"),
    ("supcon.eval", "corrupt"),
    ("supcon.eval", "corruption_errors"),
    ("supcon.workflows", "evaluate_run"),
    ("supcon.workflows", "run_compare"),
    ("supcon.workflows", "run_sweep"),
]


def _argument_names(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(target).parameters.values()
    skip = {"self", "cls"}
    return [p.name for p in params if p.name not in skip and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


@pytest.mark.parametrize(("module", "name"), ENTRY_POINTS, ids=[n for _, n in ENTRY_POINTS])
def test_entry_point_docstrings_name_their_arguments(module, name):
    obj = getattr(importlib.import_module(module), name)
    doc = _own_doc(obj)
    if inspect.isclass(obj):
        doc += "\n" + _own_doc(obj.__init__)
    unnamed = [a for a in _argument_names(obj) if not re.search(rf"\b{re.escape(a)}\b", doc)]
    assert not unnamed, f"{module}.{name}: docstring does not mention {unnamed}"
