"""Backbones from timm and torchvision as encoders: ``timm:<name>`` and ``torchvision:<name>``.

:func:`~.registry.create_encoder` sends these names here. The backbone is built without its final
classifier layer, with ``in_channels`` input channels (timm adapts its stem itself; for torchvision
the first 3-channel convolution is replaced, its pretrained weights summed over RGB for one channel
as timm does), and wrapped in :class:`ExternalEncoder`. timm removes its own classifier
(``num_classes=0``); of a torchvision model only the last linear layer goes (squeezenet's last 1x1
convolution), so what the model does before it stays: its pooling, its final norm (convnext,
maxvit), its fc6/fc7 (vgg, alexnet), and the feature size is that layer's input size, whatever the
image size. A model that cannot take the data's image size is refused here, in one line (a fixed
input size, or images too small for its pooling). Only names the library lists are accepted
(``timm.list_models`` and ``timm.list_pretrained``, ``torchvision.models.list_models`` of the
classification models), so a name can never make Python import a module or fetch a model from a hub.

Pretrained weights are used only where they already are on disk: ``pretrained=True`` looks in the
Hugging Face cache and torch hub's ``checkpoints/`` folder (where timm and torchvision put what
they download), ``pretrained="path/file"`` loads that file; nothing is downloaded at run time. A
torchvision file must fit the model exactly (only the auxiliary classifiers of googlenet and
inception_v3, which the encoder does not have, are dropped from it).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ._torchvision import torchvision_backbone

PREFIXES = ("timm:", "torchvision:")
OPTIONS = {"timm": ("pretrained", "drop_rate", "drop_path_rate"), "torchvision": ("pretrained",)}
_PROBE_SIZE = 64  # side of the blank image that checks the output when the image size is not given


def is_external(name: object) -> bool:
    """Whether ``name`` is a ``timm:<name>`` or ``torchvision:<name>`` encoder name."""
    return isinstance(name, str) and name.startswith(PREFIXES)


class ExternalEncoder(nn.Module):
    """A timm or torchvision backbone without its classifier: ``[B, C, H, W] -> [B, num_features]``.

    Args:
        backbone: the model; its output must be ``[B, num_features]``.
        num_features: the representation size.
        name: the encoder name (``timm:...`` / ``torchvision:...``), for messages.

    Raises:
        ValueError: (when called) the backbone's output is not a ``[B, num_features]`` tensor.
    """

    def __init__(self, backbone: nn.Module, num_features: int, name: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.name = name

    def forward(self, images: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, num_features]``.

        Raises:
            ValueError: the backbone's output is not a ``[B, num_features]`` tensor (e.g. a
                model that returns auxiliary outputs in training mode).
        """
        out = self.backbone(images)
        if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[1] != self.num_features:
            raise ValueError(_not_pooled(self.name, out, f"[B, {self.num_features}]"))
        return out


