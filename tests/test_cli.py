"""The README's commands as a user types them, and `--resume` with nothing but `--out`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from supcon import cli
from supcon.config import build_config, save_config
from supcon.data import load_dataset
from supcon.engine import train_job

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = ["--data", "digits", "--method", "supcon", "--workers", "0", "--batch-size", "32", "--epochs", "1",
        "model.encoder_options={widths: [8], blocks: [1], strides: [2]}", "linear.epochs=1"]


def readme_commands() -> list[list[str]]:
    """argv of every `supcon ...` / `torchrun ... -m supcon.cli ...` line in the README's bash blocks."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["supcon"]:
                commands.append(words[1:])
            elif words[:1] == ["torchrun"]:
                commands.append(words[words.index("supcon.cli") + 1:])
    return commands


def test_readme_has_the_commands_a_user_needs():
    verbs = [c[0] for c in readme_commands()]
    assert {"train", "eval", "compare", "sweep"} <= set(verbs)
    assert "--resume" in sum(readme_commands(), [])


@pytest.mark.parametrize("argv", readme_commands(), ids=" ".join)
def test_readme_command_parses_and_its_config_builds(argv, monkeypatch, tmp_path):
    """Every README command is accepted as written: options parse, train configs validate."""
    monkeypatch.chdir(tmp_path)
    args = cli._parse(cli.build_parser(), argv)  # as main() parses: overrides may sit anywhere
    if args.command != "train":
        if args.command in ("compare", "sweep"):
            cli.study_spec(args)  # checks the method names and --device
        return
    seen = {}
    monkeypatch.setattr(train_job, "run_training",
                        lambda cfg, out, **kw: seen.update(cfg=cfg, resume=kw["resume"]) or {"method": cfg.method})
    if args.resume:  # a run to continue: its config.yaml is what `--resume` alone picks up
        (tmp_path / args.out).mkdir(parents=True)
        save_config(build_config(None), tmp_path / args.out / "config.yaml")
    assert cli.main(argv) == 0
    assert seen["resume"] == args.resume


def test_resume_with_only_out_continues_the_saved_config(tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert cli.main(["train", "--out", str(run), *TINY, "--no-progress"]) == 0
    seen = {}
    monkeypatch.setattr(train_job, "run_training", lambda cfg, out, **kw: seen.update(cfg=cfg) or {"method": cfg.method})
    assert cli.main(["train", "--out", str(run), "--resume"]) == 0
    saved = build_config(str(run / "config.yaml"))
    assert seen["cfg"].to_dict() == saved.to_dict()
    assert seen["cfg"].data.name == "digits" and seen["cfg"].train.batch_size == 32
    # explicit options still apply on top of the saved file (and the pipeline then checks them)
    assert cli.main(["train", "--out", str(run), "--resume", "optim.lr=0.2"]) == 0
    assert seen["cfg"].optim.lr == 0.2


def test_resume_without_a_saved_config_uses_the_options_given(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(train_job, "run_training", lambda cfg, out, **kw: seen.update(cfg=cfg) or {"method": cfg.method})
    assert cli.main(["train", "--out", str(tmp_path / "new"), "--resume", *TINY]) == 0
    assert seen["cfg"].data.name == "digits"


def _image_folder(root: Path, per_class: int) -> Path:
    """Two classes of ``per_class`` random 16x16 RGB PNGs each under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_the_readme_folder_command_trains_a_folder_smaller_than_the_default_batch(tmp_path, capsys):
    """`supcon train --data FOLDER --out RUN` on 40 images: the default batch (256) is lowered to
    the training split, one line says so (on stderr and in train.log), config.yaml records it."""
    folder, run = _image_folder(tmp_path / "imgs", 20), tmp_path / "run"
    assert "supcon train --data path/to/images --out runs/mine" in README.read_text()
    assert cli.main(["train", "--data", str(folder), "--out", str(run), "--epochs", "1", "--no-progress"]) == 0
    saved = build_config(str(run / "config.yaml")).train.batch_size
    n_train = len(load_dataset(str(folder)).train)
    assert saved == n_train < 256
    said = [line for line in capsys.readouterr().err.splitlines() if "train.batch_size" in line]
    assert said == [f"train.batch_size=256 is larger than the training split ({n_train} images): training "
                    f"with train.batch_size={n_train} (set it with --batch-size or train.batch_size=N)"]
    assert said[0] in (run / "train.log").read_text()
    assert (run / "results.json").is_file()


def test_skipped_files_in_a_folder_are_one_clean_line_each_in_cli_terms(tmp_path, capsys):
    """A broken image and a stray file: one line each on stderr and in train.log, naming
    data.strict=true, with no Python warning text (category, source line)."""
    folder, run = _image_folder(tmp_path / "imgs", 20), tmp_path / "run"
    (folder / "cat" / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("a stray file")
    argv = ["train", "--data", str(folder), "--out", str(run), "--epochs", "1", "--batch-size", "8",
            "--workers", "0", "--no-progress", "linear.epochs=1"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "Warning" not in err and "warn(" not in err, err
    lines = [line for line in err.splitlines() if "unreadable" in line or "non-image" in line]
    assert lines == [f"ignored 1 non-image file(s) under {folder} (first: {folder / 'notes.txt'})",
                     f"skipped 1 unreadable image file(s) under {folder} (first: {folder / 'cat' / 'broken.png'}: "
                     + lines[1].split("broken.png: ", 1)[-1]]
    assert lines[1].endswith("; data.strict=true stops at the first one instead")
    log = (run / "train.log").read_text()
    assert all(line in log for line in lines)
