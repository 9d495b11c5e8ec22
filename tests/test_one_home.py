"""Every default and choice list has one home, and every reader agrees with it.

The loss's options live in ``supcon/losses/options.py`` (torch-free, so the config reads them
before torch is imported): the loss, the methods, the config and docs/loss.md are held to it here.
Names that once had several homes (``METHODS``, ``TEST_SEED``, the ``object:`` prefix) are
defined once.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from supcon import config
from supcon.config import METHOD_DEFAULTS, METHODS, LossConfig, ModelConfig, build_config
from supcon.losses import SupConLoss, check_options, options, queue_supcon_loss, supcon_loss
from supcon.methods import (
    CrossEntropySupCon,
    MemorySupCon,
    SimCLR,
    SupCon,
    create_method,
    list_methods,
)
from supcon.models import ProjectionHead

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "supcon"
LOSS_DOC = ROOT / "docs" / "loss.md"
TRAINING_DOC = ROOT / "docs" / "training.md"

DEFAULTS = {"temperature": options.TEMPERATURE, "variant": options.VARIANT,
            "contrast_mode": options.CONTRAST_MODE, "label_overlap": options.LABEL_OVERLAP,
            "impl": options.IMPL, "positives_cap": None}
CHOICES = {"variant": options.VARIANTS, "contrast_mode": options.CONTRAST_MODES,
           "label_overlap": options.LABEL_OVERLAPS, "impl": options.IMPLS}


def _fmt(value) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def _signature_text(name: str, fn) -> str:
    """``name(a, b=None, *, c="x")`` as docs/loss.md writes a signature."""
    parts, star = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={_fmt(p.default)}")
    return f"{name}({', '.join(parts)})"


def test_the_options_module_and_the_config_import_no_torch():
    code = ("import sys, supcon.losses, supcon.losses.options, supcon.config, supcon.cli; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('supcon.losses.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['supcon.losses.options']"


@pytest.mark.parametrize("fn", [supcon_loss, SupConLoss, queue_supcon_loss, check_options, SupCon, MemorySupCon,
                                CrossEntropySupCon], ids=lambda f: f.__name__)
def test_every_signature_takes_the_loss_defaults(fn):
    params = inspect.signature(fn).parameters
    shared = {name: params[name].default for name in DEFAULTS if name in params}
    assert shared and shared == {name: DEFAULTS[name] for name in shared}


def test_simclr_and_the_config_take_their_defaults_from_the_options():
    assert inspect.signature(SimCLR).parameters["temperature"].default == options.SIMCLR_TEMPERATURE
    assert METHOD_DEFAULTS["simclr"]["loss.temperature"] == options.SIMCLR_TEMPERATURE
    assert {m: d["loss.temperature"] for m, d in METHOD_DEFAULTS.items() if m != "simclr"} == {
        m: options.TEMPERATURE for m in METHODS if m != "simclr"}
    loss = LossConfig()
    assert (loss.variant, loss.contrast_mode, loss.label_overlap, loss.momentum) == (
        options.VARIANT, options.CONTRAST_MODE, options.LABEL_OVERLAP, options.QUEUE_MOMENTUM)
    assert inspect.signature(MemorySupCon).parameters["momentum"].default == options.QUEUE_MOMENTUM
    heads = inspect.signature(ProjectionHead).parameters["kind"].default, ModelConfig().head
    assert heads == (config.HEAD_KINDS[0],) * 2


@pytest.mark.parametrize(("key", "valid"), [("loss.variant", options.VARIANTS),
                                            ("loss.contrast_mode", options.CONTRAST_MODES),
                                            ("loss.label_overlap", options.LABEL_OVERLAPS),
                                            ("model.head", config.HEAD_KINDS)])
def test_the_config_accepts_exactly_the_choices_the_loss_and_head_take(key, valid):
    for value in valid:
        assert build_config(None, dotted=[f"{key}={value}"]) is not None
    with pytest.raises(config.ConfigError, match=f"valid: {', '.join(valid)}$"):
        build_config(None, dotted=[f"{key}=nonsense"])


def test_no_loss_option_default_is_spelled_as_a_literal():
    """The loss, the methods, the config and the loss-gradient analysis name the options' defaults;
    only supcon/losses/options.py spells them."""
    names = {*DEFAULTS, "momentum", "head", "kind"} - {"positives_cap"}
    found = []
    for file in [*PACKAGE.joinpath("losses").glob("*.py"), *PACKAGE.joinpath("methods").glob("*.py"),
                 PACKAGE / "config.py", PACKAGE / "eval" / "gradients.py", PACKAGE / "models" / "heads.py"]:
        if file.name == "options.py":
            continue
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                pairs = [*zip(args.args[len(args.args) - len(args.defaults):], args.defaults, strict=True),
                         *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
                found += [f"{file.name}:{a.lineno} {a.arg}" for a, d in pairs
                          if a.arg in names and isinstance(d, ast.Constant) and d.value is not None]
            elif isinstance(node, ast.ClassDef) and node.name == "LossConfig":
                found += [f"{file.name}:{s.lineno} {s.target.id}" for s in node.body
                          if isinstance(s, ast.AnnAssign) and s.target.id in names
                          and isinstance(s.value, ast.Constant) and s.value.value is not None]
    assert found == []


def test_methods_hold_a_supcon_loss_with_their_options():
    method = create_method("supcon", temperature=0.2, variant="in", contrast_mode="one", positives_cap=3)
    loss = method.criterion
    assert isinstance(loss, SupConLoss)
    assert (loss.temperature, loss.variant, loss.contrast_mode, loss.positives_cap) == (0.2, "in", "one", 3)
    z = torch.nn.functional.normalize(torch.randn(6, 2, 8, generator=torch.Generator().manual_seed(0)), dim=2)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    simclr = create_method("simclr", temperature=0.3)
    assert torch.equal(simclr.loss(z, labels), supcon_loss(z, temperature=0.3))  # labels ignored
    supcon = create_method("supcon", temperature=0.3, variant="in")
    assert torch.equal(supcon.loss(z, labels), supcon_loss(z, labels, temperature=0.3, variant="in"))


def test_a_supcon_loss_refuses_a_bad_option_when_it_is_built():
    for bad in ({"variant": "middle"}, {"contrast_mode": "some"}, {"temperature": 0.0},
                {"label_overlap": "cosine"}, {"positives_cap": 0}, {"gather": "yes"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SupConLoss(**bad)


def test_docs_loss_md_shows_the_defaults_and_choices_of_the_code():
    text = LOSS_DOC.read_text()
    block = text[text.index("```text\nsupcon_loss("):]
    block = " ".join(block[len("```text\n"): block.index("```", 3)].split())
    assert _signature_text("supcon_loss", supcon_loss) + " -> Tensor" in block
    assert _signature_text("SupConLoss", SupConLoss) in block
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")[2:4]
            for line in text.splitlines() if line.startswith("| `")}
    for name, default in DEFAULTS.items():
        shown, meaning = (cell.strip() for cell in rows[name])
        assert shown == f"`{_fmt(default)}`", name
        assert all(f'"{choice}"' in meaning for choice in CHOICES.get(name, ())), name


def test_docs_training_md_lists_the_method_defaults():
    text = TRAINING_DOC.read_text()
    section = text[text.index("| method | `loss.temperature`"):]
    header, _, *rows = section[: section.index("\n\n")].splitlines()
    keys = [cell.strip().strip("`") for cell in header.split("|")[2:-1]]
    shown = {cells[0]: cells[1:] for cells in ([c.strip() for c in row.split("|")[1:-1]] for row in rows)}
    expected = {m: ["(unused)" if m == "ce" and k == "loss.temperature" else str(d[k]) for k in keys]
                for m, d in METHOD_DEFAULTS.items()}
    assert shown == expected


def test_the_method_registry_names_the_configs_methods():
    assert list_methods() == list(METHODS)


def _module_assignments(name: str) -> list[str]:
    """Modules of the package that assign ``name`` at their top level."""
    found = []
    for file in PACKAGE.rglob("*.py"):
        for node in ast.parse(file.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found.append(str(file.relative_to(PACKAGE)))
    return found


@pytest.mark.parametrize(("name", "home"), [("METHODS", "config.py"), ("TEST_SEED", "data/base.py"),
                                            ("OBJECT_PREFIX", "checks.py"), ("HEAD_KINDS", "config.py")])
def test_a_name_is_defined_in_one_module(name, home):
    assert _module_assignments(name) == [home]


def test_the_object_prefix_is_spelled_once():
    spelled = [str(f.relative_to(PACKAGE)) for f in PACKAGE.rglob("*.py")
               if re.search(r"""["']object:""", f.read_text())]
    assert spelled == ["checks.py"]
