"""The whole `supcon train` job: data + model + method -> pre-training -> linear stage -> results.

Stage 1 trains the method's model (SupCon/SimCLR: encoder + projection head; CE: encoder +
classifier) with the shared loop, checkpointing atomically every epoch (and every K steps).
Stage 2 (contrastive methods) fits a linear classifier on the frozen encoder's representations
and picks its epoch on the validation split; CE is evaluated with its own classifier. Test
accuracy is computed once, at the end.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from .. import distributed as dist
from ..config import Config, save_config
from ..data import AugmentedDataset, MultiView, build_loader, build_transform, load_dataset
from ..eval.knn import extract_features
from ..methods import create_method
from ..models import LinearClassifier, create_encoder
from ..weights import save_encoder
from .checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    check_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .gradcache import contrastive_step
from .linear import fit_linear, topk_accuracy
from .logger import MetricsLogger
from .loop import LoopSpec, Position, train_loop
from .optim import build_optimizer

log = logging.getLogger("supcon")
CONTRASTIVE = ("supcon", "simclr")


class RunFolderError(ValueError):
    """The output folder cannot be used as asked (e.g. it holds another run and --resume is off)."""


@dataclass
class Components:
    """Everything stage 1 needs, built from a Config."""

    splits: Any
    method: Any
    model: nn.Module
    probe: nn.Module | None
    train_data: AugmentedDataset
    loader: Any
    device: torch.device
    train_model: nn.Module | None = None
    """What the training step calls: ``model`` in DDP under torchrun, else ``model`` itself."""

    def __post_init__(self) -> None:
        if self.train_model is None:
            self.train_model = self.model


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """``train.device`` as a device: ``auto`` is cuda when available, else cpu; under torchrun a
    CUDA device becomes ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: not a device name, or a cuda device that is not there (``what`` names
            the setting in the message).
    """
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ValueError(f"{what} {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{what} {name!r}: CUDA is not available on this machine; use --device cpu")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"{what} {name!r}: only {torch.cuda.device_count()} CUDA device(s) are "
                             "visible; use cuda:0 or check CUDA_VISIBLE_DEVICES")
    if device.type == "cuda" and dist.world_size() > 1:
        return torch.device("cuda", dist.local_rank())  # torchrun: one GPU per process
    return device


def method_options(cfg: Config) -> dict[str, Any]:
    """The ``create_method`` options that ``cfg`` implies for its method (``loss.*`` and
    ``model.head``/``feat_dim``; ``memory``/``momentum`` when ``loss.memory > 0``)."""
    if cfg.method == "ce":
        return {"label_smoothing": cfg.loss.label_smoothing}
    options = {"temperature": cfg.loss.temperature, "head": cfg.model.head, "feat_dim": cfg.model.feat_dim}
    if cfg.method == "supcon":
        options.update(variant=cfg.loss.variant, positives_cap=cfg.loss.positives_cap)
        if cfg.loss.memory:  # the momentum-queue variant
            options.update(memory=cfg.loss.memory, momentum=cfg.loss.momentum)
    return options


def build(cfg: Config) -> Components:
    """Data, model, method and loader for stage 1 (deterministic given ``cfg.train.seed``).

    Raises:
        ValueError: the device is unavailable, ``train.batch_size`` exceeds the training split,
            or the data set, encoder or method rejects its options (DataError, ValueError).
    """
    torch.manual_seed(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    splits = load_dataset(cfg.data.name, data_dir=cfg.data.data_dir, val_fraction=cfg.data.val_fraction,
                          seed=cfg.train.seed, strict=cfg.data.strict, image_size=cfg.data.image_size)
    info = splits.info
    method = create_method(cfg.method, **method_options(cfg))
    encoder = create_encoder(cfg.model.encoder, in_channels=info.channels, **cfg.model.encoder_options)
    model = method.build_model(encoder, info.num_classes).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model = dist.wrap_model(model, device, sync_bn=cfg.train.sync_bn)
    model = dist.unwrap(train_model)  # SyncBatchNorm conversion may replace the root
    probe = None
    if cfg.method in CONTRASTIVE and cfg.train.online_probe:
        probe = LinearClassifier(encoder.num_features, info.num_classes).to(device)
    transform = build_transform(cfg.data.augmentation, info, train=True)
    if cfg.data.n_views > 1 or cfg.method in CONTRASTIVE:
        transform = MultiView(transform, cfg.data.n_views)
    train_data = AugmentedDataset(splits.train, transform, seed=cfg.train.seed)
    loader = build_loader(train_data, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                          seed=cfg.train.seed, per_class=cfg.data.per_class,
                          num_workers=cfg.data.num_workers, rank=dist.rank(), world_size=dist.world_size())
    if len(loader) == 0:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is larger than the training split "
                         f"({len(splits.train)} images); lower it")
    return Components(splits, method, model, probe, train_data, loader, device, train_model)


def run_training(cfg: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = False,
                 test: bool = True) -> dict:
    """Run the whole job into ``out_dir`` and return the results (also written as results.json).

    Args:
        cfg: a resolved, validated config (:func:`supcon.config.build_config`).
        out_dir: the run folder (created); receives config.yaml, metrics.jsonl, tensorboard/,
            checkpoint.pt, encoder.safetensors + encoder.json, classifier.safetensors and
            results.json (only the main process writes).
        resume: continue from ``out_dir/checkpoint.pt``; the config must equal the saved one
            (``data.num_workers`` may differ) and so must the number of processes.
        progress: show tqdm progress bars (else a log line every ~10% of an epoch).
        test: evaluate on the test split at the end; False (model selection) never reads it, and
            the results have no ``test_top1``/``test_top5``.

    Returns:
        ``test_top1``, ``test_top5``, ``val_top1`` (percent), ``linear_best_epoch``
        (contrastive methods), ``method``, ``data``, ``epochs``, ``steps``, ``encoder``,
        ``seed`` and ``train_time_s``.

    Raises:
        RunFolderError: ``out_dir`` already holds a run and ``resume`` is False.
        CheckpointError: ``resume`` without a checkpoint, with another config or number of
            processes, or with an unreadable checkpoint.
        ValueError: anything :func:`build` rejects (data, device, batch size).
        NonFiniteLossError: the loss became NaN or inf (the last checkpoint is kept).
    """
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    state = _start_state(cfg, out, ckpt_path, resume)
    dist.barrier()  # every rank has looked at the folder before rank 0 writes to it
    c = build(cfg)
    logger = MetricsLogger(out if dist.is_main() else None)
    if dist.is_main():
        save_config(cfg, out / "config.yaml")
    started = time.perf_counter()
    try:
        position = _pretrain(cfg, c, state, ckpt_path, logger, progress)
        encoder = c.model.encoder
        if dist.is_main():
            save_encoder(encoder, out, _encoder_meta(cfg, c))
        results = _final_evaluation(cfg, c, logger, progress, test)
    finally:
        logger.close()
    results.update(method=cfg.method, data=cfg.data.name, epochs=cfg.train.epochs, steps=position.step,
                   encoder=cfg.model.encoder, seed=cfg.train.seed,
                   train_time_s=round(time.perf_counter() - started, 1))
    if dist.is_main():
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _start_state(cfg: Config, out: Path, ckpt_path: Path, resume: bool) -> dict | None:
    if resume:
        if not ckpt_path.is_file():
            raise CheckpointError(f"--resume: no checkpoint in {out}; run without --resume to start")
        state = load_checkpoint(ckpt_path)
        check_resumable(state, cfg.to_dict(), dist.world_size(), out)
        return state
    if (out / "results.json").exists() or ckpt_path.exists():
        raise RunFolderError(f"{out} already holds a run; use --resume to continue it or choose another --out")
    return None


def _pretrain(cfg, c: Components, state, ckpt_path, logger, progress) -> Position:
    lr = cfg.optim.lr * (cfg.train.batch_size * dist.world_size() / 256 if cfg.optim.scale_lr else 1.0)
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
    log.info("%s on %s: %d train / %d val / %d test images, %d steps/epoch, batch %d x %d view(s), lr %.4g",
             cfg.method, cfg.data.name, len(c.splits.train), len(c.splits.val), len(c.splits.test), steps,
             cfg.train.batch_size * dist.world_size(), cfg.data.n_views, lr)
    _log_scale(cfg, lr)
    micro = cfg.train.micro_batch_size
    # Contrastive steps go through gradient caching and/or the cross-rank gather when either is on.
    global_step = cfg.method in CONTRASTIVE and (micro is not None or dist.world_size() > 1)

    def step_fn(batch):
        images, labels = (t.to(c.device, non_blocking=True) for t in batch)
        if global_step:
            out = contrastive_step(c.method, c.train_model, images, labels, micro_batch_size=micro,
                                   grad_scale=scaler.get_scale() if scaler.is_enabled() else 1.0)
        else:
            out = c.method(c.train_model, images, labels)
        if c.probe is not None:
            out["probe_acc"] = _probe_step(c.probe, probe_opt, out["features"], labels)
        return out

    def checkpoint(pos: Position) -> None:
        if dist.is_main():
            save_checkpoint(_state(cfg, c, optimizer, probe_opt, scaler, pos), ckpt_path)

    report_every = max(1, steps // 10)

    def on_step(pos: Position, metrics: dict) -> None:
        if pos.step % 10 == 0:
            logger.log("pretrain", pos.step, metrics)
        if not progress and pos.batch % report_every == 0 and pos.batch < steps:
            # Without a progress bar (logs, CI, nohup), a line every ~10% of an epoch.
            eta = (steps - pos.batch) * cfg.train.batch_size / max(metrics["images_per_s"], 1e-9)
            log.info("  epoch %d step %d/%d  loss %.4f  lr %.4g  %.0f img/s  epoch ETA %.0fs", pos.epoch + 1,
                     pos.batch, steps, metrics["loss"], metrics["lr"], metrics["images_per_s"], eta)
        every = cfg.train.checkpoint_every_steps
        if every and pos.step % every == 0 and pos.batch < steps:
            checkpoint(pos)

    def on_epoch(pos: Position, summary: dict) -> None:
        logger.log("pretrain_epoch", pos.step, {"epoch": pos.epoch, **summary})
        log.info("epoch %d/%d  loss %.4f  %s  %.0f img/s  %.1fs", pos.epoch, cfg.train.epochs, summary["loss"],
                 f"probe acc {summary['probe_acc']:.1f}%" if "probe_acc" in summary else "",
                 summary["images_per_s"], summary["epoch_time_s"])
        checkpoint(pos)

    return train_loop(c.model, step_fn, _epoch_batches(c), optimizer, spec, position, scaler=scaler,
                      on_step=on_step, on_epoch=on_epoch, progress=_tqdm if progress else None, stage="pretrain",
                      after_step=getattr(c.method, "after_step", None))


def _log_scale(cfg: Config, lr: float) -> None:
    """State how the global batch and the learning rate follow from the config and world size."""
    world, batch = dist.world_size(), cfg.train.batch_size
    if world > 1:
        log.info("distributed: %d processes x %d images = global batch %d (gradients averaged, "
                 "contrastive losses over the global batch)%s", world, batch, world * batch,
                 ", SyncBatchNorm" if cfg.train.sync_bn else "")
    if cfg.optim.scale_lr:
        log.info("lr %.4g = optim.lr %.4g x global batch %d / 256", lr, cfg.optim.lr, world * batch)
    else:
        log.info("lr %.4g = optim.lr, not scaled with the global batch %d (optim.scale_lr=false)",
                 lr, world * batch)
    if cfg.train.micro_batch_size is not None and cfg.method in CONTRASTIVE:
        log.info("gradient caching: micro-batches of %d images", cfg.train.micro_batch_size)


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
            "data": cfg.data.name, "class_names": list(info.class_names), "method": cfg.method}


def eval_loader(split, info, cfg: Config):
    """Deterministic (no augmentation) loader over a split for feature extraction and testing."""
    data = AugmentedDataset(split, build_transform("none", info, train=False), seed=cfg.train.seed)
    return build_loader(data, batch_size=max(cfg.linear.batch_size, 256), shuffle=False, drop_last=False,
                        seed=cfg.train.seed, num_workers=0)


def _final_evaluation(cfg: Config, c: Components, logger: MetricsLogger, progress: bool,
                      test: bool = True) -> dict:
    info = c.splits.info
    encoder = c.model.encoder
    banks = {name: extract_features(encoder, eval_loader(getattr(c.splits, name), info, cfg), c.device)
             for name in ("train", "val", "test") if test or name != "test"}
    if cfg.method == "ce":
        classifier = copy.deepcopy(c.model.classifier).cpu().eval()
        selected = {"val_top1": _accuracy(classifier, banks["val"], 1)}
    else:
        fingerprint = _fingerprint(encoder)

        def on_epoch(pos, summary):
            logger.log("linear_epoch", pos.epoch, summary)
            log.info("linear epoch %d/%d  loss %.4f  val top-1 %.2f%%", pos.epoch, cfg.linear.epochs,
                     summary["loss"], summary["val_top1"])

        fitted = fit_linear(banks["train"], banks["val"], info.num_classes, cfg.linear, cfg.train.seed, on_epoch)
        if not all(torch.equal(a, b) for a, b in zip(_fingerprint(encoder), fingerprint, strict=True)):
            raise RuntimeError("the encoder changed during the linear stage")
        classifier = fitted.classifier
        selected = {"val_top1": fitted.val_top1, "linear_best_epoch": fitted.best_epoch}
    results = {"test_top1": _accuracy(classifier, banks["test"], 1),
               "test_top5": _accuracy(classifier, banks["test"], 5)} if test else {}
    results.update(selected)
    if dist.is_main() and logger.folder is not None:
        linear = getattr(classifier, "fc", classifier)  # one format for every method: weight, bias
        weights = {k: v.detach().cpu().contiguous() for k, v in linear.state_dict().items()}
        save_file(weights, str(logger.folder / "classifier.safetensors"))
    logger.log("final", 0, results)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}


@torch.no_grad()
def _accuracy(classifier: nn.Module, bank, k: int) -> float:
    feats, labels = bank
    return topk_accuracy(classifier(feats), labels, k) if len(feats) else float("nan")


def _fingerprint(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.state_dict().values()]


def _tqdm(iterable, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, leave=False, dynamic_ncols=True, **kwargs)
