"""The whole `supcon train` job: data + model + method -> pre-training -> linear stage -> results.

Stage 1 trains the method's model (SupCon/SimCLR: encoder + projection head; CE: encoder +
classifier) with the shared loop, checkpointing atomically every epoch or K epochs (and every K steps).
Stage 2 (contrastive methods) fits a linear classifier on the frozen encoder's representations
and picks its epoch on the validation split; CE is evaluated with its own classifier. Test
accuracy is computed once, at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .. import distributed as dist
from .. import run_folder
from ..config import Config, save_config
from ..data import Splits, to_device
from ..data.text import TEXT
from ..weights import save_encoder
from .checkpoint import (
    CheckpointError,
    check_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .components import Components, build, fit_batch, load_splits
from .final_eval import final_evaluation
from .linear import topk_accuracy
from .logger import MetricsLogger
from .loop import LoopSpec, Position, train_loop
from .optim import build_optimizer, peak_lr
from .progress import bars_shown, progress_bar

log = logging.getLogger("supcon")


def run_training(cfg: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = False,
                 on_checkpoint: Callable[[Position], None] | None = None, test: bool = True,
                 encoder: nn.Module | None = None, splits: Splits | None = None) -> dict:
    """Run the whole job into ``out_dir`` and return the results (also written as results.json).

    Args:
        cfg: a resolved, validated config (:func:`supcon.config.build_config`).
        out_dir: the run folder (created); receives config.yaml, metrics.jsonl, tensorboard/,
            checkpoint.pt, encoder.safetensors + encoder.json, classifier.safetensors and
            results.json (only the main process writes).
        resume: continue from ``out_dir/checkpoint.pt``; the config must equal the saved one
            (``data.num_workers`` may differ) and so must the number of processes.
        progress: show tqdm progress bars where stderr is a terminal or a notebook shows them as
            widgets (else, and with False, a log line every ~10% of an epoch and one per epoch).
        on_checkpoint: called on every process with the position right after each stage-1
            checkpoint (every K steps and at the checkpointed epochs' ends); an exception raised there stops the run
            as an interruption at that point would (how the tests interrupt a run).
        test: evaluate on the test split at the end; False (model selection) never reads it, and
            the results have no ``test_top1``/``test_top5``.
        encoder, splits: your own encoder module and data splits instead of the ones ``cfg``
            names (:func:`build`).

    Returns:
        ``test_top1``, ``test_top5`` (with more than 5 classes), ``val_top1`` (percent),
        ``linear_best_epoch`` (contrastive methods), ``method``, ``data``, ``epochs``, ``steps``,
        ``encoder``, ``seed`` and ``train_time_s``.

    Raises:
        RunError: ``out_dir`` already holds a run and ``resume`` is False
            (:func:`supcon.run_folder.check_unused`).
        CheckpointError: ``resume`` without a checkpoint, with another config or number of
            processes, or with an unreadable checkpoint.
        ValueError: anything :func:`build` rejects (data, device), fewer than 2 training images
            per process. A ``train.batch_size`` larger than the training split is not an error: it
            is lowered to fit (:func:`fit_batch`, logged) and config.yaml holds the lowered value.
        NonFiniteLossError: the loss became NaN or inf (the last checkpoint is kept).
    """
    out = Path(out_dir)
    ckpt_path = out / run_folder.CHECKPOINT
    if not resume:
        run_folder.check_unused(out)
    splits = load_splits(cfg) if splits is None else splits
    # a batch the training split cannot fill is lowered, before the resume check and config.yaml:
    # the saved config is the one that trains, and the original setting resumes it
    cfg = fit_batch(cfg, len(splits.train), dist.world_size())
    state = _resume_state(cfg, out, ckpt_path) if resume else None
    dist.barrier()  # every rank has looked at the folder before rank 0 writes to it
    c = build(cfg, encoder, splits)
    logger = MetricsLogger(out if dist.is_main() else None)
    if dist.is_main():
        save_config(cfg, out / run_folder.CONFIG)
    started = time.perf_counter()
    try:
        position = _pretrain(cfg, c, state, ckpt_path, logger, progress and bars_shown(), on_checkpoint)
        encoder = c.model.encoder
        if dist.is_main():
            save_encoder(encoder, out, _encoder_meta(cfg, c))
        results = final_evaluation(cfg, c.splits, c.model, c.method.multi_view, c.device, logger, test)
    finally:
        logger.close()
    results.update(method=cfg.method, data=cfg.data.name, epochs=cfg.train.epochs, steps=position.step,
                   encoder=cfg.model.encoder, seed=cfg.train.seed,
                   train_time_s=round(time.perf_counter() - started, 1))
    if dist.is_main():
        run_folder.write_results(out, results)
    return results


def _resume_state(cfg: Config, out: Path, ckpt_path: Path) -> dict:
    if not run_folder.has_checkpoint(out):
        raise CheckpointError(f"resume=True: no checkpoint in {out}; run without resume=True to start")
    state = load_checkpoint(ckpt_path)
    check_resumable(state, cfg.to_dict(), dist.world_size(), out)
    return state


def _pretrain(cfg, c: Components, state, ckpt_path, logger, progress, on_checkpoint) -> Position:
    lr = peak_lr(cfg.optim, cfg.train.batch_size * dist.world_size())
    optimizer = build_optimizer(c.model, cfg.optim, lr)
    probe_opt = torch.optim.SGD(c.probe.parameters(), lr=0.1, momentum=0.9) if c.probe else None
    scaler = torch.amp.GradScaler(c.device.type, enabled=cfg.train.precision == "fp16")
    position = Position()
    if state is not None:
        position = _restore(state, c, optimizer, probe_opt, scaler)
        log.info("resuming at epoch %d, batch %d (step %d)", position.epoch + 1, position.batch, position.step)
    steps = len(c.loader)
    spec = LoopSpec(epochs=cfg.train.epochs, steps_per_epoch=steps, peak_lr=lr,
                    warmup_steps=round(cfg.optim.warmup_epochs * steps), grad_clip=cfg.optim.grad_clip,
                    precision=cfg.train.precision, device=c.device)
    noun = "texts" if c.splits.info.modality == TEXT else "images"  # the logs' words for a sample
    rate = "texts/s" if noun == "texts" else "img/s"
    log.info("%s on %s: %d train / %d val / %d test %s, %d steps/epoch, batch %d x %d view(s), lr %.4g",
             cfg.method, cfg.data.name, len(c.splits.train), len(c.splits.val), len(c.splits.test), noun, steps,
             cfg.train.batch_size * dist.world_size(), cfg.data.n_views, lr)
    _log_scale(cfg, lr, noun)
    micro = cfg.train.micro_batch_size

    def step_fn(batch):
        images, labels = to_device(batch, c.device, c.augment)
        # get_scale() waits for the GPU: only gradient caching, which does its own backward, needs it
        scale = scaler.get_scale() if scaler.is_enabled() and micro is not None else 1.0
        out = c.method(c.train_model, images, labels, micro_batch_size=micro, grad_scale=scale)
        if c.probe is not None:
            out["probe_acc"] = _probe_step(c.probe, probe_opt, out["features"], labels)
        return out

    def checkpoint(pos: Position) -> None:
        if dist.is_main():
            save_checkpoint(_state(cfg, c, optimizer, probe_opt, scaler, pos), ckpt_path)
        if on_checkpoint is not None:
            on_checkpoint(pos)

    report_every = max(1, steps // 10)

    def on_step(pos: Position, metrics: dict) -> None:
        if pos.step % 10 == 0:
            logger.log("pretrain", pos.step, metrics)
        if not progress and pos.batch % report_every == 0 and pos.batch < steps:
            # Without a progress bar (logs, CI, nohup), a line every ~10% of an epoch.
            eta = (steps - pos.batch) * cfg.train.batch_size / max(metrics["images_per_s"], 1e-9)
            log.info("  epoch %d step %d/%d  loss %.4f  lr %.4g  %.0f %s  epoch ETA %.0fs", pos.epoch + 1,
                     pos.batch, steps, metrics["loss"], metrics["lr"], metrics["images_per_s"], rate, eta)
        every = cfg.train.checkpoint_every_steps
        if every and pos.step % every == 0 and pos.batch < steps:
            checkpoint(pos)

    def on_epoch(pos: Position, summary: dict) -> None:
        logger.log("pretrain_epoch", pos.step, {"epoch": pos.epoch, **summary})
        log.info("epoch %d/%d  loss %.4f  %s  %.0f %s  %.1fs", pos.epoch, cfg.train.epochs, summary["loss"],
                 f"probe acc {summary['probe_acc']:.1f}%" if "probe_acc" in summary else "",
                 summary["images_per_s"], rate, summary["epoch_time_s"])
        if pos.epoch % cfg.train.checkpoint_every_epochs == 0 or pos.epoch == cfg.train.epochs:
            checkpoint(pos)

    return train_loop(c.model, step_fn, _epoch_batches(c), optimizer, spec, position, scaler=scaler,
                      on_step=on_step, on_epoch=on_epoch, progress=progress_bar if progress else None, stage="pretrain",
                      after_step=c.method.after_step)


def _log_scale(cfg: Config, lr: float, noun: str) -> None:
    """State how the global batch and the learning rate follow from the config and world size."""
    world, batch = dist.world_size(), cfg.train.batch_size
    if world > 1:
        log.info("distributed: %d processes x %d %s = global batch %d (gradients averaged, "
                 "contrastive losses over the global batch)%s", world, batch, noun, world * batch,
                 ", SyncBatchNorm" if cfg.train.sync_bn else "")
    if cfg.optim.scale_lr:
        log.info("lr %.4g = optim.lr %.4g x global batch %d / 256", lr, cfg.optim.lr, world * batch)
    else:
        log.info("lr %.4g = optim.lr, not scaled with the global batch %d (optim.scale_lr=false)",
                 lr, world * batch)
    if cfg.train.micro_batch_size is not None:  # validated: contrastive methods only
        log.info("gradient caching: micro-batches of %d %s", cfg.train.micro_batch_size, noun)


def _epoch_batches(c: Components):
    def batches(epoch: int, start: int):
        c.loader.set_epoch(epoch, start_batch=start)
        return iter(c.loader)
    return batches


def _probe_step(probe: nn.Module, optimizer, features: torch.Tensor, labels: torch.Tensor) -> float:
    """One SGD step of the online linear probe on detached features; returns its batch accuracy."""
    with torch.autocast(features.device.type, enabled=False):
        logits = probe(features.detach().float())
        loss = nn.functional.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return topk_accuracy(logits.detach(), labels)


def _state(cfg, c: Components, optimizer, probe_opt, scaler, pos: Position) -> dict:
    return {
        "format": 1,
        "config": cfg.to_dict(),
        "world_size": dist.world_size(),  # resuming with another one is refused
        "position": pos.to_dict(),
        "model": c.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "probe": c.probe.state_dict() if c.probe else None,
        "probe_optimizer": probe_opt.state_dict() if probe_opt else None,
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
    }


def _restore(state: dict, c: Components, optimizer, probe_opt, scaler) -> Position:
    c.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if c.probe is not None and state.get("probe") is not None:
        c.probe.load_state_dict(state["probe"])
        probe_opt.load_state_dict(state["probe_optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return Position(**state["position"])


def _encoder_meta(cfg: Config, c: Components) -> dict:
    info = c.splits.info
    return {"encoder": cfg.model.encoder, "encoder_kwargs": cfg.model.encoder_options, "in_channels": info.channels, "num_features": c.model.encoder.num_features,
            "image_size": info.image_size, "mean": list(info.mean), "std": list(info.std),
            "data": cfg.data.name, "class_names": list(info.class_names), "method": cfg.method,
            "modality": info.modality}

