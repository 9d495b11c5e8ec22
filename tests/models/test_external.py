"""timm and torchvision backbones as encoders (``timm:<name>``, ``torchvision:<name>``): channels
adapted, classifier removed, feature size read from the model, pretrained weights only from disk,
and ``load_encoder`` rebuilding them from a run folder alone, in a fresh process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

import supcon
from supcon import cli
from supcon.models import create_encoder
from supcon.weights import save_encoder

ROOT = Path(__file__).parents[2]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network (a connection attempt fails the test) and empty weight caches."""
    def refuse(*args, **kwargs):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    try:
        from huggingface_hub import constants
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    except ImportError:
        pass
    return tmp_path


# ----------------------------------------------------------------------------- torchvision


def test_torchvision_backbone_grayscale_without_classifier(offline):
    encoder = create_encoder("torchvision:resnet18", in_channels=1)
    backbone = encoder.backbone
    assert isinstance(backbone.fc, nn.Identity) and backbone.conv1.in_channels == 1
    assert encoder.num_features == 512 and encoder.encoder_config == {"name": "torchvision:resnet18",
                                                                      "in_channels": 1}
    out = encoder(torch.randn(3, 1, 32, 32))
    assert out.shape == (3, 512)
    small = create_encoder("torchvision:mobilenet_v3_small", in_channels=3)
    assert small.num_features == 1024 and small(torch.randn(2, 3, 40, 40)).shape == (2, 1024)


