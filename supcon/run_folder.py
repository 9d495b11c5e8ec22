"""The run folder: the one place that knows what `supcon train` writes, under which names, when a
run counts as finished, and how its files are read back.

A run folder holds ``config.yaml`` (the resolved config), ``train.log`` (the CLI's log),
``metrics.jsonl`` and ``tensorboard/`` (metrics), ``checkpoint.pt`` (the whole training state,
``head.*`` included for contrastive methods), ``encoder.safetensors`` + ``encoder.json`` (the
exported encoder and how to rebuild it; a text encoder adds ``encoder_files/``: its tokenizer,
model config and pooling), ``classifier.safetensors`` (an ``nn.Linear`` on encoder
representations: ``weight``, ``bias``) and, written last, ``results.json``: a run is finished
exactly when that file exists. `supcon eval` adds ``eval.json`` and its PNGs.

Every reader here fails with a one-line :class:`RunError` that names the file. Rebuilding the
models of a finished run for evaluation is :func:`supcon.workflows.open_run`, built on these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checks import first_line
from .config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from torch import nn

CONFIG = "config.yaml"
TRAIN_LOG = "train.log"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
CHECKPOINT = "checkpoint.pt"
ENCODER_WEIGHTS = "encoder.safetensors"
ENCODER_META = "encoder.json"
ENCODER_FILES = "encoder_files"  # what rebuilds an encoder besides its weights (a text encoder's tokenizer)
CLASSIFIER_WEIGHTS = "classifier.safetensors"
RESULTS = "results.json"
EVAL = "eval.json"
# What to do about a missing or broken file in a finished run folder.
DAMAGED = "; the run folder is damaged: train it again into a new out_dir"


class RunError(ValueError):
    """A run folder is missing, unfinished, broken, or unfit for what was asked of it (e.g. a new
    run asked of a folder that holds one)."""


def is_finished(folder: str | Path) -> bool:
    """True when ``folder`` holds a finished run (``results.json`` is written at the very end)."""
    return (Path(folder) / RESULTS).is_file()


def has_checkpoint(folder: str | Path) -> bool:
    """True when ``folder`` holds a checkpoint to resume from."""
    return (Path(folder) / CHECKPOINT).is_file()


def check_unused(folder: str | Path) -> None:
    """Refuse to start a new run in a folder that already holds one (finished or not).

    Raises:
        RunError: ``folder`` has ``results.json`` or ``checkpoint.pt``.
    """
    if (Path(folder) / RESULTS).exists() or (Path(folder) / CHECKPOINT).exists():
        raise RunError(f"{folder} already holds a run; use resume=True to continue it or choose another out_dir")


def write_results(folder: str | Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` (which marks the run finished); return its path."""
    path = Path(folder) / RESULTS
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def read_results(folder: str | Path, what: str = "folder") -> dict[str, Any]:
    """The results of a finished run.

    Raises:
        RunError: the run is not finished, or ``results.json`` is unreadable (``what``, the argument
            that gave ``folder``, names it in the message).
    """
    path = Path(folder)
    if not is_finished(path):
        raise RunError(f"{what} {path} is not finished (no {RESULTS}); "
                       f"finish it with `supcon train --resume --out {path}`")
    try:
        return json.loads((path / RESULTS).read_text())
    except (ValueError, OSError) as err:
        raise RunError(f"{what} {path}: {RESULTS} is unreadable: {first_line(err)}{DAMAGED}") from None


def open_config(folder: str | Path, what: str = "folder") -> Config:
    """The resolved config of the run folder ``folder``.

    Raises:
        RunError: ``folder`` is missing, has no ``config.yaml``, or its config is invalid
            (``what``, the argument that gave ``folder``, names it in the message).
    """
    path = Path(folder)
    if not path.exists():
        raise RunError(f"{what} {path} does not exist")
    if not (path / CONFIG).is_file():
        raise RunError(f"{what} {path} is not a run folder (no {CONFIG}); "
                       "give the out_dir folder of a `supcon train` run")
    try:
        return load_config(path / CONFIG)
    except (ConfigError, OSError) as err:
        raise RunError(f"{what} {path}: {CONFIG} is invalid: {first_line(err)}") from None


def read_meta(folder: str | Path, what: str = "folder") -> dict[str, Any]:
    """``encoder.json``: how to rebuild the encoder, and its image size and normalisation.

    Raises:
        RunError: the file is missing, unreadable, or lacks ``encoder``/``in_channels``.
    """
    path = Path(folder)
    try:
        meta = json.loads((path / ENCODER_META).read_text())
    except FileNotFoundError:
        raise RunError(f"{what} {path}: {ENCODER_META} is missing{DAMAGED}") from None
    except (ValueError, OSError) as err:
        raise RunError(f"{what} {path}: {ENCODER_META} is unreadable: {first_line(err)}{DAMAGED}") from None
    if not isinstance(meta, dict) or "encoder" not in meta or "in_channels" not in meta:
        raise RunError(f"{what} {path}: {ENCODER_META} lacks 'encoder'/'in_channels'{DAMAGED}")
    return meta


def save_classifier(linear: nn.Module, folder: str | Path) -> Path:
    """Write ``linear``'s ``weight`` and ``bias`` as ``classifier.safetensors``; return its path."""
    from safetensors.torch import save_file

    path = Path(folder) / CLASSIFIER_WEIGHTS
    weights = {k: v.detach().cpu().contiguous() for k, v in linear.state_dict().items()}
    save_file(weights, str(path))
    return path


def load_classifier(folder: str | Path, num_features: int, what: str = "folder") -> nn.Linear:
    """The saved classifier as an ``nn.Linear`` on ``num_features`` representations, in eval mode.

    Raises:
        RunError: the file is missing, corrupt, or not a linear layer on ``num_features``.
    """
    import torch
    from safetensors.torch import load_file

    path = Path(folder)
    file = path / CLASSIFIER_WEIGHTS
    if not file.is_file():
        raise RunError(f"{what} {path}: {CLASSIFIER_WEIGHTS} is missing{DAMAGED}")
    try:
        weights = load_file(str(file))
        weight, bias = weights["weight"], weights["bias"]
        if weight.dim() != 2 or weight.shape[1] != num_features or bias.shape != weight.shape[:1]:
            raise ValueError("shape")
    except Exception as err:  # noqa: BLE001
        raise RunError(f"{what} {path}: {CLASSIFIER_WEIGHTS} is corrupt or not a linear layer on "
                       f"{num_features} features ({type(err).__name__}){DAMAGED}") from None
    classifier = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        classifier.weight.copy_(weight)
        classifier.bias.copy_(bias)
    return classifier.eval()
