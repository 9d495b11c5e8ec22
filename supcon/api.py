"""`supcon.train`: the whole job from Python, with names or with your own encoder and datasets.

`supcon train` (the CLI) is a caller of this function: it builds the config from its flags and
hands it over. From a notebook, pass objects::

    results = supcon.train(encoder=MyNet(), train_set=train, test_set=test, method="supcon",
                           out="runs/mine", epochs=10, lr=0.1, **{"loss.temperature": 0.07})

The run folder, resume and the evaluation are the ones of `supcon train`; the encoder module is
trained in place, and :func:`supcon.load_encoder` (``encoder=MyNet()``) reads its weights back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checks import object_name
from .config import (
    Config,
    ConfigError,
    build_config,
    from_dict,
    resolve,
    set_value,
    with_absolute_paths,
)
from .run_folder import CONFIG

if TYPE_CHECKING:
    from torch import nn

# Short names for the settings changed most often; any other is a dotted key or a unique field name.
ALIASES = {"epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "optim.lr", "seed": "train.seed",
           "device": "train.device", "temperature": "loss.temperature", "augmentation": "data.augmentation",
           "workers": "data.num_workers"}


def train(encoder: nn.Module | str | None = None, train_set: Any = None, test_set: Any = None, *,
          val_set: Any = None, method: str | None = None, out: str | Path, config: str | Path | Config | None = None,
          resume: bool = False, progress: bool = True, on_checkpoint: Callable[[Any], None] | None = None,
          test: bool = True, **overrides: Any) -> dict[str, Any]:
    """Pre-train (supcon/simclr) and fit the linear stage, or train ce, into the run folder ``out``.

    Args:
        encoder: an encoder name (``small-resnet-s2``, ``timm:resnet18``, ``transformers:<folder>``
            for text, ...) or your own ``nn.Module`` mapping ``[B, C, H, W]`` images (or a list of
            B strings) to pooled ``[B, F]`` features (F is read from its output). None: the config's.
        train_set: a data set name or folder, or your own map-style ``Dataset`` of
            ``(image, label)`` items: PIL images, ``[C, H, W]`` tensors or ``[H, W, C]`` arrays,
            raw (uint8, or float in [0, 1]; no normalisation), labels ints 0..K-1
            (:mod:`supcon.data.objects`); or ``(str, label)`` items: texts, labels ints 0..K-1 or
            class names (:mod:`supcon.data.text`). None: the config's.
        test_set: your test ``Dataset`` (with a ``Dataset`` train_set); None carves 20% of
            ``train_set`` (stratified, fixed), as for a folder without ``test/``.
        val_set: your validation ``Dataset``; None holds out ``data.val_fraction`` of the
            training items. Model selection (the linear stage's epoch) uses it, never the test set.
        method: supcon, simclr, ce or ce+supcon (None: the config's, else supcon).
        out: the run folder (see `supcon train --help` for what it holds).
        config: a preset name, a YAML file, or a :class:`~supcon.config.Config`; None: the
            built-in settings, or the run's own config.yaml when resuming.
        resume: continue the run in ``out`` from its checkpoint (pass the same objects again).
        progress: tqdm progress bars where stderr is a terminal (or a notebook's widgets); else,
            and with False, log lines on the ``supcon`` logger (one per epoch, one every ~10%).
        on_checkpoint: called with the position after every stage-1 checkpoint; an exception
            raised there stops the run as an interruption would.
        test: score the test split at the end. False reads none: no test split is carved from
            a ``Dataset`` train_set (``test_set`` must then be None) and the results have no
            ``test_top1``/``test_top5`` (for a few labelled examples and no test set, or runs
            that only choose settings on validation).
        **overrides: config settings: dotted keys (``**{"optim.lr": 0.1}``), a field name that
            only one section has (``feat_dim=64``), or the short names in ``ALIASES``
            (``epochs``, ``batch_size``, ``lr``, ``seed``, ``device``, ``temperature``,
            ``augmentation``, ``workers``).

    Returns:
        The results (also in ``out/results.json``): ``test_top1``, ``test_top5``, ``val_top1``, ...

    Raises:
        ConfigError: an unknown or ambiguous setting, a bad value, or an object where the
            config must name something (e.g. ``test_set`` without a ``Dataset`` train_set).
        DataError: an item of your datasets that is not an ``(image, label)`` pair supcon reads.
        ValueError: an encoder whose output is not ``[B, F]``; anything ``supcon train`` rejects.
        RunError, CheckpointError: ``out`` holds a run (and ``resume`` is off), or cannot
            be resumed.
    """
    from . import distributed as dist
    from .data.objects import splits_from_objects
    from .data.text import is_text_items
    from .engine.train_job import run_training

    own_encoder, own_data = _is_module(encoder), _is_dataset(train_set)
    if (test_set is not None or val_set is not None) and not own_data:
        raise ConfigError("test_set and val_set go with a Dataset train_set; a named data set brings its own splits")
    if test_set is not None and not test:
        raise ConfigError("test_set with test=False: a run that scores no test split takes none")
    settings = {key: value for key, value in (("method", method),
                                              ("model.encoder", object_name(encoder) if own_encoder else encoder),
                                              ("data.name", object_name(train_set) if own_data else
                                               None if train_set is None else str(train_set)))
                if value is not None}
    settings.update(_dotted(overrides))
    if own_data and is_text_items(train_set):
        settings.setdefault("data.augmentation", "none")  # a text's views are dropout views
    if own_encoder:
        if "model.encoder_options" in settings:
            raise ConfigError("model.encoder_options configure a named encoder; your own module takes its options itself")
        settings["model.encoder_options"] = {}  # those of the named encoder it replaces
    cfg = _config(config, settings, Path(out) if resume else None)
    if own_data and cfg.data.labels_csv is not None:
        raise ConfigError("data.labels_csv is for image folders; your Dataset's labels come from its items")
    splits = None
    if own_data:
        splits = splits_from_objects(train_set, test_set, val_set, val_fraction=cfg.data.val_fraction,
                                     seed=cfg.train.seed, image_size=cfg.data.image_size,
                                     **({} if test else {"test_fraction": 0.0}))  # nothing held out for no test
    joined = dist.init_from_env(cfg.train.device)  # a no-op unless launched by torchrun
    try:
        results = run_training(cfg, out, resume=resume, progress=progress and dist.is_main(),
                               on_checkpoint=on_checkpoint, test=test, encoder=encoder if own_encoder else None,
                               splits=splits)
    except BaseException:
        if joined:
            dist.teardown(wait=False)  # do not wait for ranks that may be stuck in a collective
        raise
    if joined:
        dist.teardown()
    return results


def _is_module(obj: Any) -> bool:
    from torch import nn

    return isinstance(obj, nn.Module)


def _is_dataset(obj: Any) -> bool:
    return obj is not None and not isinstance(obj, (str, Path))


def run_config(config: str | Path | Config | None = None, out: str | Path | None = None, *,
               resume: bool = False, **overrides: Any) -> Config:
    """The resolved Config that :func:`train` with these arguments trains with, without training:
    ``config`` (when resuming without one, the saved ``config.yaml`` of the run in ``out``) with
    ``overrides`` (dotted keys, unique field names or ``ALIASES``, as :func:`train` takes them)
    on top. `supcon train` checks its options with it before anything is imported or written.

    Raises:
        ConfigError: an unknown or ambiguous setting, a bad value, or a bad config file.
    """
    return _config(config, _dotted(overrides), Path(out) if resume and out is not None else None)


def _config(config: str | Path | Config | None, settings: dict[str, Any], resume_from: Path | None) -> Config:
    """``config`` (or the run's saved config.yaml when resuming without one) <- ``settings``."""
    if config is None and resume_from is not None and (resume_from / CONFIG).is_file():
        config = resume_from / CONFIG  # resuming continues the run as it was configured
    if not isinstance(config, Config):
        return build_config(None if config is None else str(config), overrides=settings)
    cfg = from_dict(config.to_dict())  # a copy: the caller's Config is left as it is
    for key, value in settings.items():
        set_value(cfg, key, value)
    return resolve(with_absolute_paths(cfg))


def _dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with every key made a dotted config key (see :func:`train`'s ``**overrides``)."""
    sections = [f.name for f in dataclasses.fields(Config) if f.name != "method"]
    out = {}
    for key, value in overrides.items():
        if "." in key or key == "method":
            out[key] = value
        elif key in ALIASES:
            out[ALIASES[key]] = value
        else:
            owners = [s for s in sections if key in {f.name for f in dataclasses.fields(getattr(Config(), s))}]
            if len(owners) != 1:
                hint = (f"it is in {', '.join(f'{s}.{key}' for s in owners)}: pass **{{'{owners[0]}.{key}': ...}}"
                        if owners else f"short names: {', '.join(ALIASES)}; or a dotted key, **{{'optim.lr': 0.1}}")
                raise ConfigError(f"{'ambiguous' if owners else 'unknown'} setting {key!r}; {hint}")
            out[f"{owners[0]}.{key}"] = value
    return out