def test_torchvision_pretrained_weights_come_from_the_hub_cache_only(offline):
    import torchvision

    reference = torchvision.models.resnet18()
    with pytest.raises(ValueError, match=r"pretrained weights are not on disk.*resnet18-f37072fd\.pth.*"
                                         r"nothing is downloaded at run time"):
        create_encoder("torchvision:resnet18", in_channels=1, pretrained=True)
    cache = offline / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / "resnet18-f37072fd.pth")
    gray = create_encoder("torchvision:resnet18", in_channels=1, pretrained=True).backbone
    torch.testing.assert_close(gray.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(gray.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    rgb = create_encoder("torchvision:resnet18", in_channels=3, pretrained=True).backbone
    torch.testing.assert_close(rgb.conv1.weight, reference.conv1.weight)
    # five channels: R, G, B, R, G, scaled by 3/5 (timm's adapt_input_conv)
    five = create_encoder("torchvision:resnet18", in_channels=5, pretrained=True).backbone
    w = reference.conv1.weight
    torch.testing.assert_close(five.conv1.weight, torch.cat([w, w[:, :2]], dim=1) * 3 / 5)


# ----------------------------------------------------------------------------- heads: only the final linear goes


def _tail(model: nn.Module, keep: int):
    """The first ``keep`` layers of torchvision's ``classifier`` block (the final linear is the next)."""
    return model.classifier[:keep]


# name, the state-dict keys the encoder drops (exactly the final linear layer), the input side, and the
# reference: the torchvision model's own layers, called by hand up to that final layer
HEADS = [
    ("convnext_tiny", {"classifier.2.weight", "classifier.2.bias"}, 32,
     lambda m, x: _tail(m, 2)(m.avgpool(m.features(x)))),  # LayerNorm2d, Flatten: the norm is kept
    ("squeezenet1_1", {"classifier.1.weight", "classifier.1.bias"}, 40,  # the final layer is a 1x1 conv
     lambda m, x: torch.flatten(nn.functional.adaptive_avg_pool2d(m.features(x), 1), 1)),
    ("alexnet", {"classifier.6.weight", "classifier.6.bias"}, 64,  # fc6 and fc7 are kept, as in timm
     lambda m, x: _tail(m, 6)(torch.flatten(m.avgpool(m.features(x)), 1))),
    ("maxvit_t", {"classifier.5.weight"}, 224,  # pool, norm, pre-logits linear + tanh are kept
     lambda m, x: _tail(m, 5)(nn.Sequential(m.stem, *m.blocks)(x))),
    ("efficientnet_b0", {"classifier.1.weight", "classifier.1.bias"}, 32,
     lambda m, x: torch.flatten(m.avgpool(m.features(x)), 1)),
    ("mobilenet_v3_small", {"classifier.3.weight", "classifier.3.bias"}, 32,  # the 1024-wide layer stays
     lambda m, x: _tail(m, 3)(torch.flatten(m.avgpool(m.features(x)), 1))),
]


@pytest.mark.parametrize("arch, dropped, size, reference", HEADS, ids=[h[0] for h in HEADS])
def test_torchvision_heads_lose_only_their_final_linear_layer(arch, dropped, size, reference, offline):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(arch).eval()
    encoder = create_encoder(f"torchvision:{arch}").eval()
    kept = encoder.backbone.state_dict()
    assert set(model.state_dict()) - set(kept) == dropped and set(kept) <= set(model.state_dict())
    encoder.backbone.load_state_dict({k: v for k, v in model.state_dict().items() if k in kept})
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        want = reference(model, x)
        got = encoder(x)
    assert want.shape == (2, encoder.num_features)
    torch.testing.assert_close(got, want)


# one fast model per torchvision family (vgg has alexnet's head; benchmarks/backbones.py builds every
# name) and the tiny timm test models: the feature size at 32 and 96 px (the in_features of
# torchvision's final linear layer: it does not depend on the input), or the sizes the registry
# refuses up front and the reason it gives
FAMILIES = [
    ("torchvision:alexnet", 4096, {32: "does not run on 32x32 images"}),
    ("torchvision:convnext_tiny", 768, {}),
    ("torchvision:densenet121", 1024, {}),
    ("torchvision:efficientnet_b0", 1280, {}),
    ("torchvision:googlenet", 1024, {}),
    ("torchvision:inception_v3", 2048, {32: "does not run on 32x32 images"}),
    ("torchvision:maxvit_t", 512, {32: "takes only 224x224 images", 96: "takes only 224x224 images"}),
    ("torchvision:mnasnet0_5", 1280, {}),
    ("torchvision:mobilenet_v2", 1280, {}),
    ("torchvision:mobilenet_v3_small", 1024, {}),
    ("torchvision:regnet_x_400mf", 400, {}),
    ("torchvision:resnet18", 512, {}),
    ("torchvision:shufflenet_v2_x0_5", 1024, {}),
    ("torchvision:squeezenet1_1", 512, {}),
    ("torchvision:swin_t", 768, {}),
    ("torchvision:vit_b_32", 768, {32: "takes only 224x224 images", 96: "takes only 224x224 images"}),
]
TIMM_TESTS = ["test_byobnet", "test_coatnet", "test_convnext", "test_efficientnet", "test_efficientnet_gn",
              "test_mambaout", "test_maxvit", "test_nfnet", "test_resnet", "test_vit", "test_vit_relpos"]


def _check_sizes(name: str, features: int, refused: dict[int, str]) -> None:
    for size in (32, 96):
        if size in refused:
            with pytest.raises(ValueError, match=rf"^encoder {re.escape(repr(name))} {refused[size]}[^\n]*$"):
                create_encoder(name, in_channels=3, image_size=size)
            continue
        encoder = create_encoder(name, in_channels=3, image_size=size).eval()
        with torch.no_grad():
            out = encoder(torch.randn(2, 3, size, size))
        assert encoder.num_features == features and out.shape == (2, features), (size, out.shape)


@pytest.mark.parametrize("name, features, refused", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_each_torchvision_family_works_at_32_and_96_px_or_is_refused_up_front(name, features, refused, offline):
    _check_sizes(name, features, refused)


@pytest.mark.parametrize("arch", TIMM_TESTS)
def test_timm_test_models_work_at_32_and_96_px_or_are_refused_up_front(arch, offline):
    timm = pytest.importorskip("timm")
    cfg = timm.models.get_pretrained_cfg(arch)
    side = cfg.input_size[-1]
    refused = {s: f"takes only {side}x{side} images" for s in (32, 96)} if cfg.fixed_input_size else {}
    with torch.no_grad():  # the reference: timm's own model without classifier, at its own size
        features = timm.create_model(arch, num_classes=0).eval()(torch.zeros(1, 3, side, side)).shape[1]
    _check_sizes(f"timm:{arch}", features, refused)


# ----------------------------------------------------------------------------- strict loading


@pytest.mark.parametrize("arch, aux, side", [("googlenet", ("aux1.", "aux2."), 32),
                                             ("inception_v3", ("AuxLogits.",), 80)])
def test_googlenet_and_inception_load_strictly_and_transform_input_as_torchvision(arch, aux, side, offline,
                                                                                    monkeypatch):
    import torchvision
    from torchvision.models._api import WeightsEnum

    # a file as torchvision publishes it: the whole model with its auxiliary classifiers
    state = torchvision.models.get_model(arch, weights=None, aux_logits=True, init_weights=True).state_dict()
    assert any(k.startswith(aux) for k in state)
    fits = offline / "fits.pth"
    torch.save(state, fits)
    encoder = create_encoder(f"torchvision:{arch}", in_channels=3, pretrained=str(fits)).eval()
    loaded = encoder.backbone.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith((*aux, "fc."))}
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)
    # the reference: torchvision's own builder given these weights (its download replaced by them)
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *a, **k: state)
    reference = torchvision.models.get_model(arch, weights="DEFAULT").eval()
    assert reference.transform_input and encoder.backbone.transform_input
    reference.fc = nn.Identity()
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), reference(x))
    # without pretrained weights torchvision's default: no input transform
    assert create_encoder(f"torchvision:{arch}").backbone.transform_input is False


