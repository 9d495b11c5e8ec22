"""Augmentation: batched ops against torchvision's kernels and naive loops; every policy on RGB
and grey input; multi-view; reproducibility as a function of (seed, epoch, index)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from supcon.data import (
    POLICIES,
    AugmentedDataset,
    DataError,
    DatasetInfo,
    MultiView,
    TensorImageDataset,
    build_transform,
)
from supcon.data.augment import PadCropFlip, ResizedCropFlip, _grid_crop, crop_boxes
from supcon.data.colour import (
    ColorJitterGrey,
    GaussianBlur,
    brightness,
    contrast,
    grey,
    hue,
    saturation,
)


def _info(channels: int, size: int) -> DatasetInfo:
    return DatasetInfo(
        "t", channels, size, 3, ("a", "b", "c"), (0.5,) * channels, (0.25,) * channels
    )


def _images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0,
        256,
        (n, channels, size, size),
        generator=torch.Generator().manual_seed(seed),
        dtype=torch.uint8,
    )


def _dataset(n=8, channels=3, size=32):
    return TensorImageDataset(_images(n, channels, size), torch.arange(n) % 3)


# ------------------------------------------------------------------ single ops vs references
def test_colour_ops_match_torchvision():
    x = torch.rand(4, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    f = torch.tensor([0.6, 1.0, 1.3, 1.4], dtype=torch.float64)
    h = torch.tensor([-0.1, 0.0, 0.05, 0.1], dtype=torch.float64)
    for k in range(4):
        fk = float(f[k])
        torch.testing.assert_close(brightness(x, f)[k], TF.adjust_brightness_image(x[k], fk))
        torch.testing.assert_close(contrast(x, f)[k], TF.adjust_contrast_image(x[k], fk))
        torch.testing.assert_close(saturation(x, f)[k], TF.adjust_saturation_image(x[k], fk))
        torch.testing.assert_close(
            hue(x, h)[k], TF.adjust_hue_image(x[k], float(h[k])), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(contrast(x[:, :1], f)[k], TF.adjust_contrast_image(x[k, :1], fk))
    torch.testing.assert_close(grey(x), TF.rgb_to_grayscale_image(x))
    assert torch.equal(saturation(x[:, :1], f), x[:, :1]) and torch.equal(
        hue(x[:, :1], h), x[:, :1]
    )


def test_jitter_applies_ops_in_each_samples_own_order():
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    jit = ColorJitterGrey(0.4, 0.4, 0.4, 0.1, p=1.0, grey_p=0.0)
    u = torch.tensor(
        [
            [0.0, 0.9, 0.2, 0.7, 0.3, 0.9, 0.1, 0.5, 0.3, 0.99],
            [0.0, 0.1, 0.8, 0.4, 0.6, 0.1, 0.2, 0.3, 0.4, 0.99],
        ],
        dtype=torch.float64,
    )
    out = jit(x, u)
    kernels = [
        TF.adjust_brightness_image,
        TF.adjust_contrast_image,
        TF.adjust_saturation_image,
        TF.adjust_hue_image,
    ]
    ranges = [(0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)]
    for k in range(2):
        y = x[k]
        for op in np.argsort(u[k, 5:9].numpy(), kind="stable"):
            lo, hi = ranges[op]
            y = kernels[op](y, lo + float(u[k, 1 + op]) * (hi - lo))
        torch.testing.assert_close(out[k], y, atol=1e-5, rtol=0)
    never = ColorJitterGrey(0.4, 0.4, 0.4, 0.1, p=0.0, grey_p=1.0)
    torch.testing.assert_close(never(x, u), grey(x).expand(-1, 3, -1, -1))


def test_grey_images_get_brightness_and_contrast_only():
    x = torch.rand(3, 1, 8, 8)
    u = torch.rand(3, 10, dtype=torch.float64)
    u[:, 0] = 0.0
    assert torch.equal(ColorJitterGrey(0.0, 0.0, 0.4, 0.1, p=1.0, grey_p=1.0)(x, u), x)


def test_blur_matches_torchvision():
    x = torch.rand(2, 3, 20, 20)
    blur = GaussianBlur(7, sigma=(0.1, 2.0), p=0.5)
    u = torch.tensor([[0.1, 0.5], [0.9, 0.5]], dtype=torch.float64)  # blur sample 0 only
    out = blur(x, u)
    torch.testing.assert_close(
        out[0], TF.gaussian_blur_image(x[0], [7, 7], [1.05, 1.05]), atol=1e-5, rtol=0
    )
    assert torch.equal(out[1], x[1])


def _naive_bilinear(img: np.ndarray, box, size: int, flip: bool) -> np.ndarray:
    """Loop reference: bilinear sampling at the box's pixel centres, edges clamped."""
    top, left, h, w = box
    c, H, W = img.shape
    out = np.zeros((c, size, size))
    for yo in range(size):
        for xo in range(size):
            xs = size - 1 - xo if flip else xo
            sy = min(max(top + (yo + 0.5) * h / size - 0.5, 0), H - 1)
            sx = min(max(left + (xs + 0.5) * w / size - 0.5, 0), W - 1)
            y0, x0 = int(math.floor(sy)), int(math.floor(sx))
            y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
            wy, wx = sy - y0, sx - x0
            out[:, yo, xo] = (
                (1 - wy) * (1 - wx) * img[:, y0, x0]
                + (1 - wy) * wx * img[:, y0, x1]
                + wy * (1 - wx) * img[:, y1, x0]
                + wy * wx * img[:, y1, x1]
            )
    return out


