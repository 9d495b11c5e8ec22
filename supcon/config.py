"""Typed run configuration: dataclasses with validation, YAML presets and dotted ``key=value`` overrides.

A run is described by one :class:`Config`. It is built once (preset -> file -> overrides ->
method defaults), validated, saved next to the outputs, and never mutated during the run.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .losses.options import (
    CONTRAST_MODE,
    CONTRAST_MODES,
    LABEL_OVERLAP,
    LABEL_OVERLAPS,
    QUEUE_MOMENTUM,
    SIMCLR_TEMPERATURE,
    TEMPERATURE,
    VARIANT,
    VARIANTS,
)

PRESET_DIR = Path(__file__).parent / "configs"
METHODS = ("supcon", "simclr", "ce", "ce+supcon")
TEXT_ENCODER_PREFIX = "transformers:"  # model.encoder=transformers:<folder> reads texts
OPTIMIZERS = ("sgd", "lars", "rmsprop", "adamw")
LINEAR_SOLVERS = ("sgd", "logistic")
PRECISIONS = ("fp32", "bf16", "fp16")
HEAD_KINDS = ("mlp", "linear")  # the projection head (supcon.models.ProjectionHead); the first is the default
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A configuration value, key or file is wrong; the message says which and what is valid."""


@dataclass
class DataConfig:
    """``data.*``: what to train on and how batches are made."""

    name: str = "fashion-mnist"
    """Registered data set name, or a folder of images in ImageFolder layout."""
    data_dir: str | None = None
    """Where the data set's files are (else $SUPCON_DATA, the Debian path, then download)."""
    val_fraction: float = 0.1
    """Share of the training split held out (stratified, seeded) for model selection."""
    image_size: int | None = None
    """Side of the square images the model sees; None = the data set's own (registered sets:
    their native size; folders: the median shorter side, at most 224). A folder is decoded and
    resized to it once, at load time (a small size makes photos fast on a CPU); a registered set
    is resized to it by the augmentation and evaluation transforms, batch by batch."""
    augmentation: str | None = None
    """Augmentation policy; None = the method's default (simaugment; crop-flip for ce; none for a
    text encoder, whose views are dropout views)."""
    augmentation_options: dict[str, Any] = field(default_factory=dict)
    """Parameters of the policy, e.g. {crop_scale: [0.3, 1.0], strength: 0.5} (see
    `supcon.data.build_transform`: strength, jitter_p, grey_p, blur, crop_scale, flip_p,
    magnitude, num_ops, padding)."""
    n_views: int | None = None
    """Views per image or text; None = the method's default (2 contrastive and ce+supcon, 1 for ce).
    ce needs exactly 1, simclr at least 2; supcon also trains with 1 (its positives are then only
    the other images of the class in the batch, not the paper's recipe). A text's views are
    dropout views: the encoder reads it n_views times in train mode (SimCSE)."""
    per_class: int | None = None
    """If set, class-balanced batches holding this many samples of each class."""
    augment_on_device: bool = False
    """Send uint8 images and their random draws to the training device and augment the batch
    there (the same result as the loader's; for GPUs the loader cannot keep up with)."""
    num_workers: int = 1
    """DataLoader worker processes (0 = load in the main process; 1 keeps up with the small
    model on 2 CPU cores, GPUs want more)."""
    strict: bool = False
    """Fail on unreadable image files instead of skipping them with a warning."""
    labels_csv: str | None = None
    """Image folders, supcon only: a CSV of `file,labels` rows (labels separated by `;`) giving
    every training image a set of labels; the SupCon loss then takes images that share a label
    as positives (see loss.label_overlap). A relative path is read from the data folder. The
    class folders still define the classes of the linear evaluation."""