def test_torchvision_weights_that_do_not_fit_are_refused(offline):
    """Every torchvision backbone loads strictly: a file with a tensor missing, another model's file,
    or one with a tensor of another shape is refused, naming what does not fit."""
    import torchvision

    state = torchvision.models.googlenet(aux_logits=True, init_weights=True).state_dict()
    for what, bad in {"missing": {k: v for k, v in state.items() if not k.startswith("conv1.")},
                      "other": torchvision.models.resnet18().state_dict(),
                      "shape": {**state, "conv2.conv.weight": torch.zeros(3, 3)}}.items():
        torch.save(bad, offline / f"{what}.pth")
    with pytest.raises(ValueError, match=r"^encoder 'torchvision:googlenet': the weights in .*missing\.pth do not "
                                         r"fit: 6 missing \(conv1\.conv\.weight, conv1\.bn\.weight, conv1\.bn\.bias, \.\.\.\)$"):
        create_encoder("torchvision:googlenet", pretrained=str(offline / "missing.pth"))
    with pytest.raises(ValueError, match=r"do not fit: \d+ missing \(.*\), \d+ unexpected \(.*\), \d+ of another shape"):
        create_encoder("torchvision:googlenet", pretrained=str(offline / "other.pth"))
    with pytest.raises(ValueError, match=r"do not fit: 1 of another shape \(conv2\.conv\.weight \(3, 3\) for "
                                         r"\(64, 64, 1, 1\)\)$"):
        create_encoder("torchvision:googlenet", pretrained=str(offline / "shape.pth"))
    # one channel: torchvision's input transform reads three, so none (the stem's weights are summed)
    torch.save(state, offline / "fits.pth")
    gray = create_encoder("torchvision:googlenet", in_channels=1, pretrained=str(offline / "fits.pth")).eval()
    assert gray.backbone.transform_input is False and gray(torch.randn(2, 1, 32, 32)).shape == (2, 1024)


# ----------------------------------------------------------------------------- timm


