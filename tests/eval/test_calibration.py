"""Expected calibration error against hand-computed values and a loop reference."""

import pytest
import torch

from supcon.eval.calibration import expected_calibration_error, reliability_diagram


def constructed_example():
    """Six 2-class predictions with confidences away from the 1/15 bin edges.

    conf  correct  bin (width 1/15)
    .95   yes      14
    .90   no       13
    .70   yes      10
    .62   no       9
    .55   yes      8
    .58   no       8   -> bin 8: acc .5, conf .565
    ECE = (|1-.95| + |0-.9| + |1-.7| + |0-.62|) / 6 + (2/6) * |.5 - .565| = 2.0 / 6 = 1/3.
    """
    conf = torch.tensor([0.95, 0.90, 0.70, 0.62, 0.55, 0.58], dtype=torch.float64)
    probs = torch.stack([conf, 1 - conf], dim=1)  # predicted class is always 0
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    return probs, labels


def test_ece_hand_computed():
    probs, labels = constructed_example()
    result = expected_calibration_error(probs, labels, n_bins=15)
    assert result.ece == pytest.approx(1 / 3, abs=1e-12)
    expected_counts = [0] * 15
    for b, n in {8: 2, 9: 1, 10: 1, 13: 1, 14: 1}.items():
        expected_counts[b] = n
    assert result.counts == expected_counts
    assert result.accuracy[8] == pytest.approx(0.5)
    assert result.confidence[8] == pytest.approx(0.565)
    assert result.accuracy[13] == 0.0 and result.confidence[13] == pytest.approx(0.9)
    assert len(result.edges) == 16 and result.edges[0] == 0.0 and result.edges[-1] == 1.0


def test_ece_one_bin_and_logits():
    probs, labels = constructed_example()
    # one bin: |mean accuracy - mean confidence| = |3/6 - 4.3/6|
    one = expected_calibration_error(probs, labels, n_bins=1)
    assert one.ece == pytest.approx(abs(0.5 - 4.3 / 6), abs=1e-12)
    # logits whose softmax is probs give the same ECE (detected, and forced)
    logits = probs.log() + 3.0
    assert expected_calibration_error(logits, labels).ece == pytest.approx(1 / 3, abs=1e-9)
    assert expected_calibration_error(logits, labels, from_logits=True).ece == pytest.approx(
        1 / 3, abs=1e-9
    )


def loop_ece(probs, labels, n_bins):
    """Reference: explicit interval membership (lo, hi] per bin."""
    conf, pred = probs.max(dim=1)
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        members = [i for i in range(len(conf)) if lo < conf[i].item() <= hi]
        if not members:
            continue
        acc = sum(float(pred[i] == labels[i]) for i in members) / len(members)
        avg = sum(conf[i].item() for i in members) / len(members)
        total += len(members) / len(conf) * abs(acc - avg)
    return total


@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_ece_matches_loop_reference(n_bins):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 10, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, 10, (300,), generator=g)
    probs = logits.softmax(dim=1)
    got = expected_calibration_error(probs, labels, n_bins).ece
    assert got == pytest.approx(loop_ece(probs, labels, n_bins), abs=1e-12)
    assert sum(expected_calibration_error(probs, labels, n_bins).counts) == 300


def test_ece_zero_when_confident_and_right():
    probs = torch.eye(4, dtype=torch.float64)
    assert expected_calibration_error(probs, torch.arange(4)).ece == 0.0
    # confident and always wrong: ECE is 1
    assert expected_calibration_error(probs, (torch.arange(4) + 1) % 4).ece == 1.0


@pytest.mark.parametrize(
    "probs, labels, n_bins, match",
    [
        (torch.rand(5), torch.zeros(5, dtype=torch.long), 15, "probs must be"),
        (torch.rand(5, 3), torch.zeros(4, dtype=torch.long), 15, "labels must be"),
        (torch.rand(5, 3), torch.full((5,), 3), 15, r"labels must be integers in \[0, 3\)"),
        (torch.rand(5, 3), torch.zeros(5, dtype=torch.long), 0, "n_bins"),
        (torch.full((5, 3), float("nan")), torch.zeros(5, dtype=torch.long), 15, "finite"),
    ],
)
def test_ece_bad_input(probs, labels, n_bins, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(probs, labels, n_bins)


def test_reliability_diagram_writes_png(tmp_path):
    probs, labels = constructed_example()
    result = expected_calibration_error(probs, labels)
    path = reliability_diagram(result, tmp_path / "plots" / "reliability.png", title="test")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.to_dict()["bins"][8] == {
        "lo": pytest.approx(8 / 15),
        "hi": pytest.approx(9 / 15),
        "count": 2,
        "accuracy": 0.5,
        "confidence": pytest.approx(0.565),
    }
    with pytest.raises(ValueError, match="png"):
        reliability_diagram(result, tmp_path / "x.jpg")
