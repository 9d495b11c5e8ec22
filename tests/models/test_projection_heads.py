"""Projection heads and the linear classifier, against the formulas written out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supcon.models import LinearClassifier, ProjectionHead


def _linears(head: ProjectionHead) -> list[nn.Linear]:
    return [m for m in head.modules() if isinstance(m, nn.Linear)]


def test_mlp_head_is_the_papers_and_unit_norm():
    torch.manual_seed(0)
    head = ProjectionHead(64)
    first, second = _linears(head)
    assert (first.in_features, first.out_features) == (64, 64)  # hidden = in_dim
    assert (second.in_features, second.out_features) == (64, 128)
    r = torch.randn(5, 64) * 10
    z = head(r)
    expected = torch.relu(r @ first.weight.T + first.bias) @ second.weight.T + second.bias
    expected = expected / expected.norm(dim=1, keepdim=True)
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))


def test_linear_head_and_custom_sizes():
    torch.manual_seed(0)
    head = ProjectionHead(32, kind="linear", out_dim=16)
    (only,) = _linears(head)
    r = torch.randn(4, 32)
    expected = r @ only.weight.T + only.bias
    torch.testing.assert_close(head(r), expected / expected.norm(dim=1, keepdim=True))
    wide = ProjectionHead(32, hidden_dim=48, out_dim=8)
    assert [(m.in_features, m.out_features) for m in _linears(wide)] == [(32, 48), (48, 8)]


def test_batch_norm_variant():
    head = ProjectionHead(16, batch_norm=True, out_dim=8).train()
    assert any(isinstance(m, nn.BatchNorm1d) for m in head.modules())
    z = head(torch.randn(6, 16))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(6))


def test_linear_classifier_is_affine():
    torch.manual_seed(0)
    classifier = LinearClassifier(12, 5)
    r = torch.randn(3, 12)
    fc = classifier.fc
    torch.testing.assert_close(classifier(r), r @ fc.weight.T + fc.bias)
    assert classifier(r).shape == (3, 5)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: ProjectionHead(8, kind="conv"), "kind"),
        (lambda: ProjectionHead(0), "in_dim"),
        (lambda: ProjectionHead(8, out_dim=-1), "out_dim"),
        (lambda: ProjectionHead(8, hidden_dim=0), "hidden_dim"),
        (lambda: LinearClassifier(8, 0), "num_classes"),
        (lambda: LinearClassifier(8.0, 3), "in_dim"),
    ],
)
def test_bad_arguments_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()