def test_timm_backbone_reads_its_feature_size_and_adapts_channels(offline):
    timm = pytest.importorskip("timm")
    for channels in (1, 3):
        encoder = create_encoder("timm:test_resnet", in_channels=channels)
        plain = timm.create_model("test_resnet", num_classes=0, in_chans=channels)
        assert encoder.num_features == plain.num_features == 96
        assert encoder(torch.randn(2, channels, 24, 24)).shape == (2, 96)
    dropped = create_encoder("timm:test_efficientnet", in_channels=1, drop_rate=0.1, drop_path_rate=0.1)
    assert dropped.encoder_config == {"name": "timm:test_efficientnet", "in_channels": 1, "drop_rate": 0.1,
                                      "drop_path_rate": 0.1}


def test_timm_pretrained_from_a_file_or_the_cache_never_downloads(offline):
    timm = pytest.importorskip("timm")
    with pytest.raises(ValueError, match=r"pretrained weights are not on disk.*nothing is downloaded"):
        create_encoder("timm:test_resnet", pretrained=True)
    source = timm.create_model("test_resnet")
    path = offline / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = create_encoder("timm:test_resnet", in_channels=3, pretrained=str(path)).backbone
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[key], msg=key)
    gray = create_encoder("timm:test_resnet", in_channels=1, pretrained=str(path)).backbone
    first = source.pretrained_cfg["first_conv"] + ".weight"
    torch.testing.assert_close(gray.state_dict()[first], source.state_dict()[first].sum(1, keepdim=True))
    # pretrained=True: from the Hugging Face cache, laid out as huggingface_hub leaves a download
    repo = offline / "hf" / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    (repo / "snapshots" / "0123abc").mkdir(parents=True)
    path.rename(repo / "snapshots" / "0123abc" / "model.safetensors")
    cached = create_encoder("timm:test_resnet", in_channels=3, pretrained=True).backbone
    torch.testing.assert_close(cached.state_dict()[first], source.state_dict()[first])
    with pytest.raises(ValueError, match=r"pretrained='nope.pth' is not a file"):
        create_encoder("timm:test_resnet", pretrained="nope.pth")


def test_a_backbone_that_does_not_pool_is_refused(offline, monkeypatch):
    timm = pytest.importorskip("timm")
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: nn.Conv2d(k["in_chans"], 4, 3))
    with pytest.raises(ValueError, match=r"encoder 'timm:test_resnet': the backbone's output after pooling "
                                         r"is \(2, 4, 62, 62\), not \[B, F\]"):
        create_encoder("timm:test_resnet", in_channels=1)


@pytest.mark.parametrize("name, message", [
    ("timm:resnt18", r"unknown encoder 'timm:resnt18': timm has no model 'resnt18'; did you mean 'timm:resnet18'"),
    ("torchvision:resnet19", r"torchvision has no model 'resnet19'; did you mean 'torchvision:resnet18'"),
    ("timm:hf-hub:timm/resnet18.a1_in1k", r"timm has no model 'hf-hub:timm/resnet18.a1_in1k'"),
    ("torchvision:os.system", r"torchvision has no model 'os.system'"),
    ("tim:resnet18", r"unknown encoder 'tim:resnet18'.*or timm:<name>, torchvision:<name>"),
])
def test_unknown_names_suggest_close_ones_and_never_reach_a_hub(name, message, offline):
    if name.startswith("timm"):
        pytest.importorskip("timm")
    with pytest.raises(ValueError, match=message):
        create_encoder(name)


def test_bad_options(offline):
    with pytest.raises(ValueError, match=r"got unknown option\(s\) \['widths'\]; valid options: \['pretrained'\]"):
        create_encoder("torchvision:resnet18", widths=[8])
    with pytest.raises(ValueError, match=r"pretrained must be true, false or a file path, got 1"):
        create_encoder("torchvision:resnet18", pretrained=1)
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match=r"drop_rate must be a number in \[0, 1\), got 2"):
        create_encoder("timm:test_resnet", drop_rate=2)


