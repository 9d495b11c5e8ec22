"""kNN classifier and feature extraction, against a brute-force Python reference."""

import math

import pytest
import torch
from torch import nn

from supcon.eval.knn import extract_features, knn_predict, knn_top1


def brute_force_scores(train, train_labels, test, k, t, num_classes):
    """Python-loop reference: cosine to every training row, sort, weight the top k."""
    out = []
    for q in test.tolist():
        qn = math.sqrt(sum(v * v for v in q))
        sims = []
        for row, label in zip(train.tolist(), train_labels.tolist(), strict=True):
            rn = math.sqrt(sum(v * v for v in row))
            sims.append((sum(a * b for a, b in zip(q, row, strict=True)) / (qn * rn), label))
        sims.sort(key=lambda s: -s[0])
        scores = [0.0] * num_classes
        for sim, label in sims[:k]:
            scores[label] += math.exp(sim / t)
        out.append(scores)
    return torch.tensor(out)


@pytest.fixture
def bank():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(40, 6, generator=g)
    labels = torch.randint(0, 4, (40,), generator=g)
    test = torch.randn(13, 6, generator=g)
    test_labels = torch.randint(0, 4, (13,), generator=g)
    return train, labels, test, test_labels


@pytest.mark.parametrize("k,t", [(1, 0.1), (5, 0.1), (7, 0.5), (40, 0.07)])
def test_knn_predict_matches_brute_force(bank, k, t):
    train, labels, test, _ = bank
    expected = brute_force_scores(train, labels, test, k, t, 4)
    got = knn_predict(train, labels, test, k=k, temperature=t, num_classes=4)
    assert got.shape == (13, 4)
    torch.testing.assert_close(got.double(), expected.double(), rtol=1e-5, atol=1e-6)


def test_chunking_capping_and_scale_invariance(bank):
    train, labels, test, _ = bank
    full = knn_predict(train, labels, test, k=9, num_classes=4)
    for chunk in (1, 4, 1000):
        torch.testing.assert_close(
            knn_predict(train, labels, test, 9, 0.1, 4, chunk_size=chunk), full
        )
    # k beyond the bank uses the whole bank
    torch.testing.assert_close(
        knn_predict(train, labels, test, k=500, num_classes=4),
        knn_predict(train, labels, test, k=40, num_classes=4),
    )
    # cosine: positive rescaling of rows changes nothing
    scale = torch.rand(40, 1) * 5 + 0.1
    rescaled = knn_predict(train * scale, labels, test * 3, 9, 0.1, 4)
    torch.testing.assert_close(rescaled, full, rtol=1e-5, atol=1e-5)


def test_knn_analytic_values():
    # train points on the unit circle; a query equal to one of them has sim 1 with it.
    angles = torch.tensor([0.0, math.pi / 2, math.pi, 3 * math.pi / 2])
    train = torch.stack([angles.cos(), angles.sin()], dim=1)
    labels = torch.tensor([0, 1, 0, 2])
    query = torch.tensor([[2.0, 0.0]])
    scores = knn_predict(train, labels, query, k=3, temperature=0.5, num_classes=3)
    # neighbours: angle 0 (sim 1, class 0), pi/2 and 3pi/2 (sim 0, classes 1 and 2)
    expected = torch.tensor([[math.exp(2.0), 1.0, 1.0]])
    torch.testing.assert_close(scores, expected)
    # num_classes inferred from the labels
    assert knn_predict(train, labels, query, k=3, temperature=0.5).shape == (1, 3)


def test_knn_top1_matches_reference(bank):
    train, labels, test, test_labels = bank
    ref = brute_force_scores(train, labels, test, 5, 0.1, 4).argmax(dim=1)
    expected = (ref == test_labels).float().mean().item()
    assert knn_top1(train, labels, test, test_labels, k=5, num_classes=4) == pytest.approx(expected)
    # the training set classifies itself perfectly with k=1
    assert knn_top1(train, labels, train, labels, k=1) == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, "k must"),
        ({"temperature": 0.0}, "temperature"),
        ({"num_classes": 2}, "train_labels must lie"),
    ],
)
def test_knn_bad_arguments(bank, kwargs, match):
    train, labels, test, _ = bank
    with pytest.raises(ValueError, match=match):
        knn_predict(train, labels, test, **kwargs)


def test_knn_shape_errors(bank):
    train, labels, test, test_labels = bank
    with pytest.raises(ValueError, match="same width"):
        knn_predict(train, labels, test[:, :3])
    with pytest.raises(ValueError, match="train_labels"):
        knn_predict(train, labels[:5], test)
    with pytest.raises(ValueError, match="NaN"):
        knn_predict(train, labels, test * float("nan"))
    with pytest.raises(ValueError, match="test_labels"):
        knn_top1(train, labels, test, test_labels[:3])


class _Encoder(nn.Module):
    """Tiny encoder whose output differs between train and eval mode (dropout + batch norm)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * 4 * 4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5)
        )

    def forward(self, x):
        return self.net(x)


def test_extract_features_eval_mode_no_grad_and_order():
    torch.manual_seed(0)
    enc = _Encoder()
    enc.train()
    images = torch.randn(10, 2, 4, 4)
    labels = torch.arange(10) % 3
    loader = [(images[i : i + 4], labels[i : i + 4]) for i in range(0, 10, 4)]
    feats, got_labels = extract_features(enc, loader)
    assert enc.training  # mode restored
    assert not feats.requires_grad
    assert feats.shape == (10, 8) and got_labels.dtype == torch.int64
    torch.testing.assert_close(got_labels, labels)
    enc.eval()
    with torch.no_grad():
        torch.testing.assert_close(feats, enc(images))


def test_extract_features_works_with_a_dataloader():
    enc = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 5))
    data = torch.utils.data.TensorDataset(torch.randn(7, 3, 2, 2), torch.arange(7))
    feats, labels = extract_features(enc, torch.utils.data.DataLoader(data, batch_size=3))
    assert feats.shape == (7, 5)
    torch.testing.assert_close(labels, torch.arange(7))


def test_extract_features_rejects_bad_batches():
    enc = nn.Flatten()
    with pytest.raises(ValueError, match="images must be"):
        extract_features(enc, [(torch.zeros(2, 3), torch.zeros(2))])
    with pytest.raises(ValueError, match="no batches"):
        extract_features(enc, [])
    with pytest.raises(ValueError, match=r"\(images, labels\)"):
        extract_features(enc, [torch.zeros(2, 1, 2, 2)])
