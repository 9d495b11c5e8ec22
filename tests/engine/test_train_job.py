"""End-to-end runs of `supcon train` on scikit-learn's digits with a tiny encoder."""

import json

import pytest
import torch
from safetensors.torch import load_file

import supcon
from supcon.config import ConfigError, load_config
from supcon.data import eval_loader, load_dataset
from supcon.engine import train_job
from supcon.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from supcon.engine.loop import NonFiniteLossError
from supcon.run_folder import RunError


@pytest.mark.parametrize("method", ["supcon", "simclr", "ce"])
def test_each_method_runs_the_whole_pipeline(method, tmp_path, tiny_config):
    results = train_job.run_training(tiny_config(method), tmp_path)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == results
    assert {"method", "data", "epochs", "test_top1"} <= results.keys()
    assert results["method"] == method and results["epochs"] == 2
    assert results["test_top1"] > 25.0  # 10 classes: chance is 10%
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "encoder.safetensors", "encoder.json"):
        assert (tmp_path / name).is_file(), name
    assert any((tmp_path / "tensorboard").iterdir())
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
              if r["stage"] == "pretrain_epoch"]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_exported_encoder_round_trips_and_stage_two_left_it_unchanged(tmp_path, tiny_config):
    train_job.run_training(tiny_config("supcon"), tmp_path)
    encoder = supcon.load_encoder(tmp_path)
    trained = {k[len("encoder."):]: v for k, v in load_checkpoint(tmp_path / "checkpoint.pt")["model"].items()
               if k.startswith("encoder.")}
    exported = load_file(str(tmp_path / "encoder.safetensors"))
    assert exported.keys() == trained.keys()
    assert all(torch.equal(exported[k], trained[k]) for k in trained)
    x = torch.randn(3, 1, 32, 32)
    assert encoder(x).shape == (3, encoder.num_features)
    assert not encoder.training