@dataclass
class ModelConfig:
    """``model.*``: the encoder and the projection head."""

    encoder: str = "small-resnet"
    """Encoder name from the registry (`supcon.models.list_encoders()`), or `timm:<name>` /
    `torchvision:<name>`, or `transformers:<folder>` for text (a Hugging Face model and tokenizer
    in a local folder)."""
    encoder_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the encoder, e.g. {widths: [16, 32], blocks: [1, 1], strides: [1, 2]};
    for transformers: {max_length: 128, pooling: mean}."""
    head: str = HEAD_KINDS[0]
    """Projection head for contrastive methods: mlp (the paper's) or linear."""
    feat_dim: int = 128
    """Output size of the projection head."""


@dataclass
class LossConfig:
    """``loss.*``: options of the method's loss."""

    temperature: float | None = None
    """tau; None = the method's default (0.1 SupCon, 0.5 SimCLR)."""
    variant: str = VARIANT
    """SupCon variant: out (L_out, the paper's) or in (L_in)."""
    positives_cap: int | None = None
    """Keep at most this many random positives per anchor (paper, supplementary Table 5)."""
    label_overlap: str = LABEL_OVERLAP
    """With label sets (data.labels_csv, or a text file's labels column): weight of a positive
    pair, any (1 if they share a label) or jaccard (shared labels / labels of either)."""
    contrast_mode: str = CONTRAST_MODE
    """SupCon anchors: all (every view, the paper's) or one (only each image's first view)."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing (ce and ce+supcon)."""
    supcon_weight: float = 1.0
    """ce+supcon: lambda in loss = CE + lambda * SupCon, both on the same batch."""
    memory: int = 0
    """Momentum-queue variant (supcon only): queue this many keys of a momentum encoder and
    contrast every batch against them too (the paper's 8192); 0 = off."""
    momentum: float = QUEUE_MOMENTUM
    """EMA factor of the momentum encoder (with loss.memory > 0), in [0, 1)."""


@dataclass
class OptimConfig:
    """``optim.*``: optimizer and learning-rate schedule of stage 1."""

    name: str = "sgd"
    """Optimizer: sgd (with momentum), lars, rmsprop or adamw."""
    lr: float | None = None
    """Peak learning rate; None = the method's default (0.05 contrastive, 0.1 ce)."""
    scale_lr: bool = False
    """Multiply lr by the global batch / 256 (batch_size x processes; the linear scaling rule)."""
    momentum: float = 0.9
    """Momentum of sgd, lars and rmsprop (adamw ignores it)."""
    weight_decay: float = 1e-4
    """Weight decay of the weights (parameters with >= 2 dims); biases and norm layers get none."""
    warmup_epochs: float = 1.0
    """Linear warm-up length, then cosine decay to zero (both by global step)."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value."""
    head_lr_scale: float = 1.0
    """Learning rate of the parameters outside the encoder (projection head, classifier) as a
    multiple of lr. Fine-tuning a pretrained encoder at a small lr leaves a new head almost
    untrained in a few steps; e.g. 100 trains the head at 100 x lr."""


@dataclass
class TrainConfig:
    """``train.*``: length, batch, seed, device, precision, checkpoints and scale of stage 1."""

    epochs: int = 5
    """Pre-training epochs (for ce: the whole training)."""
    batch_size: int = 256
    """Images per step and per process (global batch = batch_size x processes); an epoch's last
    incomplete batch is dropped. A batch larger than the training split is lowered to fit, with a
    log line, and config.yaml records the batch that trained."""
    seed: int = 0
    """Seeds the model's initialisation, the validation split, batch order and augmentations."""
    device: str = "auto"
    """auto (cuda when available), cpu, or cuda[:i]."""
    precision: str = "fp32"
    """fp32, bf16 (autocast) or fp16 (autocast + loss scaling, CUDA)."""
    channels_last: bool = True
    """Keep the model in channels-last memory format: faster convolutions on CPUs (1.04-1.8x per
    step, benchmarks/RESULTS.md) and on recent GPUs."""
    compile: bool = False
    """Run the training forward through torch.compile (inductor); where compiling is impossible
    (no C++ compiler, an unsupported Python or operation) training goes on eagerly with a
    warning. Compiling takes about a minute per model on a small CPU."""
    checkpoint_every_steps: int = 0
    """Also checkpoint every K steps (0 = only at the end of each epoch)."""
    checkpoint_every_epochs: int = 1
    """Checkpoint at the end of every K-th epoch and of the last one: a larger K saves writing a
    big model's checkpoint every epoch (a 22.7M-parameter text encoder with AdamW: about 270 MB),
    at the cost of more epochs to redo after a kill."""
    online_probe: bool = True
    """Train a linear probe on detached features during pre-training (display only)."""
    micro_batch_size: int | None = None
    """Gradient caching (supcon/simclr): embed and back-propagate the batch this many images (or
    texts) at a time, with the activation memory of a micro-batch and the gradients of the whole
    batch (BatchNorm then normalises per micro-batch). None = one pass over the batch."""
    sync_bn: bool = False
    """Under torchrun (CUDA only), convert BatchNorm layers to SyncBatchNorm so their statistics
    cover the global batch."""


@dataclass
class LinearConfig:
    """Stage 2: linear classifier on the frozen encoder (contrastive methods)."""

    solver: str = "sgd"
    """sgd: the classifier trained by SGD for linear.epochs on standardised features, the epoch
    best on validation kept; logistic: L2-regularised logistic regression fitted to convergence
    (scikit-learn, L-BFGS) on the raw features for C in 0.01, 0.1, 1, 10, 100, the C best on
    validation kept (the other linear.* keys are then unused)."""
    epochs: int = 20
    """Epochs of the classifier; the one best on the validation split is kept."""
    batch_size: int = 256
    """Batch of the classifier's SGD (on precomputed features; every feature is used, so a batch
    larger than the training split is one full batch per epoch)."""
    lr: float = 0.1
    """Peak lr of its SGD (momentum 0.9, cosine decay, no warm-up) on standardised features."""
    weight_decay: float = 0.0
    """Weight decay of the classifier (weights and bias)."""


@dataclass
class Config:
    """One run: the method and one section per concern; see :func:`build_config`."""

    method: str = "supcon"
    """supcon, simclr, ce or ce+supcon."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (sections -> keys), as saved in ``config.yaml`` and checkpoints."""
        return dataclasses.asdict(self)


METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "supcon": {"loss.temperature": TEMPERATURE, "optim.lr": 0.05, "data.augmentation": "simaugment", "data.n_views": 2},
    "simclr": {"loss.temperature": SIMCLR_TEMPERATURE, "optim.lr": 0.05, "data.augmentation": "simaugment", "data.n_views": 2},
    # ce has no temperature; it keeps the loss's default so that the configurations recorded for
    # ce runs (workflows' summaries, compared key for key) stay the same experiment
    "ce": {"loss.temperature": TEMPERATURE, "optim.lr": 0.1, "data.augmentation": "crop-flip", "data.n_views": 1},
    "ce+supcon": {"loss.temperature": TEMPERATURE, "optim.lr": 0.05, "data.augmentation": "simaugment", "data.n_views": 2},
}


