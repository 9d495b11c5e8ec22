"""Finished runs, for evaluation: rebuild what a `supcon train` left behind (the run folder's
format and its file readers are :mod:`supcon.run_folder`'s), and train or resume a run.

Every way a file can be missing or broken ends in a one-line :class:`RunError` that names the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..config import Config
from ..engine.checkpoint import CheckpointError, load_checkpoint
from ..engine.components import method_from_config
from ..engine.train_job import run_training
from ..models import create_encoder
from ..run_folder import (
    CHECKPOINT,
    CONFIG,
    DAMAGED,
    ENCODER_META,
    ENCODER_WEIGHTS,
    RunError,
    has_checkpoint,
    is_finished,
    load_classifier,
    open_config,
    read_meta,
    read_results,
)
from ..weights import load_encoder, rebuild_spec

log = logging.getLogger("supcon")


@dataclass
class Run:
    """A finished run, loaded for evaluation (everything on the CPU, in eval mode)."""

    path: Path
    cfg: Config
    results: dict[str, Any]
    encoder: nn.Module  # images [B, C, S, S] -> representations [B, F]
    meta: dict[str, Any]  # encoder.json: channels, image size, normalisation, class names
    classifier: nn.Linear  # representations [B, F] -> logits [B, K]
    head: nn.Module | None  # projection head (supcon/simclr): [B, F] -> unit rows [B, D]

    @property
    def method(self) -> str:
        """``supcon``, ``simclr``, ``ce`` or ``ce+supcon``."""
        return self.cfg.method

    @property
    def modality(self) -> str:
        """``image`` or ``text``: what the encoder reads."""
        return self.meta.get("modality", "image")


def open_run(path: str | Path, what: str = "path") -> Run:
    """Load a finished run: config, results, encoder, saved classifier and (contrastive) head.

    Raises:
        RunError: not a run folder, unfinished (no ``results.json``), or any of its files
            missing, corrupt or inconsistent with ``config.yaml`` (the message names the file, and
            ``what``: the argument that gave ``path``).
    """
    path = Path(path)
    cfg = open_config(path, what)
    results = read_results(path, what)
    meta = read_meta(path, what)
    model = _load_model(path, cfg, meta, what)
    encoder = _load_encoder(path, meta, what)
    classifier = load_classifier(path, encoder.num_features, what)
    head = getattr(model, "head", None)  # contrastive methods only
    return Run(path, cfg, results, encoder, meta, classifier, head.eval() if head else None)


def _load_model(path: Path, cfg: Config, meta: dict[str, Any], what: str) -> nn.Module:
    """The stage-1 model rebuilt from the checkpoint (this is where the head comes from)."""
    if not has_checkpoint(path):
        raise RunError(f"{what} {path}: {CHECKPOINT} is missing{DAMAGED}")
    try:
        state = load_checkpoint(path / CHECKPOINT)
    except CheckpointError:
        raise RunError(f"{what} {path}: {CHECKPOINT} is corrupt or unreadable{DAMAGED}") from None
    # the checkpoint has the weights: fetch no pretrained ones
    name, options = rebuild_spec(path, cfg.model.encoder, cfg.model.encoder_options)
    encoder = create_encoder(name, in_channels=meta.get("in_channels", 3), **options)
    num_classes = len(meta.get("class_names", ())) or 2
    model = method_from_config(cfg).build_model(encoder, num_classes)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError):
        raise RunError(f"{what} {path}: {CHECKPOINT} does not hold this run's model "
                       f"({CONFIG} and checkpoint disagree){DAMAGED}") from None
    return model.eval()


def _load_encoder(path: Path, meta: dict[str, Any], what: str) -> nn.Module:
    if not (path / ENCODER_WEIGHTS).is_file():
        raise RunError(f"{what} {path}: {ENCODER_WEIGHTS} is missing{DAMAGED}")
    try:
        encoder = load_encoder(path)
    except Exception as err:  # noqa: BLE001  (safetensors and load_state_dict raise many types)
        raise RunError(f"{what} {path}: {ENCODER_WEIGHTS} is corrupt or does not match "
                       f"{ENCODER_META} ({type(err).__name__}){DAMAGED}") from None
    for key in ("image_size", "mean", "std"):
        if key not in meta:
            raise RunError(f"{what} {path}: {ENCODER_META} lacks {key!r}{DAMAGED}")
    return encoder.eval()


def train_or_resume(cfg: Config, path: str | Path, progress: bool = False,
                    test: bool = True) -> dict[str, Any]:
    """Bring the run in ``path`` to its end: skip it if finished, resume it if a checkpoint is
    there, else start it. A finished or interrupted run with another config is an error, so a
    changed comparison never mixes old and new runs silently. ``test=False`` (a selection run)
    never reads the test split (see :func:`~supcon.engine.train_job.run_training`).

    Raises:
        RunError: a finished run with another configuration; CheckpointError (a ValueError): an
            interrupted one with another configuration, or an unreadable checkpoint.
    """
    path = Path(path)
    if is_finished(path):
        if open_config(path).to_dict() != cfg.to_dict():
            raise RunError(f"{path} holds a finished run with another configuration; "
                           "remove it or choose another --out")
        log.info("%s: finished, skipping training", path.name)
        return read_results(path)
    resume = has_checkpoint(path)
    log.info("%s: %s training%s", path.name, "resuming" if resume else "starting",
             "" if test else " (validation only)")
    return run_training(cfg, path, resume=resume, progress=progress, test=test)
