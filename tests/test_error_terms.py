"""Library errors speak Python (the arguments of the call); the command line's message layer turns
the names into the flags the user typed (tests/test_errors.py checks the command line's lines)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from supcon._cli_messages import ARGUMENT_FLAGS, failure_message, in_flags
from supcon.engine.checkpoint import CheckpointError, check_resumable, load_checkpoint
from supcon.engine.train_job import run_training
from supcon.run_folder import RunError, check_unused, open_config, read_results
from supcon.workflows import StudySpec

PACKAGE = Path(__file__).resolve().parents[1] / "supcon"
# Library modules whose errors once named these flags; none may again.
PYTHON_SPEAKING = [PACKAGE / "run_folder.py", *PACKAGE.joinpath("engine").glob("*.py"),
                   *(PACKAGE / "workflows" / f for f in ("grid.py", "evaluate.py", "eval_data.py", "runs.py")
                     if (PACKAGE / "workflows" / f).is_file())]
FLAGS = ("--resume", "--run", "--methods", "--seeds", "--reference", "--presets")


def _raised_strings(file: Path) -> list[str]:
    """Every string piece inside a ``raise`` statement (and the module-level message constants)."""
    tree = ast.parse(file.read_text())
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    nodes += [n for n in tree.body if isinstance(n, ast.Assign)]
    texts = []
    for node in nodes:
        joined = [j for j in ast.walk(node) if isinstance(j, ast.JoinedStr)]
        parts = {id(c) for j in joined for c in j.values}
        texts += ["".join(c.value if isinstance(c, ast.Constant) else "{}" for c in j.values) for j in joined]
        texts += [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                  and id(c) not in parts]
    return texts


@pytest.mark.parametrize("file", PYTHON_SPEAKING, ids=lambda f: f.name)
def test_library_errors_name_no_flag(file):
    unquoted = [re.sub(r"`[^`]*`", "", s) for s in _raised_strings(file)]  # a quoted command keeps its flags
    assert [s for s in unquoted if any(re.search(rf"{flag}(?![\w-])", s) for flag in FLAGS)] == []


def test_resuming_nothing_names_the_argument(tiny_config, tmp_path):
    with pytest.raises(CheckpointError) as err:
        run_training(tiny_config("ce"), tmp_path / "run", resume=True)
    assert str(err.value) == f"resume=True: no checkpoint in {tmp_path / 'run'}; run without resume=True to start"
    assert in_flags(str(err.value)) == (f"--resume: no checkpoint in {tmp_path / 'run'}; "
                                        "run without --resume to start")


def test_checkpoint_errors_name_the_argument(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"delete it and run without resume=True to start over$"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"^resume=True: the configuration differs"):
        check_resumable({"config": {"method": "ce"}}, {"method": "supcon"}, 1, tmp_path)
    with pytest.raises(CheckpointError, match=r"^resume=True: the checkpoint in .* was written by 2 process"):
        check_resumable({"config": {}, "world_size": 2}, {}, 1, tmp_path)


def test_run_folder_errors_name_the_argument(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(RunError) as err:
        check_unused(tmp_path)
    assert str(err.value) == f"{tmp_path} already holds a run; use resume=True to continue it or choose another out_dir"
    assert in_flags(str(err.value)).endswith("use --resume to continue it or choose another --out")
    with pytest.raises(RunError, match=rf"^folder {tmp_path / 'nowhere'} does not exist$"):
        open_config(tmp_path / "nowhere")
    with pytest.raises(RunError, match=rf"^run_dir {tmp_path} is not a run folder"):
        open_config(tmp_path, what="run_dir")
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(RunError) as err:
        read_results(tmp_path, what="run_dir")
    assert str(err.value).endswith("the run folder is damaged: train it again into a new out_dir")
    assert in_flags(str(err.value)).startswith(f"--run {tmp_path}: results.json is unreadable")
    assert in_flags(str(err.value)).endswith("train it again into a new --out")


@pytest.mark.parametrize(("kwargs", "python", "cli"), [
    ({"methods": ("ce", "moco")}, "methods must name some of", "--methods must name some of"),
    ({"methods": ("ce", "ce")}, "methods names a method twice", "--methods names a method twice"),
    ({"seeds": 0}, "seeds must be >= 1, got 0", "--seeds must be >= 1, got 0"),
    ({"epochs": 0}, "epochs must be >= 1, got 0", "--epochs must be >= 1, got 0"),
])
def test_a_study_names_its_arguments(tmp_path, kwargs, python, cli):
    with pytest.raises(ValueError) as err:
        StudySpec(out=tmp_path, **kwargs)
    assert str(err.value).startswith(python)
    message, code = failure_message(err.value, None)
    assert message.startswith(cli) and code == 2


@pytest.mark.parametrize(("python", "cli"), [
    ("reference /r was trained on 'mnist' but run_dir on 'digits'; mCE needs a reference on the same data",
     "--reference /r was trained on 'mnist' but --run on 'digits'; mCE needs a reference on the same data"),
    ("methods must include ce ... got ['supcon']; add ce or pass presets=True",
     "--methods must include ce ... got ['supcon']; add ce or pass --presets"),
    ("device 'cuda': CUDA is not available on this machine", "--device 'cuda': CUDA is not available on this machine"),
    # left alone: dotted config keys, option values, ordinary words, names that are not the subject
    ("loss.variant=out is for method supcon; data.data_dir /x is not a folder",
     "loss.variant=out is for method supcon; data.data_dir /x is not a folder"),
    ("train.device 'cuda': CUDA is not available", "train.device 'cuda': CUDA is not available"),
    ("the methods of a study and its seeds", "the methods of a study and its seeds"),
    ("resume=Truer", "resume=Truer"),
])
def test_in_flags_turns_argument_names_into_flags(python, cli):
    assert in_flags(python) == cli


def test_a_command_adds_the_flags_of_its_option_fields():
    flags = {"data": "--data", "lr_grid": "--lr-grid", "corruptions": "--corruptions"}
    assert in_flags("lr_grid must be numbers like 0.05,0.1,0.2, got 'fast'", flags).startswith("--lr-grid must")
    assert in_flags("corruptions: unknown ['snow']", flags) == "--corruptions: unknown ['snow']"
    # a word that only looks like a field stays: "data set ..." is not the --data flag
    assert in_flags("data set cifar10 is not on disk", flags) == "data set cifar10 is not on disk"


def test_every_argument_has_a_flag_of_its_own_spelling():
    assert all(flag.startswith("--") and " " not in flag for flag in ARGUMENT_FLAGS.values())
    assert {name: flag for name, flag in ARGUMENT_FLAGS.items() if "_" not in name} == {
        name: "--" + name for name in ARGUMENT_FLAGS if "_" not in name}
