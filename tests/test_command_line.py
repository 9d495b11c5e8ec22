"""The command line is generated from the option classes (supcon/command_line.py): their field
docstrings are the help, their defaults the flags' defaults, and the "reproduce this" command is
rebuilt from the same objects; `supcon train` is a caller of supcon.train."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from supcon import cli
from supcon.command_line import add_flags, field_docs, from_flags, from_text, to_flags, to_text
from supcon.workflows import EvalOptions
from supcon.workflows.controlled import Controls
from supcon.workflows.eval_options import RUN_ONLY
from supcon.workflows.study import CLAIMS, ClaimOptions

ROOT = Path(__file__).resolve().parents[1]


def _parser(cls, skip=()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_flags(parser, cls, skip=skip)
    return parser


@pytest.mark.parametrize("cls", [EvalOptions, Controls, ClaimOptions], ids=lambda c: c.__name__)
def test_no_flag_gives_the_class_defaults(cls):
    assert from_flags(cls, _parser(cls).parse_args([])) == cls()
    assert to_flags(cls()) == []


@pytest.mark.parametrize("obj", [
    Controls(lr_grid=(0.5, 1.0), temperature_grid=(0.07,), baseline_augmentations=(), budget="passes",
             select_epochs=2, unreliable_below=2.5, record=Path("rec"), commit=True),
    EvalOptions(corruptions=(), severities=(1, 3), knn_k=5, knn_temperature=0.07, embedding="none", seed=7,
                device="cpu", data="digits", reference="runs/ref"),
    EvalOptions(corruptions=("fog", "contrast"), corruption_samples=100),
    ClaimOptions(claims=("accuracy", "stability"), seeds=5, long_factor=2, stability_epochs=1),
], ids=lambda o: type(o).__name__)
def test_the_flags_of_an_object_parse_back_to_it(obj):
    assert from_flags(type(obj), _parser(type(obj)).parse_args(to_flags(obj))) == obj


def test_the_reproduce_flags_are_written_as_a_user_types_them():
    controls = Controls(lr_grid=(0.5, 1.0), baseline_augmentations=(), select_epochs=2, unreliable_below=2.5,
                        record=Path("rec"), commit=True)
    assert to_flags(controls) == ["--lr-grid", "0.5,1", "--baseline-augmentation", "none", "--select-epochs",
                                  "2", "--unreliable-below", "2.5", "--record", "rec", "--commit"]
    options = EvalOptions(corruptions=(), severities=(1, 3), knn_temperature=0.07, seed=7, device="cpu")
    assert to_flags(options, skip=(*RUN_ONLY, "device")) == ["--corruptions", "none", "--severities", "1,3",
                                                             "--knn-temperature", "0.07", "--eval-seed", "7"]
    assert to_flags(ClaimOptions(seeds=5, stability_epochs=2)) == ["--claim-seeds", "5", "--stability-epochs", "2"]


def test_values_as_text_and_back():
    assert [to_text(v) for v in (0.1, 5.0, 1e-5, 0.123456789, (1, 2), ())] == [
        "0.1", "5", "1e-05", "0.123456789", "1,2", "none"]
    assert to_text(None, optional=True) == "all" and to_text(CLAIMS, every=CLAIMS) == "all"
    assert from_text("x", "all", str, optional=True) is None and from_text("x", "none", str) == ()
    assert from_text("claims", "all", str, every=CLAIMS) == CLAIMS
    with pytest.raises(ValueError, match=r"^lr_grid must be numbers like 0.05,0.1, got 'fast'$"):
        from_text("lr_grid", "fast", float, example=(0.05, 0.1))


def test_the_field_docstrings_are_the_help():
    parser = cli._subparsers(cli.build_parser())["study"]
    helps = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings}
    for cls, skip in ((EvalOptions, RUN_ONLY), (Controls, ()), (ClaimOptions, ())):
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
            if flag is None or f.name in skip:
                continue
            assert helps[flag].startswith(docs[f.name].replace("``", "")[:15]), flag
    assert helps["--eval-seed"].startswith("Seed of the subsamples") and "--seed" not in helps


def test_a_switch_must_default_to_off_and_every_flag_needs_a_docstring():
    @dataclasses.dataclass
    class On:
        fast: bool = True
        """Go fast."""

    @dataclasses.dataclass
    class Mute:
        size: int = 1

    for cls in (On, Mute):
        with pytest.raises(TypeError):
            add_flags(argparse.ArgumentParser(), cls)


def test_the_parser_is_built_and_train_parsed_without_torch():
    code = ("import sys; from supcon import cli; p = cli.build_parser(); "
            "a = cli._parse(p, ['train', '--out', 'x', '--epochs', '2', 'optim.lr=0.2']); "
            "print(a.epochs, a.overrides, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.split() == ["2", "['optim.lr=0.2']", "False"], done.stderr


def test_cli_is_small():
    assert len((ROOT / "supcon" / "cli.py").read_text().splitlines()) < 300


def test_train_is_a_caller_of_supcon_train(tmp_path, monkeypatch):
    """The CLI neither joins a process group nor looks up a saved config itself: supcon.train does."""
    import supcon.api
    from supcon import distributed

    calls = []
    monkeypatch.setattr(supcon.api, "train", lambda **kw: calls.append(kw) or {"method": kw["config"].method})
    monkeypatch.setattr(distributed, "init_from_env", lambda *a, **k: pytest.fail("the CLI joined a group"))
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--data", "digits", "--epochs", "2",
                     "train.batch_size=64", "--no-progress"]) == 0
    (call,) = calls
    assert (call["config"].data.name, call["config"].train.epochs, call["config"].train.batch_size) == ("digits", 2, 64)
    assert call["out"] == tmp_path / "run" and call["resume"] is False
