"""Encoder export for downstream use: weights as safetensors plus a small JSON of how to rebuild it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from .config import TEXT_ENCODER_PREFIX, is_text_encoder
from .run_folder import ENCODER_FILES, ENCODER_META, ENCODER_WEIGHTS


def save_encoder(encoder: nn.Module, folder: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``folder/encoder.safetensors`` and ``folder/encoder.json``; return the weights path.

    Args:
        encoder: the module whose ``state_dict`` is saved (copied to the CPU).
        folder: created if missing; the weights file is replaced atomically.
        meta: JSON-able; must name ``encoder`` (registry name) and ``in_channels`` for
            :func:`load_encoder`, and may give ``encoder_kwargs`` (its options). Anything else
            rides along (the pipeline adds ``image_size``, ``mean``, ``std``, ``class_names``,
            ``num_features``, ``data``, ``method``, ``modality``).

    An encoder with an ``export_files(folder)`` method (a text encoder: tokenizer, model config,
    pooling) also writes those into ``folder/encoder_files``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    tmp = folder / f".{ENCODER_WEIGHTS}.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(folder / ENCODER_WEIGHTS)
    if hasattr(encoder, "export_files"):
        encoder.export_files(folder / ENCODER_FILES)
    (folder / ENCODER_META).write_text(json.dumps(meta, indent=2))
    return folder / ENCODER_WEIGHTS


def load_encoder(path: str | Path, encoder: nn.Module | None = None) -> nn.Module:
    """Rebuild an exported encoder in eval mode (or load its weights into ``encoder``).

    ``path`` is a run folder, or an ``encoder.safetensors`` file with ``encoder.json`` beside it.
    The encoder maps ``[B, C, H, W]`` images (normalised as in ``encoder.json``) to
    ``[B, num_features]`` representations (a text encoder: a list of B strings, tokenised by the
    tokenizer saved in ``encoder_files/``); its metadata is on ``encoder.supcon_meta``.
    Nothing is unpickled: the weights are safetensors, the metadata JSON. Encoders named
    ``timm:<name>`` / ``torchvision:<name>`` are rebuilt by that library from its own list of
    model names (no module named in the JSON is imported, nothing is downloaded), without
    pretrained weights: the saved ones are loaded instead; a ``transformers:`` encoder is rebuilt
    from the run folder's ``encoder_files/`` (the original model folder is not needed).

    ``encoder``: your own module (an encoder trained by :func:`supcon.train` from an
    ``nn.Module``, or any module whose ``state_dict`` matches the saved weights): the weights
    are loaded into it instead, and it is returned. Such runs name the encoder
    ``object:<ClassName>`` and need it.

    Raises:
        FileNotFoundError: no ``encoder.safetensors`` with ``encoder.json`` beside it at ``path``.
        ValueError: ``encoder.json`` names an unknown encoder or options (or a timm encoder
            while timm is not installed), or your own module (``object:...``) and ``encoder``
            is None.
        RuntimeError: the weights do not fit the encoder ``encoder.json`` describes (or ``encoder``).
        safetensors.SafetensorError: the weights file is corrupt.
    """
    from .models import create_encoder

    path = Path(path)
    weights = path / ENCODER_WEIGHTS if path.is_dir() else path
    meta_path = weights.with_name(ENCODER_META)
    if not weights.is_file() or not meta_path.is_file():
        raise FileNotFoundError(f"no {ENCODER_WEIGHTS} with {ENCODER_META} beside it at {path}")
    meta = json.loads(meta_path.read_text())
    if encoder is None:
        name, options = rebuild_spec(weights.parent, meta["encoder"], meta.get("encoder_kwargs") or {})
        encoder = create_encoder(name, in_channels=meta["in_channels"], **options)
    encoder.load_state_dict(load_file(str(weights)))
    encoder.supcon_meta = meta
    return encoder.eval()


def rebuild_spec(folder: str | Path, name: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The encoder name and options that rebuild the encoder saved in ``folder`` from that folder
    alone, without pretrained weights (the saved weights are loaded after): ``timm:`` /
    ``torchvision:`` with ``pretrained=False``; ``transformers:`` from ``folder/encoder_files``."""
    from .models.external import is_external

    options = dict(options)
    if is_external(name):  # the weights come from encoder.safetensors, never from elsewhere
        options["pretrained"] = False
    elif is_text_encoder(name):
        name, options["pretrained"] = f"{TEXT_ENCODER_PREFIX}{Path(folder) / ENCODER_FILES}", False
    return name, options
