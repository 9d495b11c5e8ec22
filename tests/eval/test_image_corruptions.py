"""ImageNet-C style corruptions: invariants for every type and severity, plus independent
references (colorsys HSV, torchvision JPEG, closed forms) for the photometric ones."""

import colorsys
import itertools

import pytest
import torch
import torch.nn.functional as F
from torchvision.io import decode_jpeg, encode_jpeg

from supcon.eval.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corruption_names


def smooth_images(batch: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Natural-ish uint8 images: smooth random colour fields plus a bright rectangle (edges)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, channels, 4, 4, generator=g)
    x = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = 0.15 + 0.6 * x
    for b in range(batch):
        r0, c0 = torch.randint(2, size // 2, (2,), generator=g).tolist()
        x[b, :, r0 : r0 + size // 3, c0 : c0 + size // 3] += 0.25
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


IMAGES = {1: smooth_images(12, 1, 28), 3: smooth_images(12, 3, 32)}


def test_registry_has_at_least_twelve_types():
    assert len(CORRUPTIONS) >= 12
    assert corruption_names() == list(CORRUPTIONS)
    required = {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "speckle_noise",
        "gaussian_blur",
        "defocus_blur",
        "motion_blur",
        "zoom_blur",
        "contrast",
        "brightness",
        "saturate",
        "pixelate",
        "jpeg_compression",
        "elastic_transform",
    }
    assert required <= set(CORRUPTIONS)
    for spec in CORRUPTIONS.values():
        assert len(spec.params) == len(SEVERITIES) == 5


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_type_and_severity(name, channels):
    x = IMAGES[channels]
    assert torch.equal(corrupt(x, name, 0, seed=3), x)  # severity 0 is the identity
    damage = []
    for s in SEVERITIES:
        y = corrupt(x, name, s, seed=3)
        assert y.shape == x.shape and y.dtype == torch.uint8
        assert int(y.min()) >= 0 and int(y.max()) <= 255
        assert torch.equal(y, corrupt(x, name, s, seed=3)), "not deterministic given the seed"
        damage.append((y.float() - x.float()).abs().mean().item())
    # severity increases damage (strictly, on these smooth 28/32-px images)
    assert damage[0] > 0
    assert all(later > earlier for earlier, later in itertools.pairwise(damage)), (
        f"{name}: {damage}"
    )


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_seed_matters_only_for_random_types(name):
    x = IMAGES[3]
    a, b = corrupt(x, name, 5, seed=0), corrupt(x, name, 5, seed=1)
    assert torch.equal(a, b) != CORRUPTIONS[name].random


def test_grayscale_batch_is_not_turned_into_rgb_and_is_channel_consistent():
    gray = IMAGES[1]
    rgb = gray.repeat(1, 3, 1, 1)
    for name, spec in CORRUPTIONS.items():
        y = corrupt(gray, name, 3, seed=0)
        assert y.shape[1] == 1
        if not spec.random and name != "saturate":
            # deterministic spatial/photometric ops treat a gray RGB image like the gray one
            y3 = corrupt(rgb, name, 3, seed=0)
            assert (y3.int() - y.int()).abs().max() <= 1, name


def test_brightness_matches_colorsys_hsv():
    x = IMAGES[3][:2]
    y = corrupt(x, "brightness", 5, seed=0)  # HSV value + 0.30
    xf = x.double() / 255
    for b, i, j in [(0, 3, 4), (1, 10, 20), (0, 31, 0), (1, 16, 16)]:
        h, s, v = colorsys.rgb_to_hsv(*xf[b, :, i, j].tolist())
        expected = colorsys.hsv_to_rgb(h, s, min(v + 0.30, 1.0))
        got = (y[b, :, i, j].double() / 255).tolist()
        assert got == pytest.approx(expected, abs=1 / 255 + 1e-9)
    # grayscale: the pixel itself is V
    g = IMAGES[1]
    expected = (g.double() + 0.05 * 255).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(corrupt(g, "brightness", 1), expected)


def test_saturate_matches_colorsys_hsv():
    x = IMAGES[3][:2]
    a, b_ = CORRUPTIONS["saturate"].params[3]
    y = corrupt(x, "saturate", 4, seed=0)
    xf = x.double() / 255
    for b, i, j in [(0, 3, 4), (1, 10, 20), (0, 31, 0), (1, 16, 16)]:
        h, s, v = colorsys.rgb_to_hsv(*xf[b, :, i, j].tolist())
        expected = colorsys.hsv_to_rgb(h, min(max(s * a + b_, 0.0), 1.0), v)
        got = (y[b, :, i, j].double() / 255).tolist()
        assert got == pytest.approx(expected, abs=1 / 255 + 1e-9)


def test_contrast_closed_form():
    x = IMAGES[3]
    c = CORRUPTIONS["contrast"].params[4]
    xf = x.double() / 255
    mean = xf.mean(dim=(1, 2, 3), keepdim=True)
    expected = (((xf - mean) * c + mean).clamp(0, 1) * 255).round()
    assert (corrupt(x, "contrast", 5).double() - expected).abs().max() <= 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision 0.29 codec notice
def test_jpeg_matches_torchvision_roundtrip():
    x = IMAGES[3][:3]
    y = corrupt(x, "jpeg_compression", 2)
    for b in range(3):
        assert torch.equal(y[b], decode_jpeg(encode_jpeg(x[b], quality=65)))


def test_zoom_blur_matches_grid_sample_reference():
    x = IMAGES[3][:4]
    xf = x.double() / 255
    zooms = [xf]
    for i in range(16):  # severity 3: zooms 1.00 .. 1.15
        f = 1 + 0.01 * i
        theta = torch.tensor([[1 / f, 0, 0], [0, 1 / f, 0]], dtype=xf.dtype).expand(4, 2, 3)
        grid = F.affine_grid(theta, list(xf.shape), align_corners=False)
        zooms.append(F.grid_sample(xf, grid, padding_mode="border", align_corners=False))
    expected = (torch.stack(zooms).mean(0).clamp(0, 1) * 255).round()
    assert (corrupt(x, "zoom_blur", 3).double() - expected).abs().max() <= 1


def test_noise_statistics():
    flat = torch.full((8, 3, 32, 32), 128, dtype=torch.uint8)
    diff = corrupt(flat, "gaussian_noise", 5, seed=0).double() - 128
    assert diff.mean().abs() < 0.5
    assert diff.std().item() == pytest.approx(0.10 * 255, rel=0.03)
    hits = corrupt(flat, "impulse_noise", 5, seed=0)
    frac_salt = (hits == 255).double().mean().item()
    frac_pepper = (hits == 0).double().mean().item()
    assert frac_salt == pytest.approx(0.035, abs=0.005)
    assert frac_pepper == pytest.approx(0.035, abs=0.005)


def test_blurs_preserve_a_constant_image():
    flat = torch.full((2, 1, 28, 28), 90, dtype=torch.uint8)
    for name in (
        "gaussian_blur",
        "defocus_blur",
        "motion_blur",
        "zoom_blur",
        "pixelate",
        "elastic_transform",
        "glass_blur",
    ):
        assert torch.equal(corrupt(flat, name, 5, seed=0), flat), name


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.zeros(2, 3, 8, 8), "contrast", 1), "uint8"),
        ((torch.zeros(3, 8, 8, dtype=torch.uint8), "contrast", 1), "uint8"),
        ((torch.zeros(2, 2, 8, 8, dtype=torch.uint8), "contrast", 1), "1 or 3 channels"),
        ((torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "frost", 1), "unknown corruption 'frost'"),
        ((torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "contrast", 6), "severity"),
        ((torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "contrast", 1.0), "severity"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        corrupt(*args)