def create_external(name: str, in_channels: int, image_size: int | None = None, **options) -> ExternalEncoder:
    """Build the ``timm:<name>`` or ``torchvision:<name>`` backbone as an encoder.

    Args:
        name: ``timm:<model>`` (any of ``timm.list_models()`` / ``timm.list_pretrained()``) or
            ``torchvision:<model>`` (a classification model of ``torchvision.models``).
        in_channels: image channels (1 for grayscale data).
        image_size: the side of the (square) images it will see; the model is checked on it.
            None: checked on 64 px (or the model's fixed or smallest size).
        **options: ``pretrained`` (False; True: weights from the local caches; a path: that
            file) and, for timm, ``drop_rate`` and ``drop_path_rate``.

    Raises:
        ValueError: unknown model (close names suggested), unknown option, timm not installed,
            pretrained weights not on disk or not fitting the model, a model that cannot take
            ``image_size`` (fixed input size, too small), or a backbone whose output is not ``[B, F]``.
    """
    source, _, arch = name.partition(":")
    _check_name(name, source, arch)
    unknown = sorted(set(options) - set(OPTIONS[source]))
    if unknown:
        raise ValueError(f"encoder {name!r} got unknown option(s) {unknown}; valid options: "
                         f"{list(OPTIONS[source])}")
    pretrained = options.pop("pretrained", False)
    if not isinstance(pretrained, (bool, str)):
        raise ValueError(f"encoder {name!r}: pretrained must be true, false or a file path, got "
                         f"{pretrained!r}")
    if source == "timm":  # checks a fixed size before building: a large model takes seconds
        backbone, declared, fixed, smallest = _timm_backbone(name, arch, in_channels, image_size, pretrained,
                                                             options)
    else:
        backbone, declared, fixed, smallest = torchvision_backbone(name, arch, in_channels,
                                                                   _torchvision_file(name, arch, pretrained))
        _check_fixed_size(name, fixed, image_size)
    size = (image_size, image_size) if image_size else fixed or (max(_PROBE_SIZE, smallest),) * 2
    features = feature_size(name, backbone, in_channels, size, smallest=smallest)
    if declared is not None and features != declared:  # e.g. a flattened feature map
        raise ValueError(f"encoder {name!r}: the backbone returns {features} features per image on "
                         f"{size[0]}x{size[1]} images, not the {declared} of its last layer")
    return ExternalEncoder(backbone, features, name)


def _suggest(name: str, source: str, arch: str, known: list[str]) -> ValueError:
    close = difflib.get_close_matches(arch, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(f'{source}:{c}') for c in close)}?" if close else ""
    listing = "timm.list_models()" if source == "timm" else "torchvision.models.list_models()"
    return ValueError(f"unknown encoder {name!r}: {source} has no model {arch!r}{hint} "
                      f"(the names are in {listing})")


def _check_name(name: str, source: str, arch: str) -> None:
    """Raise ValueError unless ``arch`` is a model name that ``source`` itself lists."""
    if source == "timm":
        try:
            import timm
        except ImportError:
            raise ValueError(f"encoder {name!r} needs timm: pip install 'supcon[timm]' "
                             "(or pip install timm)") from None
        known = timm.list_models()
        if arch not in known and arch not in timm.list_pretrained():
            raise _suggest(name, "timm", arch, known)
    else:
        import torchvision

        known = torchvision.models.list_models(module=torchvision.models)
        if arch not in known:
            raise _suggest(name, "torchvision", arch, known)


def _check_fixed_size(name: str, fixed: tuple[int, int] | None, image_size: int | None) -> None:
    """Refuse ``image_size`` for a model that takes only ``fixed`` (height, width) images.

    Raises:
        ValueError: ``fixed`` is set and differs from ``image_size`` x ``image_size``.
    """
    if fixed is not None and image_size is not None and tuple(fixed) != (image_size, image_size):
        raise ValueError(f"encoder {name!r} takes only {fixed[0]}x{fixed[1]} images (a fixed input size), "
                         f"not {image_size}x{image_size}: set data.image_size={fixed[0]} or pick another model")


def _torchvision_file(name: str, arch: str, pretrained: bool | str) -> Path | None:
    """The weights file: None (no pretrained weights), the given file, or torch hub's download."""
    if not pretrained:
        return None
    import torchvision

    return _local_file(name, pretrained, [_hub_checkpoint(torchvision.models.get_model_weights(arch).DEFAULT.url)])


def _timm_backbone(name, arch, in_channels, image_size, pretrained, options):
    import timm

    for key in ("drop_rate", "drop_path_rate"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value < 1):
            raise ValueError(f"encoder {name!r}: {key} must be a number in [0, 1), got {value!r}")
    cfg = timm.models.get_pretrained_cfg(arch, allow_unregistered=True)
    fixed = tuple(cfg.input_size[-2:]) if cfg is not None and cfg.fixed_input_size else None
    _check_fixed_size(name, fixed, image_size)  # before building: a large model takes seconds
    kwargs = {k: v for k, v in options.items() if v is not None}
    if pretrained:
        path = _local_file(name, pretrained, _timm_candidates(cfg))
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path), "source": "timm"})
    model = timm.create_model(arch, num_classes=0, in_chans=in_channels, **kwargs)
    smallest = max((getattr(cfg, "min_input_size", None) or (0, 0, 0))[-2:])
    return model, None, fixed, smallest