def build_config(
    preset: str | None = None, overrides: dict[str, Any] | None = None, dotted: list[str] | None = None
) -> Config:
    """Make a validated Config: defaults <- preset/file <- ``overrides`` <- ``dotted`` ``key=value``.

    Args:
        preset: a YAML file path, or the name of a file in ``supcon/configs`` (without
            ``.yaml``, see :func:`list_presets`); None starts from the dataclass defaults.
        overrides: ``{"optim.lr": 0.1, ...}`` dotted keys with already-typed values.
        dotted: ``["optim.lr=0.1", ...]`` strings; each value is parsed as YAML (``null`` -> None).

    A ``data.name`` or ``data.data_dir`` naming an existing folder is made absolute
    (:func:`with_absolute_paths`). Fields still None afterwards are filled from the method's
    defaults (``METHOD_DEFAULTS``), then everything is validated (:func:`validate`).

    Raises:
        ConfigError: unknown key (closest suggested), a value of the wrong type, an item that is
            not ``key=value``, a missing or malformed file, or a failed range/choice check.
    """
    cfg = Config()
    if preset is not None:
        _apply_nested(cfg, _read_yaml(preset), where=str(preset))
    for key, value in (overrides or {}).items():
        set_value(cfg, key, value)
    for key, value in parse_overrides(dotted or []).items():
        set_value(cfg, key, value)
    return resolve(with_absolute_paths(cfg))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["optim.lr=0.1", ...]`` as ``{"optim.lr": 0.1, ...}``: each value parsed as YAML
    (``null`` -> None, an empty value -> None); a later item wins over an earlier one.

    Raises:
        ConfigError: an item that is not ``key=value``, or a value that is not valid YAML.
    """
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. optim.lr=0.1)")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(err).splitlines()[0]}); "
                              "quote the whole override, e.g. 'model.encoder_options={widths: [16, 32]}'") from None
    return out


def resolve(cfg: Config) -> Config:
    """Fill method defaults into fields left as None, then validate; returns a new Config.

    Raises:
        ConfigError: unknown method, or :func:`validate` fails.
    """
    cfg = from_dict(cfg.to_dict())
    if cfg.method not in METHODS:
        raise ConfigError(_choice_message("method", cfg.method, METHODS))
    if is_text_encoder(cfg.model.encoder) and cfg.data.augmentation is None:
        cfg.data.augmentation = "none"  # a text's views are dropout views: no image policy
    for key, value in METHOD_DEFAULTS[cfg.method].items():
        if get_value(cfg, key) is None:
            set_value(cfg, key, value)
    validate(cfg)
    return cfg


def with_absolute_paths(cfg: Config) -> Config:
    """A copy of ``cfg`` whose ``data.name`` (when it is a folder, not a registered name) and
    ``data.data_dir`` are absolute if they name an existing folder, so a saved config.yaml works
    from any working directory. Paths that do not exist are left as given (the loader reports them).
    """
    cfg = from_dict(cfg.to_dict())
    if _names_folder(cfg.data.name):
        cfg.data.name = os.path.abspath(os.path.expanduser(cfg.data.name))
    if cfg.data.data_dir is not None and Path(cfg.data.data_dir).expanduser().is_dir():
        cfg.data.data_dir = os.path.abspath(os.path.expanduser(cfg.data.data_dir))
    return cfg


def _names_folder(name: str) -> bool:
    """Whether ``data.name`` is read as an existing folder (the data registry's rule)."""
    if not Path(name).expanduser().is_dir():
        return False
    if "/" in name or os.sep in name or name.startswith((".", "~")):
        return True
    from .data.registry import is_registered  # only for a bare name that is also a folder here

    return not is_registered(name)


def validate(cfg: Config) -> None:
    """Range and choice checks that types alone do not catch (on a resolved Config).

    Raises:
        ConfigError: the first failed check, naming the key, the value and what is valid.
    """
    checks = [
        (cfg.optim.name in OPTIMIZERS, _choice_message("optim.name", cfg.optim.name, OPTIMIZERS)),
        (cfg.train.precision in PRECISIONS, _choice_message("train.precision", cfg.train.precision, PRECISIONS)),
        (cfg.loss.variant in VARIANTS, _choice_message("loss.variant", cfg.loss.variant, VARIANTS)),
        (cfg.loss.contrast_mode in CONTRAST_MODES,
         _choice_message("loss.contrast_mode", cfg.loss.contrast_mode, CONTRAST_MODES)),
        (cfg.loss.contrast_mode == "all" or cfg.method == "supcon",
         f"loss.contrast_mode={cfg.loss.contrast_mode} is for method supcon, got method {cfg.method}"),
        (cfg.model.head in HEAD_KINDS, _choice_message("model.head", cfg.model.head, HEAD_KINDS)),
        (cfg.train.epochs >= 1, f"train.epochs must be >= 1, got {cfg.train.epochs}"),
        (cfg.train.batch_size >= 2, f"train.batch_size must be >= 2, got {cfg.train.batch_size}"),
        (cfg.linear.solver in LINEAR_SOLVERS, _choice_message("linear.solver", cfg.linear.solver, LINEAR_SOLVERS)),
        (cfg.linear.epochs >= 1, f"linear.epochs must be >= 1, got {cfg.linear.epochs}"),
        (cfg.linear.batch_size >= 1, f"linear.batch_size must be >= 1, got {cfg.linear.batch_size}"),
        (cfg.optim.lr is not None and cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}"),
        (cfg.linear.lr > 0, f"linear.lr must be > 0, got {cfg.linear.lr}"),
        (cfg.loss.temperature is not None and cfg.loss.temperature > 0,
         f"loss.temperature must be > 0, got {cfg.loss.temperature}"),
        (0.0 <= cfg.data.val_fraction < 1.0, f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}"),
        (cfg.data.image_size is None or cfg.data.image_size >= 1,
         f"data.image_size must be a positive int or null (the data set's own size), got {cfg.data.image_size}"),
        (cfg.data.n_views is not None and cfg.data.n_views >= 1, f"data.n_views must be >= 1, got {cfg.data.n_views}"),
        (cfg.method != "ce" or cfg.data.n_views == 1,
         f"data.n_views={cfg.data.n_views} cannot work with method ce (one view per image); "
         "set data.n_views=1 or null (the method's default)"),
        (cfg.method != "simclr" or cfg.data.n_views >= 2,
         f"data.n_views={cfg.data.n_views} cannot work with method simclr (its only positives are the "
         "other views of the same image: the loss would be 0); set data.n_views >= 2 or null"),
        (cfg.data.num_workers >= 0, f"data.num_workers must be >= 0, got {cfg.data.num_workers}"),
        (cfg.optim.warmup_epochs >= 0, f"optim.warmup_epochs must be >= 0, got {cfg.optim.warmup_epochs}"),
        (cfg.optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {cfg.optim.weight_decay}"),
        (cfg.train.checkpoint_every_steps >= 0,
         f"train.checkpoint_every_steps must be >= 0, got {cfg.train.checkpoint_every_steps}"),
        (cfg.train.checkpoint_every_epochs >= 1,
         f"train.checkpoint_every_epochs must be >= 1, got {cfg.train.checkpoint_every_epochs}"),
        (cfg.model.feat_dim >= 1, f"model.feat_dim must be >= 1, got {cfg.model.feat_dim}"),
        (cfg.loss.positives_cap is None or cfg.loss.positives_cap >= 1,
         f"loss.positives_cap must be >= 1 or null, got {cfg.loss.positives_cap}"),
        (cfg.data.per_class is None or 1 <= cfg.data.per_class <= cfg.train.batch_size,
         f"data.per_class must be in [1, train.batch_size], got {cfg.data.per_class}"),
        (cfg.data.per_class is None or cfg.data.per_class < 1 or cfg.train.batch_size % cfg.data.per_class == 0,
         f"data.per_class={cfg.data.per_class} must divide train.batch_size={cfg.train.batch_size}"),
        (cfg.optim.grad_clip is None or cfg.optim.grad_clip > 0, f"optim.grad_clip must be > 0, got {cfg.optim.grad_clip}"),
        (cfg.optim.head_lr_scale > 0, f"optim.head_lr_scale must be > 0, got {cfg.optim.head_lr_scale}"),
        (cfg.train.micro_batch_size is None or 1 <= cfg.train.micro_batch_size <= cfg.train.batch_size,
         f"train.micro_batch_size must be in [1, train.batch_size] or null, got {cfg.train.micro_batch_size}"),
        (cfg.train.micro_batch_size is None or cfg.method in ("supcon", "simclr"),
         f"train.micro_batch_size (gradient caching) is for supcon/simclr; for {cfg.method} lower train.batch_size"),
        (not is_text_encoder(cfg.model.encoder) or cfg.data.augmentation == "none",
         f"data.augmentation={cfg.data.augmentation} is an image policy; a text encoder's views are dropout "
         "views: set data.augmentation=none (or leave it unset)"),
        (cfg.loss.supcon_weight >= 0, f"loss.supcon_weight must be >= 0, got {cfg.loss.supcon_weight}"),
        (cfg.loss.memory >= 0, f"loss.memory must be >= 0 (0 = off), got {cfg.loss.memory}"),
        (cfg.loss.memory == 0 or cfg.method == "supcon",
         f"loss.memory (momentum queue) is for method supcon, got method {cfg.method}"),
        (0.0 <= cfg.loss.momentum < 1.0, f"loss.momentum must be in [0, 1), got {cfg.loss.momentum}"),
        (cfg.loss.label_overlap in LABEL_OVERLAPS,
         _choice_message("loss.label_overlap", cfg.loss.label_overlap, LABEL_OVERLAPS)),
        (cfg.data.labels_csv is None or cfg.method == "supcon",
         f"data.labels_csv (label sets for the SupCon loss) is for method supcon, got method {cfg.method}"),
        (cfg.data.labels_csv is None or cfg.loss.memory == 0,
         "data.labels_csv cannot be combined with loss.memory (the queue keeps one label per key)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def is_text_encoder(name: object) -> bool:
    """Whether the encoder name ``name`` reads texts (``transformers:<folder>``)."""
    return isinstance(name, str) and name.startswith(TEXT_ENCODER_PREFIX)


def list_presets() -> list[str]:
    """Names of the shipped presets (files in ``supcon/configs``), for ``build_config``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def get_value(cfg: Config, key: str) -> Any:
    """The value of a dotted key (e.g. ``optim.lr``); ConfigError for an unknown key."""
    node, name = _walk(cfg, key)
    return getattr(node, name)


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set a dotted key (e.g. ``optim.lr``) after checking the value against the field's type.

    An int is accepted for a float field, None only for optional fields; no range checks here.

    Raises:
        ConfigError: unknown key, or a value of the wrong type.
    """
    node, name = _walk(cfg, key)
    hint = typing.get_type_hints(type(node))[name]
    setattr(node, name, _coerce(key, value, hint))


def from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """A Config from a nested dict (as :meth:`Config.to_dict` makes), type-checked but not
    resolved or validated; ``where`` names the source in error messages (ConfigError)."""
    cfg = Config()
    _apply_nested(cfg, data, where)
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML (sections in dataclass order); :func:`load_config` reads it back."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def load_config(path: str | Path) -> Config:
    """Read a YAML config file (e.g. a run's ``config.yaml``), resolved and validated.

    Raises:
        ConfigError: missing or malformed file, unknown keys, wrong types or failed checks.
    """
    return resolve(from_dict(_read_yaml(str(path)), where=str(path)))


def _read_yaml(preset: str) -> dict[str, Any]:
    path = Path(preset)
    if not path.is_file():
        named = PRESET_DIR / f"{preset}.yaml"
        if not named.is_file():
            raise ConfigError(
                f"config {preset!r} is neither a file nor a preset; presets: {', '.join(list_presets())}"
            )
        path = named
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def _apply_nested(cfg: Config, data: dict[str, Any], where: str, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        node, name = _walk(cfg, dotted)
        if dataclasses.is_dataclass(getattr(node, name)):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {dotted} must be a mapping, got {value!r}")
            _apply_nested(cfg, value, where, prefix=f"{dotted}.")
        else:
            set_value(cfg, dotted, value)


def _walk(cfg: Config, key: str) -> tuple[Any, str]:
    parts = key.split(".")
    node: Any = cfg
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            here = ".".join(parts[:depth])
            valid = [f"{here}.{n}" if here else n for n in names]
            raise ConfigError(_choice_message("config key", key, valid, shown=".".join(parts[: depth + 1])))
        if depth < len(parts) - 1:
            node = getattr(node, part)
            if not dataclasses.is_dataclass(node):
                raise ConfigError(f"config key {key!r}: {'.'.join(parts[: depth + 1])} has no sub-keys")
    return node, parts[-1]


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field type (allowing int for float and None for Optional)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{key} may not be null")
    for option in options:
        if typing.get_origin(option) is dict and isinstance(value, dict):
            return dict(value)
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is float and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        if option is str and isinstance(value, str):
            return value
    names = " or ".join("null" if o is type(None) else getattr(typing.get_origin(o), "__name__", None)
                        or o.__name__ for o in options)
    raise ConfigError(f"{key} must be {names}, got {value!r}")


def _choice_message(what: str, value: Any, valid, shown: str | None = None) -> str:
    shown = shown or str(value)
    close = difflib.get_close_matches(shown, list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {value!r}{hint}; valid: {', '.join(map(str, valid))}"
