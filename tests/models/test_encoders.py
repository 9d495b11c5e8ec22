"""Encoder registry, stems, norms and sizes, checked against torchvision and published counts."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from supcon.models import create_encoder, list_encoders, register_encoder
from supcon.models import registry as registry_module

CIFAR = ["resnet18", "resnet34", "resnet50", "resnet101"]
IMAGENET = ["imagenet-resnet50", "imagenet-resnet101", "imagenet-resnet152", "imagenet-resnet200"]
EXPECTED_FEATURES = {"small-resnet": 128, "small-resnet-s2": 128, "resnet18": 512, "resnet34": 512} | {
    name: 2048 for name in ["resnet50", "resnet101", *IMAGENET]
}


def test_registry_lists_every_encoder():
    assert set(EXPECTED_FEATURES) <= set(list_encoders())
    assert list_encoders() == sorted(list_encoders())


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", sorted(EXPECTED_FEATURES))
def test_every_encoder_builds_and_pools(name, in_channels):
    """Shapes only, on the meta device (no memory, no compute), so the big ones stay cheap."""
    with torch.device("meta"):
        encoder = create_encoder(name, in_channels=in_channels)
        side = 64 if name in IMAGENET else 28
        out = encoder(torch.empty(2, in_channels, side, side))
    assert encoder.num_features == EXPECTED_FEATURES[name]
    assert out.shape == (2, encoder.num_features)
    first_conv = next(m for m in encoder.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == in_channels


@pytest.mark.parametrize(
    "name, in_channels, side",
    [("small-resnet", 1, 28), ("small-resnet", 3, 32), ("small-resnet-s2", 1, 28), ("resnet18", 1, 32),
     ("imagenet-resnet50", 3, 64)],
)  # fmt: skip
def test_encoder_forward_backward_is_finite(name, in_channels, side):
    torch.manual_seed(0)
    encoder = create_encoder(name, in_channels=in_channels).train()
    out = encoder(torch.randn(2, in_channels, side, side))
    assert out.shape == (2, encoder.num_features) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())


@pytest.mark.parametrize("name", ["small-resnet", "resnet18"])
def test_encoder_config_round_trip(name):
    encoder = create_encoder(name, in_channels=1, zero_init_residual=True, norm="group")
    config = dict(encoder.encoder_config)
    assert config["name"] == name and config["in_channels"] == 1
    rebuilt = create_encoder(config.pop("name"), **config)
    shapes = {k: v.shape for k, v in encoder.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
    rebuilt.load_state_dict(encoder.state_dict())  # strict: same keys


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match="resnet18"):
        create_encoder("resnet-18")
    with pytest.raises(ValueError, match="unknown encoder"):
        create_encoder("vit-huge")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"in_channels": 0}, "in_channels"),
        ({"in_channels": 2.0}, "in_channels"),
        ({"depth": 3}, "valid options"),
        ({"norm": "layer"}, "norm"),
        ({"widths": []}, "widths"),
        ({"blocks": (1, 1)}, "blocks"),
        ({"strides": (1, 0, 2)}, "strides"),
        ({"widths": 32}, "widths"),
    ],
)
def test_bad_options_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_encoder("small-resnet", **kwargs)


def test_register_decorator(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    @register_encoder("tiny-test")
    def tiny(in_channels: int = 3, width: int = 4) -> nn.Module:
        net = nn.Sequential(nn.Conv2d(in_channels, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        net.num_features = width
        return net

    assert "tiny-test" in list_encoders()
    assert create_encoder("tiny-test", 2, width=5)(torch.zeros(3, 2, 8, 8)).shape == (3, 5)
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("tiny-test")(tiny)


def _spatial_sizes(encoder: nn.Module, side: int) -> dict[str, int]:
    """Output side length of the stem and of each stage, seen through forward hooks (on meta)."""
    sizes = {}
    names = ["relu", "layer1", "layer2", "layer3", "layer4"]
    hooks = [
        getattr(encoder, n).register_forward_hook(
            lambda m, i, o, n=n: sizes.update({n: o.shape[-1]}) if n not in sizes else None
        )
        for n in names
    ]
    encoder(torch.empty(2, 3, side, side, device="meta"))
    for hook in hooks:
        hook.remove()
    return sizes


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_stem_has_no_maxpool_and_stride_one(name):
    with torch.device("meta"):
        encoder = create_encoder(name)
    assert encoder.conv1.kernel_size == (3, 3) and encoder.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in encoder.modules())
    # 32x32 input: full resolution through layer1, then /2 per stage down to 4x4.
    sizes = _spatial_sizes(encoder, 32)
    assert sizes == {"relu": 32, "layer1": 32, "layer2": 16, "layer3": 8, "layer4": 4}


def test_imagenet_stem_downsamples_by_four():
    with torch.device("meta"):
        encoder = create_encoder("imagenet-resnet50")
    assert encoder.conv1.kernel_size == (7, 7) and encoder.conv1.stride == (2, 2)
    assert isinstance(encoder.maxpool, nn.MaxPool2d)
    assert _spatial_sizes(encoder, 64) == {
        "relu": 32, "layer1": 16, "layer2": 8, "layer3": 4, "layer4": 2
    }  # fmt: skip


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_parameter_counts_match_torchvision(depth):
    """Trunk + a 1000-way fc must equal torchvision's own ResNet exactly (built on meta: no RAM)."""
    name = f"resnet{depth}" if depth < 50 else f"imagenet-resnet{depth}"
    with torch.device("meta"):
        ours = create_encoder(name)
        reference = getattr(torchvision.models, f"resnet{depth}")()
    fc = ours.num_features * 1000 + 1000
    stem_difference = 0 if depth >= 50 else 64 * 3 * (49 - 9)  # CIFAR stem is 3x3, not 7x7
    assert _count(ours) + fc + stem_difference == _count(reference)