def test_load_encoder_rebuilds_without_fetching_pretrained_weights(offline, tmp_path):
    pytest.importorskip("timm")
    encoder = create_encoder("timm:test_resnet", in_channels=1).eval()
    meta = {"encoder": "timm:test_resnet", "in_channels": 1,
            "encoder_kwargs": {"pretrained": True, "drop_rate": 0.0}}  # pretrained: ignored on load
    save_encoder(encoder, tmp_path / "run", meta)
    loaded = supcon.load_encoder(tmp_path / "run")
    x = torch.randn(2, 1, 20, 20)
    torch.testing.assert_close(loaded(x), encoder(x))


# ----------------------------------------------------------------------------- end to end


def _stripes(root: Path) -> Path:
    """Two classes of 16x16 grey images: horizontal and vertical stripes at random phases."""
    rng = np.random.default_rng(0)
    for name, axis in (("horizontal", 0), ("vertical", 1)):
        (root / name).mkdir(parents=True)
        for i in range(20):
            wave = (np.arange(16) + rng.integers(0, 4)) % 4 < 2
            image = np.repeat(wave[:, None] if axis == 0 else wave[None, :], 16, axis=1 - axis)
            noise = rng.integers(0, 40, (16, 16))
            Image.fromarray((image * 200 + noise).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("caller", ["cli", "api", "api-module"])
def test_timm_backbone_trains_from_the_cli_and_api_and_loads_in_a_fresh_process(caller, tmp_path, monkeypatch):
    """The CLI and `supcon.train` (by name, or given the timm module itself) train the same way;
    each run then loads in a process that never imports the training code."""
    timm = pytest.importorskip("timm")
    monkeypatch.chdir(tmp_path)
    images, run = _stripes(tmp_path / "stripes"), tmp_path / "run"
    settings = {"linear.epochs": 1, "data.val_fraction": 0.2}
    if caller == "cli":
        argv = ["train", "--data", str(images), "--out", str(run), "--method", "supcon", "--epochs", "1",
                "--batch-size", "8", "--workers", "0", "--no-progress", "model.encoder=timm:test_resnet",
                *(f"{k}={v}" for k, v in settings.items())]
        assert cli.main(argv) == 0
    else:
        module = timm.create_model("test_resnet", num_classes=0, in_chans=1) if caller == "api-module" else None
        supcon.train(encoder=module or "timm:test_resnet", train_set=images, method="supcon", out=run, epochs=1,
                     batch_size=8, workers=0, progress=False, **settings)
    meta = json.loads((run / "encoder.json").read_text())
    name = "object:ResNet" if caller == "api-module" else "timm:test_resnet"
    assert meta["encoder"] == name and meta["in_channels"] == 1 and meta["num_features"] == 96
    rebuild = ", encoder=timm.create_model('test_resnet', num_classes=0, in_chans=1)" if caller == "api-module" else ""
    x = torch.rand(4, 1, 16, 16)
    save_file({"x": x}, str(tmp_path / "x.safetensors"))
    script = f"""
import sys, torch, timm
from safetensors.torch import load_file, save_file
import supcon
encoder = supcon.load_encoder({str(run)!r}{rebuild})
with torch.no_grad():
    y = encoder(load_file({str(tmp_path / 'x.safetensors')!r})["x"])
save_file({{"y": y}}, {str(tmp_path / 'y.safetensors')!r})
training = [m for m in sys.modules if m.startswith(("supcon.engine", "supcon.methods", "supcon.cli",
                                                    "supcon.workflows", "supcon.data"))]
print("training modules:", training)
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training modules: []" in done.stdout, done.stdout
    here = supcon.load_encoder(run, encoder=module) if caller == "api-module" else supcon.load_encoder(run)
    with torch.no_grad():
        want = here(x)
    torch.testing.assert_close(load_file(str(tmp_path / "y.safetensors"))["y"], want)
    assert want.shape == (4, 96)