def _timm_candidates(cfg) -> list[Path]:
    """Where timm would have put downloaded weights: the Hugging Face cache, torch hub's."""
    found = []
    if cfg is None:
        return found
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]:
            cached = try_to_load_from_cache(cfg.hf_hub_id, filename)
            found.append(Path(cached) if isinstance(cached, str) else _hf_path(cfg.hf_hub_id, filename))
    if cfg.url:
        found.append(_hub_checkpoint(cfg.url))
    if cfg.file:
        found.append(Path(cfg.file))
    return found


def _hf_path(repo: str, filename: str) -> Path:
    """Where the Hugging Face cache would hold ``filename`` of ``repo`` (for the message)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots" / "*" / filename


def _hub_checkpoint(url: str) -> Path:
    """Where torch hub keeps the file downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _local_file(name: str, pretrained: bool | str, candidates: list[Path]) -> Path:
    """The weights file to load: the given path, or the first candidate on disk.

    Raises:
        ValueError: the path is not a file, or no candidate is on disk.
    """
    if isinstance(pretrained, str):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ValueError(f"encoder {name!r}: pretrained={pretrained!r} is not a file; nothing "
                             "is downloaded at run time")
        return path
    for path in candidates:
        if "*" not in str(path) and path.is_file():
            return path
    where = ", ".join(map(str, candidates)) or "nowhere (the model has no pretrained weights)"
    raise ValueError(f"encoder {name!r}: pretrained weights are not on disk (looked for {where}); "
                     "nothing is downloaded at run time: fetch them once on a machine with "
                     "network into that cache, give pretrained=<file>, or set pretrained=false")


def feature_size(name: str, backbone: nn.Module, in_channels: int, size: int | tuple[int, int],
                 smallest: int = 0) -> int:
    """The backbone's output size on a blank ``[2, in_channels, size, size]`` batch (``size``: a side,
    or height and width; eval mode, no gradients, no random draws), on the device of its parameters.

    Args:
        smallest: the smallest side the model's library lists (0: none), named if it fails.

    Raises:
        ValueError: the backbone fails on that batch (one line: the model's own error), or its
            output is not a ``[B, F]`` tensor.
    """
    height, width = (size, size) if isinstance(size, int) else size
    was_training = backbone.training
    device = next(iter(backbone.parameters()), torch.zeros(0)).device
    backbone.eval()
    try:
        with torch.no_grad():
            out = backbone(torch.zeros(2, in_channels, height, width, device=device))
    # what models raise on an input size they cannot take (torch's shape errors, their own size checks,
    # asserts included); anything else is a bug and keeps its traceback
    except (RuntimeError, ValueError, AssertionError) as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        hint = (f"its library lists {smallest}x{smallest} as its smallest input: set data.image_size to at "
                "least that" if smallest > min(height, width) else "try another data.image_size")
        raise ValueError(f"encoder {name!r} does not run on {height}x{width} images ({detail}); {hint} or "
                         "pick another model") from err
    finally:
        backbone.train(was_training)
    if not isinstance(out, Tensor) or out.dim() != 2:
        raise ValueError(_not_pooled(name, out, "[B, F]"))
    return int(out.shape[1])


def _not_pooled(name: str, out, want: str) -> str:
    shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
    return (f"encoder {name!r}: the backbone's output after pooling is {shape}, not {want}; "
            "an encoder must return one pooled vector per image (pick a model that pools, "
            "e.g. a CNN, or a ViT whose classifier token is returned)")
