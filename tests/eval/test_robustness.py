"""mCE / relative mCE against hand-computed values; corruption_errors against a manual loop."""

import pytest
import torch
from torch import nn

from supcon.eval.calibration import expected_calibration_error
from supcon.eval.corruptions import CORRUPTIONS, corrupt
from supcon.eval.robustness import (
    compare_to_reference,
    corruption_errors,
    mce,
    relative_mce,
    severity_curve,
)

ERRORS = {"a": [0.1, 0.2, 0.3], "b": [0.5, 0.5, 0.5]}
REF = {"a": [0.2, 0.4, 0.6], "b": [0.25, 0.25, 0.5]}


def test_mce_hand_computed():
    # CE_a = 0.6 / 1.2 = 0.5; CE_b = 1.5 / 1.0 = 1.5; mCE = 1.0
    out = mce(ERRORS, REF)
    assert out["per_corruption"] == {"a": pytest.approx(0.5), "b": pytest.approx(1.5)}
    assert out["mean"] == pytest.approx(1.0)
    # the reference against itself is exactly 1 everywhere
    assert mce(REF, REF)["mean"] == pytest.approx(1.0)


def test_relative_mce_hand_computed():
    # clean 0.05, ref clean 0.1:
    # a: (0.05 + 0.15 + 0.25) / (0.1 + 0.3 + 0.5) = 0.45 / 0.9 = 0.5
    # b: (3 * 0.45) / (0.15 + 0.15 + 0.4) = 1.35 / 0.7 = 27/14; mean = (1/2 + 27/14) / 2 = 17/14
    out = relative_mce(ERRORS, 0.05, REF, 0.1)
    assert out["per_corruption"]["a"] == pytest.approx(0.5)
    assert out["per_corruption"]["b"] == pytest.approx(27 / 14)
    assert out["mean"] == pytest.approx(17 / 14)


def test_compare_to_reference_and_severity_curve():
    result = {"clean": {"error": 0.05}, "severities": [1, 2, 3], "error": ERRORS}
    reference = {"clean": {"error": 0.1}, "severities": [1, 2, 3], "error": REF}
    out = compare_to_reference(result, reference)
    assert out["mce"]["mean"] == pytest.approx(1.0)
    assert out["relative_mce"]["mean"] == pytest.approx(17 / 14)
    # clean, then the mean over a and b at each severity
    assert severity_curve(result) == pytest.approx([0.05, 0.3, 0.35, 0.4])
    with pytest.raises(ValueError, match="different severities"):
        compare_to_reference(result, {**reference, "severities": [1, 2, 4]})


def test_zero_reference_raises():
    with pytest.raises(ValueError, match="ref_errors\\['a'\\] sums to 0"):
        mce(ERRORS, {"a": [0, 0, 0], "b": [0.1, 0.1, 0.1]})
    with pytest.raises(ValueError, match="does not degrade"):
        relative_mce(ERRORS, 0.05, {"a": [0.1, 0.1, 0.1], "b": [0.2, 0.3, 0.4]}, 0.1)


@pytest.mark.parametrize(
    "errors, ref, match",
    [
        ({"a": [0.1]}, {"b": [0.1]}, "same corruptions"),
        ({"a": [0.1, 0.2]}, {"a": [0.1]}, "same number of severities"),
        ({}, {}, "at least one"),
    ],
)
def test_mismatched_inputs_raise(errors, ref, match):
    with pytest.raises(ValueError, match=match):
        mce(errors, ref)
    with pytest.raises(ValueError, match=match):
        relative_mce(errors, 0.0, ref, 0.0)


