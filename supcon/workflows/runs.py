"""Run folders: open what a finished `supcon train` left behind, and train or resume one.

A run folder holds ``config.yaml``, ``results.json``, ``checkpoint.pt`` (the whole model state,
``head.*`` included for contrastive methods), ``encoder.safetensors`` + ``encoder.json`` and
``classifier.safetensors`` (an ``nn.Linear`` on encoder representations). Every way one of them
can be missing or broken ends in a one-line :class:`RunError` that names the file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ..config import Config, ConfigError, load_config
from ..engine.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from ..engine.train_job import run_training
from ..methods import method_from_config
from ..weights import ENCODER_META, ENCODER_WEIGHTS, load_encoder

log = logging.getLogger("supcon")
CLASSIFIER_WEIGHTS = "classifier.safetensors"
# What to do about a missing or broken file in a finished run folder.
_DAMAGED = "; the run folder is damaged: train it again into a new --out"


class RunError(ValueError):
    """A run folder is missing, unfinished, broken, or unfit for what was asked of it."""


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
        """``supcon``, ``simclr`` or ``ce``."""
        return self.cfg.method


def open_config(path: str | Path, what: str = "--run") -> Config:
    """The resolved config of the run folder ``path``.

    Raises:
        RunError: ``path`` is missing, has no ``config.yaml``, or its config is invalid
            (``what`` names the option in the message).
    """
    path = Path(path)
    if not path.exists():
        raise RunError(f"{what} {path} does not exist")
    if not (path / "config.yaml").is_file():
        raise RunError(f"{what} {path} is not a run folder (no config.yaml); "
                       "give the --out folder of a `supcon train` run")
    try:
        return load_config(path / "config.yaml")
    except (ConfigError, OSError) as err:
        raise RunError(f"{what} {path}: config.yaml is invalid: {_first_line(err)}") from None


def open_run(path: str | Path, what: str = "--run") -> Run:
    """Load a finished run: config, results, encoder, saved classifier and (contrastive) head.

    Raises:
        RunError: not a run folder, unfinished (no ``results.json``), or any of its files
            missing, corrupt or inconsistent with ``config.yaml`` (the message names the file).
    """
    path = Path(path)
    cfg = open_config(path, what)
    results_path = path / "results.json"
    if not results_path.is_file():
        raise RunError(f"{what} {path} is not finished (no results.json); "
                       f"finish it with `supcon train --resume --out {path}`")
    try:
        results = json.loads(results_path.read_text())
    except (ValueError, OSError) as err:
        raise RunError(f"{what} {path}: results.json is unreadable: {_first_line(err)}{_DAMAGED}") from None
    meta = _read_meta(path, what)
    model = _load_model(path, cfg, meta, what)
    encoder = _load_encoder(path, meta, what)
    classifier = _load_classifier(path, encoder.num_features, what)
    head = getattr(model, "head", None) if cfg.method != "ce" else None
    return Run(path, cfg, results, encoder, meta, classifier, head.eval() if head else None)


def _load_model(path: Path, cfg: Config, meta: dict[str, Any], what: str) -> nn.Module:
    """The stage-1 model rebuilt from the checkpoint (this is where the head comes from)."""
    from ..models import create_encoder

    ckpt = path / CHECKPOINT_NAME
    if not ckpt.is_file():
        raise RunError(f"{what} {path}: {CHECKPOINT_NAME} is missing{_DAMAGED}")
    try:
        state = load_checkpoint(ckpt)
    except CheckpointError:
        raise RunError(f"{what} {path}: {CHECKPOINT_NAME} is corrupt or unreadable{_DAMAGED}") from None
    encoder = create_encoder(cfg.model.encoder, in_channels=meta.get("in_channels", 3),
                             **cfg.model.encoder_options)
    num_classes = len(meta.get("class_names", ())) or 2
    model = method_from_config(cfg).build_model(encoder, num_classes)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError):
        raise RunError(f"{what} {path}: {CHECKPOINT_NAME} does not hold this run's model "
                       f"(config.yaml and checkpoint disagree){_DAMAGED}") from None
    return model.eval()


def _read_meta(path: Path, what: str) -> dict[str, Any]:
    meta_path = path / ENCODER_META
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise RunError(f"{what} {path}: {ENCODER_META} is missing{_DAMAGED}") from None
    except (ValueError, OSError) as err:
        raise RunError(f"{what} {path}: {ENCODER_META} is unreadable: {_first_line(err)}{_DAMAGED}") from None
    if not isinstance(meta, dict) or "encoder" not in meta or "in_channels" not in meta:
        raise RunError(f"{what} {path}: {ENCODER_META} lacks 'encoder'/'in_channels'{_DAMAGED}")
    return meta


def _load_encoder(path: Path, meta: dict[str, Any], what: str) -> nn.Module:
    if not (path / ENCODER_WEIGHTS).is_file():
        raise RunError(f"{what} {path}: {ENCODER_WEIGHTS} is missing{_DAMAGED}")
    try:
        encoder = load_encoder(path)
    except Exception as err:  # noqa: BLE001  (safetensors and load_state_dict raise many types)
        raise RunError(f"{what} {path}: {ENCODER_WEIGHTS} is corrupt or does not match "
                       f"{ENCODER_META} ({type(err).__name__}){_DAMAGED}") from None
    for key in ("image_size", "mean", "std"):
        if key not in meta:
            raise RunError(f"{what} {path}: {ENCODER_META} lacks {key!r}{_DAMAGED}")
    return encoder.eval()


def _load_classifier(path: Path, num_features: int, what: str) -> nn.Linear:
    file = path / CLASSIFIER_WEIGHTS
    if not file.is_file():
        raise RunError(f"{what} {path}: {CLASSIFIER_WEIGHTS} is missing{_DAMAGED}")
    try:
        weights = load_file(str(file))
        weight, bias = weights["weight"], weights["bias"]
        if weight.dim() != 2 or weight.shape[1] != num_features or bias.shape != weight.shape[:1]:
            raise ValueError("shape")
    except Exception as err:  # noqa: BLE001
        raise RunError(f"{what} {path}: {CLASSIFIER_WEIGHTS} is corrupt or not a linear layer on "
                       f"{num_features} features ({type(err).__name__}){_DAMAGED}") from None
    classifier = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        classifier.weight.copy_(weight)
        classifier.bias.copy_(bias)
    return classifier.eval()


def is_trained(path: str | Path) -> bool:
    """True when ``path`` holds a finished run (``results.json`` written at the very end)."""
    return (Path(path) / "results.json").is_file()


def train_or_resume(cfg: Config, path: str | Path, progress: bool = False) -> dict[str, Any]:
    """Bring the run in ``path`` to its end: skip it if finished, resume it if a checkpoint is
    there, else start it. A finished or interrupted run with another config is an error, so a
    changed comparison never mixes old and new runs silently.

    Raises:
        RunError: a finished run with another configuration; CheckpointError (a ValueError): an
            interrupted one with another configuration, or an unreadable checkpoint.
    """
    path = Path(path)
    if is_trained(path):
        if open_config(path).to_dict() != cfg.to_dict():
            raise RunError(f"{path} holds a finished run with another configuration; "
                           "remove it or choose another --out")
        log.info("%s: finished, skipping training", path.name)
        return json.loads((path / "results.json").read_text())
    resume = (path / CHECKPOINT_NAME).is_file()
    log.info("%s: %s training", path.name, "resuming" if resume else "starting")
    return run_training(cfg, path, resume=resume, progress=progress)


def _first_line(err: BaseException) -> str:
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__