# mid-epoch (step checkpoint), resumed with a DataLoader worker instead of none (allowed: it
# cannot change results), and at an epoch end with the same config
@pytest.mark.parametrize("stop_after, resume_workers", [(1, 1), (3, 0)])
def test_resume_after_interruption_reproduces_the_uninterrupted_run(stop_after, resume_workers, tmp_path,
                                                                    tiny_config, interrupt):
    cfg = tiny_config("supcon", "train.checkpoint_every_steps=7")
    full = train_job.run_training(cfg, tmp_path / "full")
    stop = interrupt(stop_after)
    with pytest.raises(KeyboardInterrupt):
        train_job.run_training(cfg, tmp_path / "cut", on_checkpoint=stop)
    assert stop.positions[-1]["step"] < full["steps"]
    again = tiny_config("supcon", "train.checkpoint_every_steps=7", f"data.num_workers={resume_workers}")
    resumed = train_job.run_training(again, tmp_path / "cut", resume=True)
    drop = ("train_time_s",)
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in full.items() if k not in drop}
    a = load_file(str(tmp_path / "full" / "encoder.safetensors"))
    b = load_file(str(tmp_path / "cut" / "encoder.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_every_k_epochs_and_the_last_and_resumes_from_the_kth(tmp_path, tiny_config, interrupt):
    cfg = tiny_config("supcon", "train.epochs=3", "train.checkpoint_every_epochs=2")
    seen = interrupt(99)  # never stops: lists every checkpoint
    full = train_job.run_training(cfg, tmp_path / "full", on_checkpoint=seen)
    steps = full["steps"] // 3
    assert [(p["epoch"], p["step"]) for p in seen.positions] == [(2, 2 * steps), (3, 3 * steps)]
    stop = interrupt(1)
    with pytest.raises(KeyboardInterrupt):
        train_job.run_training(cfg, tmp_path / "cut", on_checkpoint=stop)
    resumed = train_job.run_training(cfg, tmp_path / "cut", resume=True)  # epoch 3 redone from epoch 2's
    assert {k: v for k, v in resumed.items() if k != "train_time_s"} == \
        {k: v for k, v in full.items() if k != "train_time_s"}
    with pytest.raises(ConfigError, match="train.checkpoint_every_epochs must be >= 1, got 0"):
        tiny_config("supcon", "train.checkpoint_every_epochs=0")


def test_run_folder_misuse_is_refused(tmp_path, tiny_config):
    cfg = tiny_config("ce", "train.epochs=1")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train_job.run_training(cfg, tmp_path, resume=True)
    train_job.run_training(cfg, tmp_path)
    with pytest.raises(RunError, match="already holds a run"):
        train_job.run_training(cfg, tmp_path)
    with pytest.raises(CheckpointError, match="configuration differs"):
        train_job.run_training(tiny_config("ce", "train.epochs=1", "optim.lr=0.25"), tmp_path, resume=True)
    ckpt = tmp_path / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    assert state["world_size"] == 1
    save_checkpoint({**state, "world_size": 2}, ckpt)  # as if written by two torchrun processes
    with pytest.raises(CheckpointError, match="written by 2 process\\(es\\), this run has 1"):
        train_job.run_training(cfg, tmp_path, resume=True)
    save_checkpoint({k: v for k, v in state.items() if k != "world_size"}, ckpt)  # an older checkpoint
    assert train_job.run_training(cfg, tmp_path, resume=True)["steps"] == state["position"]["step"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, tiny_config):
    cfg = tiny_config("ce", "train.checkpoint_every_steps=5")
    real_build = train_job.build

    def build_with_poisoned_method(cfg, *objects):
        c = real_build(cfg, *objects)
        real_method, calls = c.method, []

        def poisoned(model, images, labels, **step_options):
            out = real_method(model, images, labels, **step_options)
            calls.append(1)
            if len(calls) == 8:
                out["loss"] = out["loss"] * float("nan")
            return out

        poisoned.after_step = real_method.after_step  # the rest of the method contract
        c.method = poisoned
        return c

    monkeypatch.setattr(train_job, "build", build_with_poisoned_method)
    with pytest.raises(NonFiniteLossError, match="at step 7"):
        train_job.run_training(cfg, tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["position"]["step"] == 5


def test_image_size_resizes_a_registered_set_in_the_transforms(tiny_config):
    """digits is 32x32 on disk; data.image_size=16 gives 16x16 training and evaluation batches."""
    c = train_job.build(tiny_config("supcon", "data.image_size=16"))
    assert c.splits.info.image_size == 16 and c.splits.train.images.shape[-2:] == (32, 32)
    c.loader.set_epoch(0)
    images, _ = next(iter(c.loader))
    assert images.shape == (64, 2, 1, 16, 16)
    test_images, _ = next(iter(eval_loader(c.splits.test, c.splits.info, batch_size=64, seed=0)))
    # eval transform: antialiased bilinear 32 -> 16 (on uint8: rounded), then normalised
    raw = c.splits.test.images[:4].float()
    small = torch.nn.functional.interpolate(raw, size=16, mode="bilinear", antialias=True).round() / 255
    mean, std = c.splits.info.mean[0], c.splits.info.std[0]
    assert torch.allclose(test_images[:4], (small - mean) / std, atol=1.01 / 255 / std)


def test_fit_batch_takes_the_largest_batch_every_process_can_fill(tiny_config):
    """drop_last keeps only full batches: with n images over P processes the largest batch that
    still gives one step is n // P; a batch that fits, or class-balanced batches (never empty), stay."""
    from supcon.engine.components import fit_batch

    cfg = tiny_config("supcon", "train.batch_size=256", "train.micro_batch_size=128")
    fitted = fit_batch(cfg, 101, world_size=2)
    assert fitted.train.batch_size == 50 and fitted.train.micro_batch_size == 50
    assert cfg.train.batch_size == 256  # the caller's config is left as it was
    assert fit_batch(cfg, 512, world_size=2) is cfg
    balanced = tiny_config("supcon", "train.batch_size=64", "data.per_class=8")
    assert fit_batch(balanced, 20) is balanced
    with pytest.raises(ValueError, match=r"training split \(3 images\) .* 2 process"):
        fit_batch(cfg, 3, world_size=2)


def test_a_batch_larger_than_the_training_split_is_lowered_and_recorded(tmp_path, tiny_config, caplog,
                                                                         interrupt):
    """The batch that trains is the one config.yaml holds, so --resume with the original setting
    (or with the saved file) continues the same run and ends as the uninterrupted one."""
    cfg = tiny_config("supcon", "train.batch_size=5000")
    with caplog.at_level("INFO", logger="supcon"):
        full = train_job.run_training(cfg, tmp_path / "full")
    saved = load_config(tmp_path / "full" / "config.yaml")
    n_train = len(load_dataset("digits", seed=cfg.train.seed).train)
    assert saved.train.batch_size == n_train and full["steps"] == 2  # one full batch per epoch
    lines = [r.getMessage() for r in caplog.records if "train.batch_size" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert f"train.batch_size={n_train}" in lines[0] and "5000" in lines[0]
    stop = interrupt(1)
    with pytest.raises(KeyboardInterrupt):
        train_job.run_training(cfg, tmp_path / "cut", on_checkpoint=stop)
    resumed = train_job.run_training(cfg, tmp_path / "cut", resume=True)
    drop = {"train_time_s"}
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in full.items() if k not in drop}


def test_top5_is_left_out_with_five_classes_or_fewer(tmp_path, tiny_config):
    """With K <= 5 classes every label is among the top 5 scores (top-5 = 100% by construction):
    results.json and the metrics' final record leave it out; digits (10 classes) keeps it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b", "c", "d", "e"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "imgs" / name / f"{i}.png")
    cfg = tiny_config("ce", f"data.name={tmp_path / 'imgs'}", "train.batch_size=8", "train.epochs=1")
    results = train_job.run_training(cfg, tmp_path / "run")
    assert "test_top1" in results and "test_top5" not in results
    assert "test_top5" not in json.loads((tmp_path / "run" / "results.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert not any("test_top5" in r for r in records)
