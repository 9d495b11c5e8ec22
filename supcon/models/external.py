"""Backbones from timm and torchvision as encoders: ``timm:<name>`` and ``torchvision:<name>``.

:func:`~.registry.create_encoder` sends these names here. The backbone is built without its
classifier, with ``in_channels`` input channels (timm adapts its stem itself; for torchvision the
first 3-channel convolution is replaced, its pretrained weights summed over RGB for one channel
as timm does), and wrapped in :class:`ExternalEncoder`, whose ``num_features`` is read from the
backbone's output on a blank image. Only names the library lists are accepted (``timm.list_models``
and ``timm.list_pretrained``, ``torchvision.models.list_models`` of the classification models),
so a name can never make Python import a module or fetch a model from a hub.

Pretrained weights are used only where they already are on disk: ``pretrained=True`` looks in the
Hugging Face cache and torch hub's ``checkpoints/`` folder (where timm and torchvision put what
they download), ``pretrained="path/file"`` loads that file; nothing is downloaded at run time.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import torch
from torch import Tensor, nn

PREFIXES = ("timm:", "torchvision:")
OPTIONS = {"timm": ("pretrained", "drop_rate", "drop_path_rate"), "torchvision": ("pretrained",)}
_HEADS = ("fc", "classifier", "heads", "head")  # torchvision's classifier attribute names
_PROBE_SIZE = 64  # side of the blank image that reads the feature size (unless a model needs more)


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


def create_external(name: str, in_channels: int, **options) -> ExternalEncoder:
    """Build the ``timm:<name>`` or ``torchvision:<name>`` backbone as an encoder.

    Args:
        name: ``timm:<model>`` (any of ``timm.list_models()`` / ``timm.list_pretrained()``) or
            ``torchvision:<model>`` (a classification model of ``torchvision.models``).
        in_channels: image channels (1 for grayscale data).
        **options: ``pretrained`` (False; True: weights from the local caches; a path: that
            file) and, for timm, ``drop_rate`` and ``drop_path_rate``.

    Raises:
        ValueError: unknown model (close names suggested), unknown option, timm not installed,
            pretrained weights not on disk, or a backbone whose output is not ``[B, F]``.
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
    if source == "timm":
        backbone, probe_size = _timm_backbone(name, arch, in_channels, pretrained, options)
    else:
        backbone, probe_size = _torchvision_backbone(name, arch, in_channels, pretrained)
    return ExternalEncoder(backbone, feature_size(name, backbone, in_channels, probe_size), name)


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


def _timm_backbone(name, arch, in_channels, pretrained, options) -> tuple[nn.Module, int]:
    import timm

    for key in ("drop_rate", "drop_path_rate"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value < 1):
            raise ValueError(f"encoder {name!r}: {key} must be a number in [0, 1), got {value!r}")
    cfg = timm.models.get_pretrained_cfg(arch, allow_unregistered=True)
    kwargs = {k: v for k, v in options.items() if v is not None}
    if pretrained:
        path = _local_file(name, pretrained, _timm_candidates(cfg))
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path), "source": "timm"})
    model = timm.create_model(arch, num_classes=0, in_chans=in_channels, **kwargs)
    fixed = cfg is not None and getattr(cfg, "fixed_input_size", False)
    size = max(cfg.input_size[-2:]) if fixed else max(_PROBE_SIZE, *(getattr(cfg, "min_input_size", None) or (0,)))
    return model, size


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
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _local_file(name: str, pretrained: bool | str, candidates: list[Path]) -> Path:
    """The weights file to load: the given path, or the first candidate on disk."""
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


def _torchvision_backbone(name, arch, in_channels, pretrained) -> tuple[nn.Module, int]:
    import torchvision

    kwargs = {"aux_logits": False, "init_weights": True} if arch in ("googlenet", "inception_v3") else {}
    model = torchvision.models.get_model(arch, weights=None, **kwargs)
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    if pretrained:
        path = _local_file(name, pretrained, [_hub_checkpoint(weights.url)])
        try:
            model.load_state_dict(_read_weights(path), strict=not kwargs)
        except RuntimeError as err:
            raise ValueError(f"encoder {name!r}: the weights in {path} do not fit "
                             f"({str(err).splitlines()[0]})") from None
    _adapt_first_conv(name, model, in_channels)
    head = next((h for h in _HEADS if isinstance(getattr(model, h, None), nn.Module)), None)
    if head is None:
        raise ValueError(f"encoder {name!r}: found no classifier ({', '.join(_HEADS)}) to remove")
    setattr(model, head, nn.Identity())
    min_size = weights.meta.get("min_size", (1, 1))
    return model, max(_PROBE_SIZE, *min_size)


def _read_weights(path: Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors``, or a torch file read with ``weights_only=True``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _adapt_first_conv(name: str, model: nn.Module, in_channels: int) -> None:
    """Give the first 3-channel convolution ``in_channels`` inputs (weights summed over RGB for
    one channel, else repeated and rescaled, as timm's ``adapt_input_conv``)."""
    if in_channels == 3:
        return
    path, conv = next(((p, m) for p, m in model.named_modules()
                       if isinstance(m, nn.Conv2d) and m.in_channels == 3), (None, None))
    if conv is None:
        raise ValueError(f"encoder {name!r}: found no 3-channel input convolution to adapt to "
                         f"in_channels={in_channels}")
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
    with torch.no_grad():
        weight = conv.weight
        if in_channels == 1:
            new.weight.copy_(weight.sum(dim=1, keepdim=True))
        else:
            repeats = -(-in_channels // 3)
            new.weight.copy_(weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (3 / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def feature_size(name: str, backbone: nn.Module, in_channels: int, size: int) -> int:
    """The backbone's output size on a blank ``[2, in_channels, size, size]`` batch (eval mode,
    no gradients, no random draws), on the device of its parameters.

    Raises:
        ValueError: the output is not a ``[B, F]`` tensor.
    """
    was_training = backbone.training
    device = next(iter(backbone.parameters()), torch.zeros(0)).device
    backbone.eval()
    try:
        with torch.no_grad():
            out = backbone(torch.zeros(2, in_channels, size, size, device=device))
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
