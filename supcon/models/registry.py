"""Encoder registry: ``create_encoder(name)`` builds any registered encoder by name.

An encoder maps images ``[B, C, H, W]`` to pooled representations ``[B, num_features]`` and
exposes ``.num_features``. ``create_encoder`` also records how it was built in
``.encoder_config`` (a JSON-able dict), so that exported weights can be rebuilt later.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

from torch import nn

from ..checks import OBJECT_PREFIX, check_int, is_object_name
from .external import create_external, feature_size, is_external
from .text import create_text_encoder, is_text_encoder

EncoderFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, EncoderFactory] = {}


def register_encoder(name: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator: register ``factory(in_channels=..., **kwargs) -> nn.Module`` under ``name``.

    The factory's keyword parameters become the encoder's options (``model.encoder_options``);
    the module it returns must map ``[B, C, H, W] -> [B, num_features]`` and set
    ``.num_features``.

    Raises:
        ValueError: ``name`` is already registered (when the decorator is applied).
    """

    def decorate(factory: EncoderFactory) -> EncoderFactory:
        if name in _REGISTRY:
            raise ValueError(f"encoder name {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorate


def list_encoders() -> list[str]:
    """Names of all registered encoders, sorted."""
    return sorted(_REGISTRY)


def create_encoder(name: str, in_channels: int = 3, *, image_size: int | None = None, **kwargs) -> nn.Module:
    """Build the encoder registered as ``name`` for images with ``in_channels`` channels.

    ``kwargs`` are the encoder's own options (e.g. ``widths`` of ``small-resnet``, ``norm``).
    ``timm:<name>`` and ``torchvision:<name>`` build that library's backbone without its
    classifier, adapted to ``in_channels`` (options: ``pretrained``, from files already on disk
    only, and for timm ``drop_rate``, ``drop_path_rate``; see :mod:`supcon.models.external`);
    ``image_size`` (the side of the images it will see, not an option: it is not recorded) makes
    such a backbone check that it takes that size, so that a model with a fixed input size, or
    one too deep for small images, is refused here in one line rather than at the first batch.
    The result maps ``[B, in_channels, H, W] -> [B, num_features]`` and records how it was built
    in ``.encoder_config``. ``transformers:<folder>`` is a text encoder (a list of strings ->
    ``[B, num_features]``; ``in_channels`` is unused; options ``max_length``, ``pooling``,
    ``normalize``, ``pretrained``: see :mod:`supcon.models.text`).

    Raises:
        ValueError: unknown name (the closest names are suggested), a bad ``in_channels``, an
            option the encoder does not take (its valid options are listed), timm missing,
            pretrained weights not on disk or not fitting, a backbone that does not take
            ``image_size``, or a backbone whose output is not ``[B, F]``.
    """
    factory = _REGISTRY.get(name)
    if is_object_name(name):
        raise ValueError(f"encoder {name!r} was your own module, given to supcon.train in Python; nothing can "
                         f"rebuild it from its name: pass it again (load_encoder(run, encoder="
                         f"{name.removeprefix(OBJECT_PREFIX)}(...)))")
    if factory is None and not is_external(name) and not is_text_encoder(name):
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown encoder {name!r}{hint} (choices: {', '.join(list_encoders())}; "
                         "or timm:<name>, torchvision:<name>, transformers:<folder>)")
    if is_text_encoder(name):
        _check_options(name, create_text_encoder, kwargs)
        encoder = create_text_encoder(name, **kwargs)
        encoder.encoder_config = {"name": name, **kwargs}
        return encoder
    check_int("in_channels", in_channels)
    check_int("image_size", image_size, allow_none=True)
    if factory is None:
        encoder = create_external(name, in_channels, image_size, **kwargs)
    else:
        _check_options(name, factory, kwargs)
        encoder = factory(in_channels=in_channels, **kwargs)
    encoder.encoder_config = {"name": name, "in_channels": in_channels, **kwargs}
    return encoder


def _check_options(name: str, factory: EncoderFactory, kwargs: dict) -> None:
    valid = [p for p in inspect.signature(factory).parameters if p not in ("in_channels", "name")]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"encoder {name!r} got unknown option(s) {unknown}; valid options: {valid}"
        )


def adopt_encoder(module: nn.Module, in_channels: int, image_size: int) -> nn.Module:
    """Your own module as an encoder: checks that it maps ``[B, in_channels, image_size,
    image_size]`` to ``[B, F]`` and sets ``module.num_features = F`` (in place; returns it).

    Raises:
        ValueError: ``module`` is not an ``nn.Module``, its output is not ``[B, F]``, or it has a
            ``num_features`` that differs from F (e.g. a classifier still attached).
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"encoder: expected an nn.Module or an encoder name, got {type(module).__name__}")
    name = type(module).__name__
    size = feature_size(name, module, in_channels, image_size)
    declared = getattr(module, "num_features", None)
    if isinstance(declared, int) and declared != size:
        raise ValueError(f"encoder {name!r}: returns [B, {size}] but its num_features is {declared}; remove "
                         "its classifier so that it returns the pooled features (timm: num_classes=0)")
    module.num_features = size
    return module