def test_resnet200_matches_the_paper():
    with torch.device("meta"):
        encoder = create_encoder("imagenet-resnet200")
    stages = [encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4]
    assert [len(s) for s in stages] == [3, 24, 36, 3]
    assert all(isinstance(b, Bottleneck) for s in stages for b in s)
    # depth 200 = stem conv + 3 convs per bottleneck (shortcut convs not counted) + fc
    main_path_convs = [
        n for n, m in encoder.named_modules() if isinstance(m, nn.Conv2d) and "downsample" not in n
    ]
    assert len(main_path_convs) + 1 == 200
    # He et al. (2016b) report 64.7M parameters for ResNet-200 with its 1000-way classifier.
    total = _count(encoder) + 2048 * 1000 + 1000
    assert abs(total - 64.7e6) / 64.7e6 < 0.005


def test_norm_none_makes_samples_independent():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 28, 28)
    free = create_encoder("small-resnet", 1, norm="none").train()
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in free.modules())
    torch.testing.assert_close(free(x)[:1], free(x[:1]))
    batch_norm = create_encoder("small-resnet", 1).train()
    assert not torch.allclose(batch_norm(x)[:1], batch_norm(x[:1]), atol=1e-4)


def test_group_norm_option():
    encoder = create_encoder("resnet18", 1, norm="group")
    norms = [m for m in encoder.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert norms and all(isinstance(m, nn.GroupNorm) for m in norms)
    assert all(m.num_channels % m.num_groups == 0 for m in norms)


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize(
    "name, options", [("small-resnet", {"blocks": (2, 1, 1)}), ("resnet50", {})]
)
def test_zero_init_residual_makes_blocks_identity(name, options, norm):
    torch.manual_seed(0)
    encoder = create_encoder(name, zero_init_residual=True, norm=norm, **options).eval()
    blocks = [m for m in encoder.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    plain = [b for b in blocks if b.downsample is None]
    assert plain
    x = torch.randn(2, plain[0].conv1.in_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(plain[0](x), torch.relu(x))
    # without the option, the same block is not the identity
    default = create_encoder(name, norm=norm, **options).eval()
    block = [m for m in default.modules() if isinstance(m, (BasicBlock, Bottleneck))][1]
    assert block.downsample is None
    with torch.no_grad():
        assert not torch.allclose(block(x), torch.relu(x))


def test_small_resnet_options_shape_the_net():
    encoder = create_encoder("small-resnet", 1, widths=(8, 16), blocks=(2, 1), strides=(1, 2))
    assert encoder.num_features == 16
    assert [len(stage) for stage in encoder.stages] == [2, 1]
    assert encoder(torch.randn(2, 1, 28, 28)).shape == (2, 16)


def test_small_resnet_default_resolutions():
    """3x3 stride-1 stem at full resolution, then each stage halves: 28 -> 14 -> 7 -> 4."""
    with torch.device("meta"):
        encoder = create_encoder("small-resnet", 1)
    stem_conv = encoder.stem[0]
    assert stem_conv.kernel_size == (3, 3) and stem_conv.stride == (1, 1)
    sides = []
    for module in [encoder.stem, *encoder.stages]:
        module.register_forward_hook(lambda m, i, o: sides.append(o.shape[-1]))
    encoder(torch.empty(2, 1, 28, 28, device="meta"))
    assert sides == [28, 14, 7, 4]


def test_small_resnet_s2_downsamples_in_the_stem_and_keeps_the_parameters():
    """28 -> 14 at the stem, then 14 -> 7 -> 4; no more weights than small-resnet (its first
    stage keeps the resolution, so it needs no 1x1 shortcut), and it is small-resnet with the
    documented options."""
    s2 = create_encoder("small-resnet-s2", in_channels=1)
    base = create_encoder("small-resnet", in_channels=1)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(s2) == count(base) - 32 * 32 - 2 * 32  # the 1x1 shortcut conv + its norm
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
             for m in (s2.stem, *s2.stages)]
    s2(torch.randn(2, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    assert sizes == [14, 14, 7, 4]
    same = create_encoder("small-resnet", in_channels=1, stem_stride=2, strides=[1, 2, 2])
    same.load_state_dict(s2.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(same.eval()(x), s2.eval()(x))


def test_stem_stride_must_be_a_positive_int():
    with pytest.raises(ValueError, match="stem_stride must be >= 1, got 0"):
        create_encoder("small-resnet", in_channels=1, stem_stride=0)
