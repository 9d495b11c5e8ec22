"""torchvision backbones for :mod:`.external`: built as torchvision's own builder builds them for
its weights, loaded strictly, adapted to the data's channels, and stripped of their last layer only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

_HEADS = ("fc", "classifier", "heads", "head")  # torchvision's classifier attribute names
# auxiliary classifiers: in torchvision's weight files, not in the encoder (built without them)
_AUX = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}


def torchvision_backbone(name: str, arch: str, in_channels: int,
                         weights_file: Path | None) -> tuple[nn.Module, int, tuple[int, int] | None, int]:
    """The model (with the weights of ``weights_file``, if given) without its last layer; the size of
    that layer's input; the only input size it takes (None: any); the smallest side torchvision lists.

    Raises:
        ValueError: the weights do not fit, or the model has no classifier or first convolution to adapt.
    """
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    pretrained = weights_file is not None
    model = torchvision.models.get_model(arch, weights=None, **_builder_kwargs(arch, weights, pretrained, in_channels))
    if pretrained:
        _load_strictly(name, model, weights_file, drop=_AUX.get(arch, ()))
    _adapt_first_conv(name, model, in_channels)
    features = _remove_last_layer(name, model)
    return model, features, _fixed_size(arch, model, weights), max(weights.meta.get("min_size", (1, 1)))


def _builder_kwargs(arch: str, weights, pretrained: bool, in_channels: int) -> dict:
    """The constructor arguments torchvision's builder sets when it loads its weights, so that a
    file fits the model and the model reads its input as the weights expect."""
    if arch in _AUX:
        # the weights expect ImageNet-normalised RGB, transformed as they were trained (a 3-channel rule)
        return {"aux_logits": False, "init_weights": not pretrained,
                "transform_input": pretrained and in_channels == 3}
    if arch.startswith("vit_") and pretrained:
        return {"image_size": weights.meta["min_size"][0]}  # vit_h_14's weights are for 518 px
    return {}


def _fixed_size(arch: str, model: nn.Module, weights) -> tuple[int, int] | None:
    if arch.startswith("vit_"):  # its position embedding is for one size, checked on every input
        return (model.image_size, model.image_size)
    if arch.startswith("maxvit_"):  # its attention windows are laid out for the size of its weights
        return tuple(weights.meta["min_size"])
    return None


def _load_strictly(name: str, model: nn.Module, path: Path, drop: tuple[str, ...]) -> None:
    """Load every tensor of the model from ``path``, which must hold exactly the model's tensors
    (those under the ``drop`` prefixes aside)."""
    state = {k: v for k, v in _read_weights(name, path).items() if not k.startswith(drop)}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} for {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    problems = [f"{len(keys)} {what} ({_few(keys)})" for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)) if keys]
    if problems:
        raise ValueError(f"encoder {name!r}: the weights in {path} do not fit: {', '.join(problems)}")
    model.load_state_dict(state)


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def _read_weights(name: str, path: Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors``, or a torch file read with ``weights_only=True``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"encoder {name!r}: {path} holds no state dict (names -> tensors)")
    return state


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def _remove_last_layer(name: str, model: nn.Module) -> int:
    """Replace the last linear layer of the classifier (squeezenet: its last 1x1 convolution) by an
    identity, keeping what comes before and after it (pooling, norms, fc6/fc7); returns its input size."""
    head = next((h for h in _HEADS if isinstance(getattr(model, h, None), nn.Module)), None)
    layers = [(p, m) for p, m in model.get_submodule(head).named_modules(prefix=head)
              if isinstance(m, (nn.Linear, nn.Conv2d))] if head else []
    if not layers:
        raise ValueError(f"encoder {name!r}: found no classifier ({', '.join(_HEADS)}) to remove")
    path, last = layers[-1]
    _replace(model, path, nn.Identity())
    return last.in_features if isinstance(last, nn.Linear) else last.in_channels


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
    _replace(model, path, new)