class _Classifier(nn.Module):
    """Fixed random linear model on pixels, with dropout so eval mode matters."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(12 * 12, 3))

    def forward(self, x):
        return self.net(x)


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 12, 12), generator=g, dtype=torch.uint8)
    return images, torch.randint(0, 3, (n,), generator=g)


def _preprocess(x):
    return (x.float() / 255 - 0.5) / 0.25


def test_corruption_errors_matches_manual_loop():
    model = _Classifier()
    model.train()
    images, labels = _data()
    names = ["contrast", "gaussian_noise", "pixelate"]
    out = corruption_errors(
        model,
        images,
        labels,
        preprocess=_preprocess,
        corruptions=names,
        severities=(1, 3, 5),
        batch_size=16,
        seed=7,
    )
    assert model.training  # restored
    assert out["severities"] == [1, 3, 5]
    assert set(out["error"]) == set(out["ece"]) == set(names)
    model.eval()
    with torch.no_grad():
        clean_logits = model(_preprocess(images))
    clean_err = (clean_logits.argmax(1) != labels).double().mean().item()
    assert out["clean"]["error"] == pytest.approx(clean_err)
    assert out["clean"]["ece"] == pytest.approx(
        expected_calibration_error(clean_logits, labels).ece
    )
    # a deterministic corruption does not depend on batching: corrupt everything at once
    for i, s in enumerate((1, 3, 5)):
        with torch.no_grad():
            logits = model(_preprocess(corrupt(images, "contrast", s)))
        err = (logits.argmax(1) != labels).double().mean().item()
        assert out["error"]["contrast"][i] == pytest.approx(err)
        assert out["ece"]["contrast"][i] == pytest.approx(
            expected_calibration_error(logits, labels).ece
        )
    for values in list(out["error"].values()) + list(out["ece"].values()):
        assert len(values) == 3 and all(0.0 <= v <= 1.0 for v in values)


def test_corruption_errors_is_reproducible_and_seeded():
    model = _Classifier().eval()
    images, labels = _data()
    kw = dict(corruptions=["gaussian_noise"], severities=(5,), batch_size=16)
    a = corruption_errors(model, images, labels, seed=1, **kw)
    b = corruption_errors(model, images, labels, seed=1, **kw)
    assert a == b
    # a subset of corruptions gives the same numbers as the full run for those corruptions
    both = corruption_errors(
        model,
        images,
        labels,
        seed=1,
        batch_size=16,
        severities=(5,),
        corruptions=["contrast", "gaussian_noise"],
    )
    assert both["error"]["gaussian_noise"] == a["error"]["gaussian_noise"]


def test_on_step_counts_every_pass_and_changes_nothing():
    """One call after the clean pass and one per (corruption, severity): 1 + 2 x 3."""
    model = _Classifier().eval()
    images, labels = _data()
    kw = dict(corruptions=["contrast", "pixelate"], severities=(1, 3, 5), batch_size=16, seed=2)
    calls = []
    watched = corruption_errors(model, images, labels, on_step=lambda: calls.append(1), **kw)
    assert len(calls) == 7 and watched == corruption_errors(model, images, labels, **kw)


def test_default_runs_every_corruption_and_feeds_mce():
    model = _Classifier().eval()
    images, labels = _data(12)
    out = corruption_errors(model, images, labels, severities=(1, 2))
    assert list(out["error"]) == list(CORRUPTIONS)
    # against itself every CE is 1 (whenever the reference is not perfect)
    nonzero = {c: e for c, e in out["error"].items() if sum(e) > 0}
    assert mce(nonzero, nonzero)["mean"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"corruptions": ["frost"]}, "corruptions must be"),
        ({"severities": (0,)}, "severities"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_corruption_errors_bad_arguments(kwargs, match):
    images, labels = _data(4)
    with pytest.raises(ValueError, match=match):
        corruption_errors(_Classifier(), images, labels, **kwargs)
    with pytest.raises(ValueError, match="uint8"):
        corruption_errors(_Classifier(), images.float(), labels)
    with pytest.raises(ValueError, match="labels"):
        corruption_errors(_Classifier(), images, labels[:2])


class _TwoHeads(nn.Module):
    """One pass through shared features, two linear heads: ``{"a": logits, "b": logits}``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(12 * 12, 8))
        self.a, self.b = nn.Linear(8, 3), nn.Linear(8, 3)

    def forward(self, x):
        f = self.features(x)
        return {"a": self.a(f), "b": self.b(f)}


def test_several_heads_in_one_pass_equal_each_head_alone():
    model = _TwoHeads().eval()
    images, labels = _data()
    kw = dict(preprocess=_preprocess, corruptions=["gaussian_noise", "contrast"], severities=(2, 4),
              batch_size=16, seed=3)
    both = corruption_errors(model, images, labels, **kw)
    for name in ("a", "b"):
        head = getattr(model, name)
        alone = corruption_errors(nn.Sequential(model.features, head), images, labels, **kw)
        assert both["heads"][name] == {k: alone[k] for k in ("clean", "error", "ece")}
    first = corruption_errors(nn.Sequential(model.features, model.a), images, labels, **kw)
    assert {k: both[k] for k in first} == first  # the first head's numbers are the top-level ones
    assert "heads" not in first