def test_grid_crop_matches_naive_bilinear_and_interpolate():
    x = torch.rand(2, 2, 9, 11, generator=torch.Generator().manual_seed(3))
    boxes = torch.tensor([[1.0, 2.0, 6.0, 5.0], [0.0, 0.0, 9.0, 11.0]], dtype=torch.float64)
    flip = torch.tensor([True, False])
    out = _grid_crop(x, boxes, flip, 12)
    for k in range(2):
        ref = _naive_bilinear(x[k].numpy().astype(np.float64), boxes[k].tolist(), 12, bool(flip[k]))
        np.testing.assert_allclose(out[k].numpy(), ref, atol=1e-5)
    whole = torch.nn.functional.interpolate(
        x[1:], size=(12, 12), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out[1:], whole, atol=1e-5, rtol=0)


def _torchvision_rrc_loop(H, W, u, scale, ratio):
    """torchvision's RandomResizedCrop.get_params written as a loop over the same uniforms."""
    for a in range(10):
        target = H * W * (scale[0] + u[a] * (scale[1] - scale[0]))
        aspect = math.exp(
            math.log(ratio[0]) + u[10 + a] * (math.log(ratio[1]) - math.log(ratio[0]))
        )
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= W and 0 < h <= H:
            return [math.floor(u[20] * (H - h + 1)), math.floor(u[21] * (W - w + 1)), h, w]
    in_ratio = W / H
    if in_ratio < ratio[0]:
        w, h = W, round(W / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = H, round(H * ratio[1])
    else:
        w, h = W, H
    return [(H - h) // 2, (W - w) // 2, h, w]


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.2, 1.0), (1.5, 3.0)])
def test_crop_boxes_match_a_loop_over_torchvisions_rule(scale):
    u = torch.rand(200, 22, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    H = torch.full((200,), 20.0, dtype=torch.float64)
    W = torch.full((200,), 50.0, dtype=torch.float64)
    boxes = crop_boxes(H, W, u, scale, (3 / 4, 4 / 3))
    for k in range(200):
        assert boxes[k].long().tolist() == _torchvision_rrc_loop(
            20, 50, u[k].tolist(), scale, (3 / 4, 4 / 3)
        )


def test_big_boxes_use_antialiased_resized_crop():
    x = _images(1, 3, 64)
    u = torch.zeros(1, ResizedCropFlip.n_uniforms, dtype=torch.float64)
    u[0, :20] = 0.999  # the first try is the whole-ish image, bigger than the 16 px output
    u[0, 20:] = torch.tensor([0.3, 0.6, 0.9])  # position, no flip
    out = ResizedCropFlip(16, scale=(0.5, 1.0))(x, u)
    t, le, h, w = (
        crop_boxes(
            torch.tensor([64.0]), torch.tensor([64.0]), u[:, :22], (0.5, 1.0), (3 / 4, 4 / 3)
        )[0]
        .long()
        .tolist()
    )
    ref = TF.resized_crop(x[0].float() / 255, t, le, h, w, [16, 16], antialias=True)
    torch.testing.assert_close(out[0], ref, atol=1e-5, rtol=0)


def test_pad_crop_is_an_exact_window_of_the_padded_image():
    x = _images(3, 3, 8)
    u = torch.tensor([[0.0, 0.99, 0.9], [0.5, 0.5, 0.1], [0.99, 0.0, 0.2]], dtype=torch.float64)
    out = PadCropFlip(8, 2)(x, u)
    padded = torch.nn.functional.pad(x.float() / 255, (2, 2, 2, 2))
    for k, (top, left, flip) in enumerate([(0, 4, False), (2, 2, True), (4, 0, True)]):
        ref = padded[k, :, top : top + 8, left : left + 8]
        assert torch.equal(out[k], ref.flip(-1) if flip else ref)


# ------------------------------------------------------------------------------ policies
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("channels, size, in_size", [(3, 32, 32), (1, 28, 28), (3, 64, 80)])
def test_every_policy_on_rgb_and_grey(policy, channels, size, in_size):
    info = _info(channels, size)
    t = build_transform(policy, info)
    x = _images(4, channels, in_size)
    out = t.apply(x, torch.rand(4, t.n_uniforms, dtype=torch.float64))
    assert out.shape == (4, channels, size, size) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    one = t(x[0])
    assert one.shape == (channels, size, size) and one.dtype == torch.float32


def test_eval_transform_is_resize_crop_normalise():
    info = _info(3, 32)
    x = _images(2, 3, 32)
    t = build_transform("simaugment", info, train=False)
    torch.testing.assert_close(
        t.apply(x, torch.zeros(2, 0, dtype=torch.float64)), (x.float() / 255 - 0.5) / 0.25
    )
    big = _images(1, 3, 40)[0, :, :, :36]  # 40 x 36 -> shorter side 32, centre crop
    ref = TF.center_crop(TF.resize(big.float() / 255, [32], antialias=True), [32, 32])
    torch.testing.assert_close(t(big), (ref - 0.5) / 0.25, atol=2e-2, rtol=0)


def test_bad_policy_and_params():
    with pytest.raises(DataError, match="did you mean 'simaugment'"):
        build_transform("simaugmnt", _info(3, 32))
    with pytest.raises(DataError, match=r"unknown augmentation parameter\(s\) \['strenght'\]"):
        build_transform("simaugment", _info(3, 32), strenght=0.5)
    with pytest.raises(ValueError, match="3-channel"):
        build_transform("none", _info(3, 32))(torch.zeros(1, 32, 32, dtype=torch.uint8))


def test_params_take_effect():
    x = _images(64, 3, 32)
    u = torch.rand(64, 23 + 10, dtype=torch.float64)
    full = build_transform(
        "simaugment", _info(3, 32), crop_scale=(1.0, 1.0), flip_p=0.0, strength=0.0, grey_p=0.0
    )
    torch.testing.assert_close(
        full.apply(x, u), (x.float() / 255 - 0.5) / 0.25
    )  # every op neutralised


# --------------------------------------------------------------------- views, reproducibility
@pytest.mark.parametrize("policy", [p for p in POLICIES if p != "none"])
def test_views_differ(policy):
    ds = AugmentedDataset(
        _dataset(32, 1, 28), MultiView(build_transform(policy, _info(1, 28)), 3), seed=0
    )
    views = torch.stack([v for v, _ in ds.__getitems__(list(range(32)))])
    assert views.shape == (32, 3, 1, 28, 28)
    same = [
        bool(torch.equal(views[k, a], views[k, b]))
        for k in range(32)
        for a, b in ((0, 1), (0, 2), (1, 2))
    ]
    assert sum(same) <= (0.1 * len(same) if policy == "crop-flip" else 0)  # 162 crop-flip outcomes


def test_augmentation_is_a_function_of_seed_epoch_index():
    base = _dataset(8)
    t = MultiView(build_transform("simaugment", _info(3, 32)), 2)
    a, b = AugmentedDataset(base, t, seed=5), AugmentedDataset(base, t, seed=5)
    batch = torch.stack([v for v, _ in a.__getitems__([3, 1, 7])])
    assert torch.equal(batch[0], b[3][0]) and torch.equal(batch[2], b[7][0])  # batch == one by one
    b.set_epoch(1)
    assert not torch.equal(b[3][0], batch[0])
    assert torch.equal(b[(0, 3)][0], batch[0])  # an explicit (epoch, index) key
    assert not torch.equal(AugmentedDataset(base, t, seed=6)[3][0], batch[0])
    assert a[3][1] == int(base.labels[3])


@pytest.mark.parametrize("transform", ["policy", "autoaugment", "plain-v2"])
def test_global_rng_is_left_alone(transform):
    info = _info(3, 32)
    t = {
        "policy": build_transform("simaugment", info),
        "autoaugment": build_transform("autoaugment", info),
        "plain-v2": v2.Compose([v2.RandomResizedCrop(32), v2.ToDtype(torch.float32, scale=True)]),
    }[transform]
    ds = AugmentedDataset(_dataset(4), t, seed=0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = ds[2][0]
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(ds[2][0], first)  # and the plain v2 transform is reproducible too
