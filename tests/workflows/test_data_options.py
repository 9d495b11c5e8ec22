"""A folder run with ``data.image_size`` and a relative ``--data``: trained at that size, and
`supcon eval` of it works from another working directory at the same size."""

import json
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from supcon.config import load_config
from supcon.engine.train_job import build
from supcon.workflows.eval_data import load_target
from supcon.workflows.runs import open_run

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}


def _write_folder(root: Path, per_class: int = 16) -> None:
    """40x48 noisy images whose colour is the class (automatic size would be 40)."""
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k}.png")


def test_folder_run_at_image_size_16_evaluates_from_elsewhere(tmp_path, monkeypatch, cli, fast_eval):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    _write_folder(work / "imgs")
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    code, _, err = cli("train", "--method", "supcon", "--data", "./imgs", "--out", "run", "--epochs", "1",
                       "--batch-size", "8", "data.image_size=16", "data.num_workers=0", "linear.epochs=2",
                       "model.encoder_options={widths: [8, 16], blocks: [1, 1], strides: [2, 2]}")
    assert code == 0, err
    run = work / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert Path(saved["data"]["name"]).is_absolute() and Path(saved["data"]["name"]).samefile(work / "imgs")
    assert json.loads((run / "encoder.json").read_text())["image_size"] == 16
    c = build(load_config(run / "config.yaml"))
    c.loader.set_epoch(0)
    images, _ = next(iter(c.loader))
    assert images.shape == (8, 2, 3, 16, 16)  # what the model trained on
    assert c.splits.train.images.shape[-2:] == (16, 16)  # decoded at 16, not at the automatic 40

    monkeypatch.chdir(elsewhere)  # ./imgs does not exist here
    code, _, err = cli("eval", "--run", run, *fast_eval)
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert abs(result["linear"]["top1"] - results["test_top1"]) < 1e-3  # same images as training's test
    target = load_target(open_run(run))
    assert target.info.image_size == 16 and target.splits.test.images.shape[-2:] == (16, 16)
    assert torch.equal(target.splits.test.images, c.splits.test.images)
